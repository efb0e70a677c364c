"""Reproduce the published tables (bicubic, SRCNN 9-5-5, VDSR; LapSRN x2, IMDN x4, RLFN x4) on Set5/Set14/B100.

    python experiments/paper_tables/reproduce.py            # prints the table
    python experiments/paper_tables/reproduce.py --write-readme
    python experiments/paper_tables/reproduce.py --methods lapsrn,rlfn --write-readme  # those rows again

Every run writes its rows to experiments/paper_tables/reproduce.json; ``--methods`` runs only
those methods and keeps the other methods' rows from that file.

The released weights are imported with ``python -m sr_lightning.convert`` and every
number comes from ``python -m sr_lightning.eval`` (run as a subprocess, exactly as a user
runs it) with the default protocol. Needs the benchmark data (``SR_DATA_DIR`` or
``--data-dir``): benchmark/, weights/, reference/published.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MARK_START, MARK_END = "<!-- table:start -->", "<!-- table:end -->"
# What "reproduced" means (the bar): Set5 to 0.01 dB, the other sets to 0.05 dB for
# released weights; bicubic everywhere to 0.01 dB.
TOLERANCE = {"Set5": 0.01}
DEFAULT_TOLERANCE = {"bicubic": 0.01}
METHODS = ["bicubic", "srcnn", "vdsr", "lapsrn", "imdn", "rlfn"]
ROWS = HERE / "reproduce.json"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: python {' '.join(args)}\n{proc.stderr[-3000:]}")
    return proc


def _evaluate(out: Path, sets: list[str], scale: int, data_dir: Path, *extra: str) -> dict:
    _run(["-m", "sr_lightning.eval", f"data.scale={scale}", f"data.test_sets=[{','.join(sets)}]",
          f"paths.data_dir={data_dir}", f"hydra.run.dir={out}", *extra])
    return json.loads((out / "metrics.json").read_text())


def _runs(weights: Path, scale: int, work: Path, methods: list[str]) -> dict[str, list[str]]:
    """The eval arguments of each method with released weights at ``scale`` (those converted first)."""
    runs: dict[str, list[str]] = {"bicubic": ["model=bicubic"]}
    if "srcnn" in methods:
        srcnn = work / f"srcnn_x{scale}.ckpt"
        _run(["-m", "sr_lightning.convert", "--format", "srcnn-mat", "--scale", str(scale),
              str(weights / f"srcnn_955_imagenet/x{scale}.mat"), str(srcnn)])
        runs["srcnn"] = [f"ckpt_path={srcnn}"]
    if "vdsr" in methods:  # one VDSR checkpoint for every scale
        vdsr = work / "vdsr.ckpt"
        if not vdsr.exists():
            _run(["-m", "sr_lightning.convert", "--format", "vdsr-mat", "--scale", "2",
                  str(weights / "vdsr_official/vdsr_official.mat"), str(vdsr)])
        runs["vdsr"] = [f"ckpt_path={vdsr}"]
    if scale == 2 and "lapsrn" in methods:  # the authors' LapSRN x2 (Y), scored as their test code saves it
        lapsrn = work / "lapsrn_x2.ckpt"
        _run(["-m", "sr_lightning.convert", "--format", "lapsrn-mat", str(weights / "lapsrn_official/LapSRN_x2.mat"),
              str(lapsrn)])
        runs["lapsrn"] = [f"ckpt_path={lapsrn}", "evaluation.y_output=rgb"]
    if scale == 4 and "imdn" in methods:  # the authors' IMDN x4 (RGB, the standard LR files), gray images as RGB
        imdn = work / "imdn_x4.ckpt"
        _run(["-m", "sr_lightning.convert", "--format", "pth", "--net", "imdn", "--scale", "4",
              str(weights / "imdn_official/x4.pth"), str(imdn)])
        runs["imdn"] = [f"ckpt_path={imdn}", "evaluation.gray=rgb"]
    if scale == 4 and "rlfn" in methods:  # the authors' RLFN x4 file as it is (detected), gray images as RGB
        runs["rlfn"] = [f"ckpt_path={weights / 'rlfn_official/rlfn_x4.pth'}", "evaluation.gray=rgb"]
    return {m: args for m, args in runs.items() if m in methods}


def reproduce(data_dir: Path, sets: list[str], scales: list[int], work: Path,
              methods: list[str] = METHODS) -> list[dict]:
    """Convert the weights, evaluate every method x scale; one row per method x set x scale."""
    rows = []
    for scale in scales:
        for method, extra in _runs(data_dir / "weights", scale, work, methods).items():
            t0 = time.perf_counter()
            metrics = _evaluate(work / f"{method}_x{scale}", sets, scale, data_dir, *extra)
            print(f"{method} x{scale}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            for name in sets:
                m = metrics[name]
                rows.append({"method": method, "set": name, "scale": scale, "psnr": m["psnr"], "ssim": m["ssim"],
                             "published_psnr": m.get("published_psnr"), "published_ssim": m.get("published_ssim")})
    return rows


def markdown(rows: list[dict]) -> str:
    """The table: one line per method x set x scale, with differences and the verdict."""
    lines = ["| method | set | scale | PSNR published | PSNR ours | diff | SSIM published | SSIM ours | diff | "
             "within |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (METHODS.index(r["method"]), r["scale"])):
        p_psnr, p_ssim = r["published_psnr"], r["published_ssim"]
        tol = DEFAULT_TOLERANCE.get(r["method"], TOLERANCE.get(r["set"], 0.05))
        ok = p_psnr is not None and abs(r["psnr"] - p_psnr) <= tol + 1e-9
        psnr_cells = (f"{p_psnr:.2f} | {r['psnr']:.3f} | {r['psnr'] - p_psnr:+.3f}" if p_psnr is not None
                      else f"- | {r['psnr']:.3f} | -")
        ssim_cells = (f"{p_ssim:.4f} | {r['ssim']:.4f} | {r['ssim'] - p_ssim:+.4f}" if p_ssim is not None
                      else f"- | {r['ssim']:.4f} | -")
        lines.append(f"| {r['method']} | {r['set']} | x{r['scale']} | {psnr_cells} | {ssim_cells} | "
                     f"{'yes' if ok else 'NO'} ({tol} dB) |")
    return "\n".join(lines)


def main_data_dir(given: str | Path | None = None) -> Path:
    """The benchmark data folder (``given`` or ``$SR_DATA_DIR``); exits with a message if absent."""
    given = given or os.environ.get("SR_DATA_DIR")
    if not given or not Path(given).is_dir():
        sys.exit("error: no benchmark data: set SR_DATA_DIR or pass --data-dir (the folder with benchmark/, weights/)")
    return Path(given).resolve()


def replace_block(readme: Path, start: str, end: str, table: str) -> None:
    """Put ``table`` between the ``start`` and ``end`` marker lines of ``readme``."""
    text = readme.read_text()
    if start not in text or end not in text:
        sys.exit(f"error: {readme} has no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")
    print(f"updated {readme}", file=sys.stderr)


def parser_for(doc: str) -> argparse.ArgumentParser:
    """A script's arguments: --data-dir and --write-readme (more added by the script)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="the benchmark data folder (default: $SR_DATA_DIR)")
    parser.add_argument("--write-readme", action="store_true",
                        help=f"replace the table in {HERE / 'README.md'} (reproduce.py: and its summary in docs/)")
    return parser


