"""The learning curve of a training run: validation PSNR against training time.

    python experiments/time_to_quality/curve.py RUN_DIR [--write-readme]

RUN_DIR is the output folder of ``python -m sr_lightning.train ... logger=csv`` (its
metrics.csv holds val/psnr and time/train_s, logged by the TrainingClock callback at every
validation). Prints a markdown table; with --write-readme it replaces the part of
experiments/time_to_quality/README.md between the ``<!-- curve -->`` markers.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import yaml

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- curve -->", "<!-- /curve -->"


def curve(run_dir: Path) -> list[dict[str, float]]:
    """Rows of ``{"step", "train_s", "psnr", "ssim"}`` in step order, one per validation."""
    files = sorted(run_dir.rglob("metrics.csv"))
    if not files:
        raise SystemExit(f"{run_dir}: no metrics.csv; train with logger=csv")
    rows: dict[int, dict[str, float]] = {}
    for f in files:
        with f.open() as fh:
            for r in csv.DictReader(fh):
                step = int(r["step"]) + 1
                for key, name in (("val/psnr", "psnr"), ("val/ssim", "ssim"), ("time/train_s", "train_s")):
                    if r.get(key):
                        rows.setdefault(step, {"step": step})[name] = float(r[key])
    out = [r for _, r in sorted(rows.items()) if {"psnr", "train_s"} <= r.keys()]
    if not out:
        raise SystemExit(f"{run_dir}: no validation rows with time/train_s (is the clock callback on?)")
    return out


def validation_label(run_dir: Path) -> str:
    """What the run validated on, from its recorded config (``Set5 x3``); ``validation`` without one."""
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return "validation"
    data = yaml.safe_load(config.read_text()).get("data", {})
    return f"{Path(str(data.get('val_dir'))).name} x{data.get('scale')}"


def table(rows: list[dict[str, float]], test: dict | None, label: str = "validation") -> str:
    lines = [f"| training time (min) | step | {label} PSNR (dB) | SSIM |", "|---|---|---|---|"]
    lines += [f"| {r['train_s'] / 60:.1f} | {r['step']} | {r['psnr']:.3f} | {r.get('ssim', float('nan')):.4f} |"
              for r in rows]
    if test:
        lines += ["", "Test on the final weights (`metrics.json`):", "", "| set | PSNR (dB) | SSIM | bicubic PSNR |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {m['psnr']:.3f} | {m['ssim']:.4f} | {m['psnr_bicubic']:.3f} |"
                  for name, m in test.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    metrics = args.run_dir / "metrics.json"
    text = table(curve(args.run_dir), json.loads(metrics.read_text()) if metrics.is_file() else None,
                 validation_label(args.run_dir))
    print(text)
    if args.write_readme:
        readme = README.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{README}: no {START} ... {END} markers")
        README.write_text(re.sub(f"{re.escape(START)}.*{re.escape(END)}", f"{START}\n{text}\n{END}", readme,
                                 flags=re.DOTALL))


if __name__ == "__main__":
    main()
