"""Training data at scale: memory, disk and shards on a set of 200 and of 2,000 images.

    python experiments/benchmarks/data_scale.py [--sizes 200,2000] [--steps 200]

Builds synthetic HR sets of 320x320 crops of the BSD200 training photos (in
$SR_DATA_DIR/train/BSD200; each photo in its 8 flips/rotations, at shifted places), packs
the larger ones into shards with ``python -m sr_lightning.prepare``, and measures, for
``data.storage=memory``, ``data.storage=disk`` and ``data=shards`` (each set size in a fresh
process; Y, x2, batch 16 of 24x24 LR patches, the LR cache off so every run does the work):
peak RSS of the process after setup and after ``--steps`` batches in-process, the peak RSS
of a DataLoader worker, and batches/s with 0, 1 and 2 workers, against the batches/s VDSR
and EDSR-baseline train on this machine class (experiments/benchmarks/results.json).
Prints a table and writes experiments/benchmarks/data_scale.json and .md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIDE = 320
WORKERS = (0, 1, 2)
MODES = ("memory", "disk", "shards")


def rss_mb() -> float:
    """This process's resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or of its finished children)."""
    return resource.getrusage(who).ru_maxrss / 1024


def build_set(source: Path, n: int, out: Path) -> Path:
    """``n`` 320x320 crops of the photos in ``source``, each photo in its 8 orientations."""
    photos = sorted(source.glob("*.png"))
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = np.asarray(Image.open(photos[i % len(photos)]).convert("RGB"))
        variant = i // len(photos)
        photo = np.rot90(photo[:, ::-1] if variant % 2 else photo, (variant // 2) % 4)
        h, w = photo.shape[:2]
        y, x = (variant * 37) % (h - SIDE + 1), (variant * 53) % (w - SIDE + 1)
        Image.fromarray(np.ascontiguousarray(photo[y: y + SIDE, x: x + SIDE])).save(out / f"{i:05d}.png")
    return out


def measure(mode: str, location: str, steps: int, workers_counts: tuple[int, ...] = WORKERS, batch: int = 16,
            patch: int = 24, channels: int = 1, cache_dir: str | None = None) -> dict[str, float]:
    """One mode on one set, in this (fresh) process: batches of ``batch`` ``patch`` x ``patch``
    LR patches, x2, Y (``channels=1``) or RGB from the uint8 RGB HR (``channels=3``); the LR
    cache off, or in ``cache_dir``."""
    from sr_lightning.data import SRDataModule
    from sr_lightning.data.pairs import BENCHMARK_LR

    kw = {"shards": {}} if mode == "shards" else {"storage": mode}
    if channels == 3:
        kw["degradation"] = asdict(BENCHMARK_LR)
    base = rss_mb()
    dm = SRDataModule(train_dir=location, val_dir=None, patch_size=patch, batch_size=batch, channels=channels,
                      steps_per_epoch=steps, cache_dir=cache_dir, seed=0, **kw)
    t0 = time.perf_counter()
    dm.setup("fit")
    row = {"setup s": time.perf_counter() - t0, "RSS after setup MB": rss_mb(), "imports MB": base}
    for workers in workers_counts:
        dm.num_workers = workers
        loader = iter(dm.train_dataloader())
        for _ in range(min(10, steps // 4)):  # start-up: workers, a shard stream's buffer
            next(loader)
        t0 = time.perf_counter()
        done = sum(1 for _ in loader)
        row[f"batches/s, {workers} workers"] = done / (time.perf_counter() - t0)
        del loader
        if workers == 0:
            row[f"RSS after {steps} steps MB"] = peak_mb()
    row["worker peak RSS MB"] = peak_mb(resource.RUSAGE_CHILDREN)
    return row


def consumption() -> dict[str, float]:
    """Batches/s VDSR and EDSR-baseline train here (results.json, this machine class)."""
    sys.path.insert(0, str(HERE.parents[1]))
    from sr_lightning.hardware import machine_class

    machines = json.loads((HERE / "results.json").read_text())["machines"]
    steps = {r["net"]: r["defaults ms"] for r in machines.get(machine_class(), {}).get("train step", [])}
    return {f"{net} trains (batches/s)": 1000 / steps[net] for net in ("vdsr", "edsr_baseline") if net in steps}


def markdown(result: dict) -> str:
    lines = [f"# Training data at scale ({result['date']}; {result['machine']})", "",
             f"Command: `{result['command']}`. {result['set']}", "",
             "| mode | images | setup (s) | RSS after setup (MB) | RSS after steps (MB) | worker peak RSS (MB) | "
             + " | ".join(f"batches/s, {w} workers" for w in WORKERS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(WORKERS)]
    for r in result["rows"]:
        lines.append(f"| {r['mode']} | {r['images']} | {r['setup s']:.1f} | {r['RSS after setup MB']:.0f} | "
                     f"{r[next(k for k in r if k.startswith('RSS after') and 'setup' not in k)]:.0f} | "
                     f"{r['worker peak RSS MB']:.0f} | "
                     + " | ".join(f"{r[f'batches/s, {w} workers']:.1f}" for w in WORKERS) + " |")
    lines += ["", "Consumption here: " + ", ".join(f"{k} {v:.1f}" for k, v in result["consumption"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # internal: mode location steps
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], int(args.measure[2]))))
        return
    import os

    sys.path.insert(0, str(HERE.parents[1]))
    from sr_lightning.hardware import describe_cpu

    source = Path(os.environ.get("SR_DATA_DIR", HERE.parents[2] / "shared" / "data")) / "train" / "BSD200"
    if not source.is_dir():
        sys.exit(f"error: {source} not found; set SR_DATA_DIR to the benchmark data folder (../shared/data)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            folder = build_set(source, n, Path(tmp) / f"hr{n}")
            shards = Path(tmp) / f"shards{n}"
            subprocess.run([sys.executable, "-m", "sr_lightning.prepare", f"input={folder}", f"output={shards}"],
                           check=True, capture_output=True)
            for mode in MODES:
                location = str(shards if mode == "shards" else folder)
                out = subprocess.run([sys.executable, __file__, "--measure", mode, location, str(args.steps)],
                                     check=True, capture_output=True, text=True).stdout
                rows.append({"mode": mode, "images": n, **json.loads(out.strip().splitlines()[-1])})
                print(rows[-1], flush=True)
    result = {"date": date.today().isoformat(), "machine": describe_cpu(),
              "command": f"python experiments/benchmarks/data_scale.py --sizes {args.sizes} --steps {args.steps}",
              "set": f"{SIDE}x{SIDE} crops of BSD200 (8 orientations); Y, x2, batch 16 of 24x24 LR patches, "
                     f"LR cache off; shards: whole images, patches_per_image 8, shuffle_buffer 1024.",
              "rows": rows, "consumption": consumption()}
    (HERE / "data_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    (HERE / "data_scale.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
