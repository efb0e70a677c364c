"""The quality/speed frontier: Set5 PSNR against the latency of a 640x360 frame, for the
networks with released weights (and bicubic), at x2 and x4.

    python -m sr_lightning.zoo --latency --save experiments/benchmarks/zoo_latency.json
    python experiments/benchmarks/frontier.py        # writes experiments/benchmarks/frontier.png

PSNR: the released weights' Set5 Y-PSNR measured by ``experiments/paper_tables`` (README:
Reproducing the papers); latency: the fastest backend of ``zoo_latency.json`` (the machine
is named in the file and on the plot). Needs matplotlib (``pip install 'sr_lightning[plot]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Set5 Y-PSNR, measured here (experiments/paper_tables/README.md): (zoo network, scale) -> dB.
SET5 = {("bicubic", 2): 33.661, ("srcnn", 2): 36.656, ("vdsr", 2): 37.527,
        ("bicubic", 4): 28.421, ("srcnn", 4): 30.484, ("vdsr", 4): 31.343, ("imdn", 4): 32.211}
LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN 9-5-5", "vdsr": "VDSR", "imdn": "IMDN"}


def points(latency: dict) -> dict[int, list[tuple[str, float, float, str]]]:
    """scale -> [(label, ms, psnr, backend)] for every network with a PSNR and a latency."""
    out: dict[int, list[tuple[str, float, float, str]]] = {}
    for (net, scale), db in SET5.items():
        cell = latency["results"].get(net, {}).get(str(scale))
        if not cell:
            continue
        timed = {b: ms for b, ms in cell["ms"].items() if ms is not None}
        backend = min(timed, key=timed.get)
        out.setdefault(scale, []).append((LABELS[net], timed[backend], db, backend))
    return out


def frontier(pts: list[tuple[str, float, float, str]]) -> list[tuple[str, float, float, str]]:
    """The points no other point beats on both latency and PSNR, fastest first."""
    best, out = float("-inf"), []
    for p in sorted(pts, key=lambda p: (p[1], -p[2])):
        if p[2] > best:
            out.append(p)
            best = p[2]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=Path, default=HERE / "zoo_latency.json")
    parser.add_argument("--output", type=Path, default=HERE / "frontier.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = json.loads(args.latency.read_text())
    by_scale = points(latency)
    fig, axes = plt.subplots(1, len(by_scale), figsize=(5.5 * len(by_scale), 4.2), squeeze=False)
    for ax, (scale, pts) in zip(axes[0], sorted(by_scale.items()), strict=True):
        for label, ms, db, backend in pts:
            ax.scatter(ms, db, s=36, zorder=3)
            ax.annotate(f"{label}\n({backend})", (ms, db), textcoords="offset points", xytext=(6, -4), fontsize=8)
        line = frontier(pts)
        ax.plot([p[1] for p in line], [p[2] for p in line], "--", color="grey", zorder=2, label="frontier")
        ax.axvline(1000 / 30, color="tab:red", lw=0.8, label="30 fps")
        ax.set_xscale("log")
        ax.set_xlabel("ms per 640x360 frame (log)")
        ax.set_ylabel(f"Set5 x{scale} PSNR (Y, dB)")
        ax.set_title(f"x{scale}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Quality against speed, {latency['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
