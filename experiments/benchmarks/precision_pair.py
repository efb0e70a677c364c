"""bf16 vs fp32 training quality at equal steps: the same run (config, seed, data order)
twice, once per precision; validation PSNR is computed in float32/64 either way.

    python experiments/benchmarks/precision_pair.py [train overrides ...]

Runs ``python -m sr_lightning.train trainer.precision=P logger=csv`` for P in bf16-mixed and
32-true into outputs/precision_pair/<P> (a finished run is reused), prints the val/psnr
curves side by side and writes experiments/benchmarks/precision_pair.json, which
run.py puts into results.md.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = Path("outputs/precision_pair")
PRECISIONS = ("bf16-mixed", "32-true")
OUT_FILE = HERE / "precision_pair.json"


def val_curve(run_dir: Path) -> dict[int, float]:
    """{step: val/psnr} from a run's CSV log (steps 1-based)."""
    curve: dict[int, float] = {}
    for f in run_dir.rglob("metrics.csv"):
        with f.open() as fh:
            for row in csv.DictReader(fh):
                if row.get("val/psnr"):
                    curve[int(row["step"]) + 1] = float(row["val/psnr"])
    return curve


def train_seconds(run_dir: Path) -> float | None:
    """The last time/train_s the run logged (None if it logged none)."""
    last = None
    for f in run_dir.rglob("metrics.csv"):
        with f.open() as fh:
            for row in csv.DictReader(fh):
                if row.get("time/train_s"):
                    last = float(row["time/train_s"])
    return last


def main() -> None:
    overrides = sys.argv[1:]
    runs = {}
    for precision in PRECISIONS:
        run_dir = RUNS / precision
        if not (run_dir / "metrics.json").is_file():
            cmd = [sys.executable, "-m", "sr_lightning.train", f"trainer.precision={precision}", "logger=csv",
                   f"hydra.run.dir={run_dir}", *overrides]
            print("running:", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        runs[precision] = {"curve": val_curve(run_dir), "train_s": train_seconds(run_dir),
                           "test": json.loads((run_dir / "metrics.json").read_text())}
    a, b = (runs[p]["curve"] for p in PRECISIONS)
    steps = sorted(set(a) & set(b))
    if not steps:
        raise SystemExit("the two runs share no validated step: give them the same trainer.max_steps and "
                         "validation interval")
    rows = [{"step": s, "bf16": a[s], "fp32": b[s], "bf16 - fp32": a[s] - b[s]} for s in steps]
    result = {"command": " ".join(["python experiments/benchmarks/precision_pair.py", *overrides]).strip(),
              "rows": rows, "train_s": {p: runs[p]["train_s"] for p in PRECISIONS},
              "test": {p: runs[p]["test"] for p in PRECISIONS}}
    OUT_FILE.write_text(json.dumps(result, indent=2) + "\n")
    print("| step | val/psnr bf16 | val/psnr fp32 | bf16 - fp32 (dB) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['bf16']:.3f} | {r['fp32']:.3f} | {r['bf16 - fp32']:+.3f} |")


if __name__ == "__main__":
    main()