SUMMARY_PAGE = ROOT / "docs" / "reproducing.md"
SUMMARY_START, SUMMARY_END = "<!-- released:start -->", "<!-- released:end -->"
SUMMARY_SETS = ("Set5", "Set14", "B100")


def summary(rows: list[dict]) -> str:
    """The manual's short table: one line per method and scale, ours / published PSNR (dB) on
    each set, and the largest difference."""
    lines = ["| method | scale | " + " | ".join(f"{s} ours / published" for s in SUMMARY_SETS) + " | largest diff |",
             "|---|---|" + "---|" * len(SUMMARY_SETS) + "---|"]
    groups: dict[tuple[str, int], dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["scale"]), {})[r["set"]] = r
    for (method, scale), by_set in sorted(groups.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        cells = [f"{by_set[s]['psnr']:.3f} / {by_set[s]['published_psnr']:.2f}" if s in by_set else "-"
                 for s in SUMMARY_SETS]
        worst = max(abs(r["psnr"] - r["published_psnr"]) for r in by_set.values())
        lines.append(f"| {method} | x{scale} | {' | '.join(cells)} | {worst:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--sets", default="Set5,Set14,B100")
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"those to run (of {','.join(METHODS)}); the rows of other methods and scales are kept "
                             f"from {ROWS.name}")
    args = parser.parse_args()
    data_dir = main_data_dir(args.data_dir)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"error: --methods {','.join(unknown)}: not among {','.join(METHODS)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scales = [int(s) for s in args.scales.split(",")]
        rows = reproduce(data_dir, args.sets.split(","), scales, Path(tmp), methods)
    kept = json.loads(ROWS.read_text()) if ROWS.is_file() else []
    rerun = {(m, s) for m in methods for s in scales}
    rows = [r for r in kept if (r["method"], r["scale"]) not in rerun] + rows
    ROWS.write_text(json.dumps(rows, indent=1))
    table = markdown(rows)
    print(table)
    print(f"\n{len(rows)} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.write_readme:
        replace_block(HERE / "README.md", MARK_START, MARK_END, table)
        replace_block(SUMMARY_PAGE, SUMMARY_START, SUMMARY_END, summary(rows))


if __name__ == "__main__":
    main()
