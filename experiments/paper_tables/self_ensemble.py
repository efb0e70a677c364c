"""x8 self-ensemble gains of the released VDSR and IMDN weights, beside EDSR's "+" gains.

    python experiments/paper_tables/self_ensemble.py                  # prints the table
    python experiments/paper_tables/self_ensemble.py --write-readme   # into README.md

Each row evaluates the same checkpoint twice with ``python -m sr_lightning.eval`` (as a user
runs it): ``evaluation.self_ensemble=false`` and ``=true``. Needs the benchmark data
(``SR_DATA_DIR`` or ``--data-dir``). The x8 passes cost 8x: VDSR on B100 is about 50 minutes
a scale on a 2-core AVX2 CPU, so its default sets are Set5 and Set14.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from reproduce import _evaluate, _run, main_data_dir, parser_for, replace_block

HERE = Path(__file__).resolve().parent
MARK_START, MARK_END = "<!-- ensemble:start -->", "<!-- ensemble:end -->"
# EDSR and EDSR+ (Lim et al., CVPRW 2017, the benchmark table): the published "+" gains.
EDSR_PLUS = {("Set5", 2): (38.11, 38.20), ("Set5", 3): (34.65, 34.76), ("Set5", 4): (32.46, 32.62),
             ("Set14", 2): (33.92, 34.02), ("Set14", 3): (30.52, 30.66), ("Set14", 4): (28.80, 28.94),
             ("B100", 2): (32.32, 32.37), ("B100", 3): (29.25, 29.32), ("B100", 4): (27.71, 27.79)}


def measure(data_dir: Path, runs: list[tuple[str, int, list[str]]], work: Path) -> list[dict]:
    """Convert the released weights; evaluate each (network, scale, sets) both ways."""
    weights = data_dir / "weights"
    ckpts = {"vdsr": work / "vdsr.ckpt", "imdn": work / "imdn_x4.ckpt"}
    _run(["-m", "sr_lightning.convert", "--format", "vdsr-mat", "--scale", "2",
          str(weights / "vdsr_official/vdsr_official.mat"), str(ckpts["vdsr"])])
    _run(["-m", "sr_lightning.convert", "--format", "pth", "--net", "imdn", "--scale", "4",
          str(weights / "imdn_official/x4.pth"), str(ckpts["imdn"])])
    extra = {"vdsr": [], "imdn": ["evaluation.gray=rgb"]}  # each paper's protocol (paper_tables)
    rows = []
    for net, scale, sets in runs:
        result, seconds = {}, {}
        for ensemble in (False, True):
            t0 = time.perf_counter()
            result[ensemble] = _evaluate(work / f"{net}_x{scale}_{ensemble}", sets, scale, data_dir,
                                         f"ckpt_path={ckpts[net]}", f"evaluation.self_ensemble={ensemble}",
                                         *extra[net])
            seconds[ensemble] = time.perf_counter() - t0
            print(f"{net} x{scale} self_ensemble={ensemble}: {seconds[ensemble]:.0f} s", file=sys.stderr, flush=True)
        for name in sets:
            one, eight = result[False][name], result[True][name]
            rows.append({"net": net, "set": name, "scale": scale, "psnr": one["psnr"], "psnr_x8": eight["psnr"],
                         "ssim": one["ssim"], "ssim_x8": eight["ssim"], "seconds": seconds[False],
                         "seconds_x8": seconds[True]})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| network | set | scale | PSNR | PSNR x8 | gain (dB) | SSIM | SSIM x8 | EDSR -> EDSR+ (paper) | "
             "eval s (one / x8, all sets) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        edsr = EDSR_PLUS.get((r["set"], r["scale"]))
        paper = f"{edsr[0]:.2f} -> {edsr[1]:.2f} ({edsr[1] - edsr[0]:+.2f})" if edsr else "-"
        lines.append(f"| {r['net']} | {r['set']} | x{r['scale']} | {r['psnr']:.3f} | {r['psnr_x8']:.3f} | "
                     f"{r['psnr_x8'] - r['psnr']:+.3f} | {r['ssim']:.4f} | {r['ssim_x8']:.4f} | {paper} | "
                     f"{r['seconds']:.0f} / {r['seconds_x8']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--vdsr-sets", default="Set5,Set14")
    parser.add_argument("--imdn-sets", default="Set5,Set14,B100")
    args = parser.parse_args()
    data_dir = main_data_dir(args.data_dir)
    runs = [("vdsr", s, args.vdsr_sets.split(",")) for s in (2, 3, 4)] + [("imdn", 4, args.imdn_sets.split(","))]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table = markdown(measure(data_dir, runs, Path(tmp)))
    print(table)
    print(f"\n{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.write_readme:
        replace_block(HERE / "README.md", MARK_START, MARK_END, table)


if __name__ == "__main__":
    main()
