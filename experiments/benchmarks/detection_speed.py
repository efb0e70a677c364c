"""How long architecture detection takes beyond reading a model file.

    python experiments/benchmarks/detection_speed.py [--repeats 10]

For each network at its paper configuration (x4, RGB), a bare state dict is written as
``.pth`` and ``.safetensors`` (our key names; the authors' layouts cost the same renaming
per key), then, in this one process: the time to read each (``sr_lightning.files.read_data``,
median of ``--repeats``), the first detection of that configuration (``nets.detect``: the
candidate network is built once per process and configuration; the detection machinery
itself was warmed up on a small network first), and the median of repeated detections.
Run it with nothing else on the machine. Prints a table and writes
experiments/benchmarks/detection_speed.json and .md.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from safetensors.torch import save_file

from sr_lightning.files import read_data
from sr_lightning.hardware import describe_cpu
from sr_lightning.nets import create_net, detect

HERE = Path(__file__).resolve().parent
# (network, constructor arguments beyond x4 RGB): the 20M-parameter HAT first, then others.
NETWORKS = (("hat", {}), ("rrdbnet", {}), ("rcan", {}), ("dat", {}), ("drct", {}), ("swinir", {}),
            ("srformer", {}), ("swin2sr", {}), ("plksr", {}), ("hat", {"depths": [6] * 12, "num_heads": [6] * 12}))


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of the next ``repeats``) in milliseconds."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times[0], statistics.median(times[1:])


def measure(repeats: int) -> list[dict]:
    detect(create_net("espcn", scale=4, in_channels=3).state_dict())  # imports, compiled key maps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in NETWORKS:
            state = create_net(name, scale=4, in_channels=3, **kwargs).state_dict()
            pth, st = Path(tmp, "m.pth"), Path(tmp, "m.safetensors")
            torch.save(state, pth)
            save_file({k: v.contiguous() for k, v in state.items()}, st)
            read_pth = timed(functools.partial(read_data, pth), repeats)[1]
            read_st = timed(functools.partial(read_data, st), repeats)[1]
            first, again = timed(functools.partial(detect, state), repeats)
            found = detect(state)
            assert found.name == name, (name, found.name)
            label = name if not kwargs else f"{name} ({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
            rows.append({"network": label, "parameters": sum(v.numel() for v in state.values()),
                         "tensors": len(state), "read_pth_ms": read_pth, "read_safetensors_ms": read_st,
                         "detect_first_ms": first, "detect_again_ms": again})
    return rows


def markdown(rows: list[dict], command: str) -> str:
    head = ("| network (x4, RGB) | parameters | tensors | read .pth ms | read .safetensors ms | "
            "detect, first ms | detect, again ms |\n|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['network']} | {r['parameters']:,} | {r['tensors']} | {r['read_pth_ms']:.0f} | "
                   f"{r['read_safetensors_ms']:.0f} | {r['detect_first_ms']:.0f} | {r['detect_again_ms']:.0f} |\n"
                   for r in rows)
    return (f"Detection time beyond reading the file; `{command}`, {describe_cpu()}, torch {torch.__version__}, "
            f"{date.today()}.\n\n{head}{body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions (medians)")
    args = parser.parse_args()
    rows = measure(args.repeats)
    command = f"python experiments/benchmarks/detection_speed.py --repeats {args.repeats}"
    text = markdown(rows, command)
    print(text)
    (HERE / "detection_speed.json").write_text(json.dumps({"cpu": describe_cpu(), "command": command,
                                                           "date": str(date.today()), "rows": rows}, indent=1))
    (HERE / "detection_speed.md").write_text(text)


if __name__ == "__main__":
    main()
