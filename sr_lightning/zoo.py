"""The network zoo as a table: ``python -m sr_lightning.zoo [--memory] [--latency] [--write-readme]``.

For each registered network (its default configuration, as it runs in evaluation):
parameters, GFLOPs for a 1-megapixel output at x2/x3/x4, how it upsamples, the scales it supports, its paper.
FLOPs are counted by ``torch.utils.flop_counter`` on fake tensors (no computation): two
per multiply-accumulate of convolutions and matrix products (bicubic resizing included).
``--memory`` adds the peak activation memory of a 1-megapixel x4 output, measured
(:mod:`sr_lightning.cost`); ``--latency`` prints a second table, measured on this CPU:
milliseconds to upscale a 640x360 frame at x2 and x4 with PyTorch fp32, bf16, torch.compile
and onnxruntime, frames per second, and which reach 30 fps (``--save`` keeps it as JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sr_lightning.cost import BACKENDS, FRAME, latency_row, peak_activation_mib
from sr_lightning.files import write_text_atomically
from sr_lightning.hardware import cpu_model, fast_bf16
from sr_lightning.nets import SRNet, create_net, get_net_class, list_nets
from sr_lightning.nets.flops import gflops_per_megapixel

SCALES = (2, 3, 4)
DOCS = Path(__file__).resolve().parents[1] / "docs"
ZOO_PAGE, LATENCY_PAGE = DOCS / "zoo.md", DOCS / "beyond.md"  # the pages the tables are written into
MARK_START, MARK_END = "<!-- zoo:start -->", "<!-- zoo:end -->"
LATENCY_START, LATENCY_END = "<!-- zoo-latency:start -->", "<!-- zoo-latency:end -->"
MEMORY_SCALE = 4
LATENCY_SCALES = (2, 4)
REAL_TIME_FPS = 30


def rows(in_channels: int = 3, memory: bool = False, measured: dict[str, str] | None = None) -> list[list[str]]:
    """One row per network: name, parameters, GFLOPs at x2/x3/x4, upsampling, scales, the file
    layouts it loads, paper (and, with ``memory``, the measured peak activation MiB of a
    1-megapixel x4 output; ``measured``: figures measured before, by network, kept as they are)."""
    out = []
    for name in list_nets():
        cls = get_net_class(name)
        params = create_net(name, scale=2, in_channels=in_channels).deployed_parameter_count()
        flops = [gflops_per_megapixel(name, s, in_channels) for s in SCALES]
        scales = "any integer >= 2" if cls.scales is None else ", ".join(map(str, cls.scales))
        row = [name, f"{params:,}", *("-" if f is None else f"{f:,.1f}" for f in flops)]
        if memory and measured is not None and name in measured:
            row.append(measured[name])
        elif memory:
            mib = peak_activation_mib(name, MEMORY_SCALE, in_channels)
            row.append("-" if mib is None else f"{mib:,.0f}")
        out.append([*row, cls.upsampling, scales, loads(cls) if params else "-", cls.paper])
    return out


def loads(cls: type[SRNet]) -> str:
    """The file layouts a network's weights load from (``SRNet.release_formats``), for the table."""
    names = {"sr_lightning": "ours", "release": "authors'"}
    return ", ".join(names.get(k, k.replace("release (", "authors' (")) for k in cls.release_formats())


def header(memory: bool = False) -> list[str]:
    gflops = [f"GFLOPs/MP x{s}" for s in SCALES]
    mem = [f"peak MiB, 1 MP x{MEMORY_SCALE}"] if memory else []
    return ["network", "parameters (x2, RGB)", *gflops, *mem, "upsampling", "scales", "loads", "paper"]


def markdown(table: list[list[str]], head: list[str] | None = None) -> str:
    head = head or header(len(table[0]) > len(header()))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in table)])


