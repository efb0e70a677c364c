"""The network zoo as a table: ``python -m sr_lightning.zoo [--markdown] [--write-readme]``.

For each registered network (its default configuration, as it runs in evaluation):
parameters, GFLOPs for a 1-megapixel output at x2/x3/x4, how it upsamples, the scales it supports, its paper.
FLOPs are counted by ``torch.utils.flop_counter`` on fake tensors (no computation): two
per multiply-accumulate of convolutions and matrix products (bicubic resizing included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from sr_lightning.nets import SRNet, create_net, get_net_class, list_nets

SCALES = (2, 3, 4)
README = Path(__file__).resolve().parents[1] / "README.md"
MARK_START, MARK_END = "<!-- zoo:start -->", "<!-- zoo:end -->"


def gflops_per_megapixel(name: str, scale: int, in_channels: int = 3) -> float | None:
    """GFLOPs of one forward pass producing 1 megapixel (an output of about 1000x1000,
    rescaled to exactly 1e6 pixels); None where the network does not support ``scale``."""
    cls = get_net_class(name)
    if cls.scales is not None and scale not in cls.scales:
        return None
    return net_gflops(create_net(name, scale=scale, in_channels=in_channels).eval())


def net_gflops(net: SRNet) -> float:
    """GFLOPs of ``net`` (at its scale and channels, in its current mode: evaluation for the
    network as deployed) for one 1-megapixel output, counted on fake tensors (nothing is computed)."""
    side = round(1000 / net.scale)
    counter = FlopCounterMode(display=False)
    with FakeTensorMode(allow_non_fake_inputs=True), counter, torch.no_grad():
        net(torch.empty(1, net.in_channels, side, side))
    return counter.get_total_flops() / (net.scale * side) ** 2 * 1e6 / 1e9


def rows(in_channels: int = 3) -> list[list[str]]:
    """One row per network: name, parameters, GFLOPs at x2/x3/x4, upsampling, scales, paper."""
    out = []
    for name in list_nets():
        cls = get_net_class(name)
        params = create_net(name, scale=2, in_channels=in_channels).deployed_parameter_count()
        flops = [gflops_per_megapixel(name, s, in_channels) for s in SCALES]
        scales = "any integer >= 2" if cls.scales is None else ", ".join(map(str, cls.scales))
        out.append([name, f"{params:,}", *("-" if f is None else f"{f:,.1f}" for f in flops), cls.upsampling,
                    scales, cls.paper])
    return out


HEADER = ["network", "parameters (x2, RGB)", *(f"GFLOPs/MP x{s}" for s in SCALES), "upsampling", "scales", "paper"]


def markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in table)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr_lightning.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help=f"replace the zoo table in {README}")
    args = parser.parse_args(argv)
    table = markdown(rows())
    print(table)
    if args.write_readme:
        text = README.read_text()
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        README.write_text(f"{head}{MARK_START}\n{table}\n{MARK_END}{tail}")
        print(f"updated {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