def latency_table(results: dict[str, dict]) -> str:
    """Markdown: per network and scale, ms per frame for each backend, the best fps, and a
    check mark where the fastest backend reaches :data:`REAL_TIME_FPS`."""
    head = ["network", "scale", *(f"{b} ms" for b in BACKENDS), "fps (best)", f"{REAL_TIME_FPS} fps"]
    table = []
    for name, by_scale in results.items():
        for scale, cell in by_scale.items():
            ms = cell["ms"]
            best = min((v for v in ms.values() if v is not None), default=None)
            fps = 1000 / best if best else None
            table.append([name, f"x{scale}", *("-" if ms.get(b) is None else f"{ms[b]:,.0f}" for b in BACKENDS),
                          "-" if fps is None else f"{fps:.3g}" if fps < 10 else f"{fps:.0f}",
                          "yes" if fps and fps >= REAL_TIME_FPS else ""])
    return markdown(table, head)


def readme_memory(text: str) -> dict[str, str]:
    """The memory column of the zoo table in a page's text, by network (empty without one)."""
    if MARK_START not in text:
        return {}
    lines = text.split(MARK_START, 1)[1].split(MARK_END, 1)[0].strip().splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    column = f"peak MiB, 1 MP x{MEMORY_SCALE}"
    if column not in head:
        return {}
    at = head.index(column)
    return {cells[0]: cells[at] for line in lines[2:] if (cells := [c.strip() for c in line.strip("|").split("|")])}


def _replace(text: str, start: str, end: str, block: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr_lightning.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", action="store_true",
                        help=f"measure peak activation memory for a 1-megapixel x{MEMORY_SCALE} output (minutes)")
    parser.add_argument("--latency", action="store_true",
                        help=f"measure ms per {FRAME[1]}x{FRAME[0]} frame on this CPU for every network (long)")
    parser.add_argument("--nets", nargs="+", default=None,
                        help="only these networks measured: the latency table's; with --memory, the other "
                             "networks keep the memory figure the zoo page's table has")
    parser.add_argument("--budget-s", type=float, default=60.0,
                        help="seconds of timing per network, scale and backend; networks whose fp32 frame "
                             "takes longer get only that")
    parser.add_argument("--max-frame-s", type=float, default=None,
                        help="after a scale whose fp32 frame takes longer than this, skip the larger scales")
    parser.add_argument("--merge", type=Path, default=None,
                        help="a --save JSON of an earlier run on this machine: its networks not measured now are kept")
    parser.add_argument("--save", type=Path, default=None, help="write the latency measurements to this JSON file")
    parser.add_argument("--write-docs", "--write-readme", dest="write_docs", action="store_true",
                        help=f"replace the zoo table in {ZOO_PAGE} (and with --latency the latency table in "
                             f"{LATENCY_PAGE})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.nets or ()) - set(list_nets()))
    if unknown:
        parser.error(f"--nets: {', '.join(unknown)} not registered; choose from {', '.join(list_nets())}")
    kept = None
    if args.memory and args.nets:
        kept = {k: v for k, v in readme_memory(ZOO_PAGE.read_text()).items() if k not in args.nets}
    table = markdown(rows(memory=args.memory, measured=kept))
    print(table)
    if args.write_docs:
        write_text_atomically(ZOO_PAGE, _replace(ZOO_PAGE.read_text(), MARK_START, MARK_END, table))
        print(f"updated {ZOO_PAGE}", file=sys.stderr)
    if args.latency:
        bf16 = fast_bf16("cpu")
        machine = (f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
                   f"{'' if bf16 else ', no bf16 units'}")
        results = {}
        if args.merge:
            earlier = json.loads(args.merge.read_text())
            if earlier["machine"] != machine:
                parser.error(f"--merge {args.merge}: measured on {earlier['machine']!r}, not this {machine!r}")
            results = earlier["results"]
        for name in args.nets or list_nets():
            results[name] = latency_row(name, LATENCY_SCALES, args.budget_s, bf16, args.max_frame_s)
        results = {name: results[name] for name in list_nets() if name in results}
        block = f"Measured on: {machine}.\n\n{latency_table(results)}"
        print(f"\n{block}")
        if args.save:
            write_text_atomically(args.save, json.dumps({"machine": machine, "frame": FRAME, "results": results},
                                                        indent=1))
        if args.write_docs:
            write_text_atomically(LATENCY_PAGE, _replace(LATENCY_PAGE.read_text(), LATENCY_START, LATENCY_END, block))
            print(f"updated {LATENCY_PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
