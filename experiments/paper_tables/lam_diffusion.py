"""Diffusion index (LAM, Gu & Dong 2021) of released and trained networks on the same B100 windows.

    python experiments/paper_tables/lam_diffusion.py [--ckpt edsr=PATH --ckpt swinir_light=PATH]
    python experiments/paper_tables/lam_diffusion.py --write-readme   # into docs/beyond.md

The windows: on every B100 image (modcropped to 4), the 16x16 HR window with the most
oriented structure (gradient energy x coherence^2 of the structure tensor on Y, the paper's
"hard" patches: edges, stripes, grids), at least 128 pixels from the border; the 5 images
whose best window scores highest. Each is cut out as a 256x256 HR crop centred on its
window (the LR input is 64x64 at x4 for every network). Every network explains the same
crops with ``python -m sr_lightning.explain ... from_hr=true window=[120,120,16]`` (as a
user runs it): released SRCNN 9-5-5 (x4.mat), VDSR (one model) and IMDN (x4.pth), and any
``--ckpt NAME=PATH`` (x4 checkpoints). Needs the benchmark data (``SR_DATA_DIR``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from reproduce import ROOT, _run, main_data_dir, parser_for, replace_block

MARK_START, MARK_END = "<!-- lam:start -->", "<!-- lam:end -->"
SCALE, WINDOW, CROP, MARGIN = 4, 16, 256, 128
# Set5 x4 PSNR of the released weights, measured (README: Reproducing the papers).
SET5_X4 = {"srcnn": 30.484, "vdsr": 31.343, "imdn": 32.211}


def window_scores(y: np.ndarray) -> tuple[float, int, int]:
    """The best (score, top, left) of 16x16 windows of Y (H, W) in [0, 1] on a stride-8 grid."""
    t = torch.from_numpy(y)[None, None].double()
    gy, gx = t[..., 1:, :-1] - t[..., :-1, :-1], t[..., :-1, 1:] - t[..., :-1, :-1]
    jxx, jyy, jxy = (F.avg_pool2d(v, WINDOW, stride=8) for v in (gx * gx, gy * gy, gx * gy))
    energy = jxx + jyy
    coherence = ((jxx - jyy) ** 2 + 4 * jxy ** 2).sqrt() / energy.clamp_min(1e-12)
    score = (energy * coherence ** 2)[0, 0]
    rows, cols = score.shape
    best = (-1.0, 0, 0)
    for i in range(rows):
        for j in range(cols):
            top, left = 8 * i, 8 * j
            cy, cx = top + WINDOW // 2, left + WINDOW // 2
            inside = MARGIN <= cy <= y.shape[0] - MARGIN and MARGIN <= cx <= y.shape[1] - MARGIN
            if inside and float(score[i, j]) > best[0]:
                best = (float(score[i, j]), top, left)
    return best


def crops(data_dir: Path, work: Path, count: int) -> list[tuple[str, Path, tuple[int, int]]]:
    """The ``count`` best B100 windows as 256x256 HR crop files: (image, crop path, window top-left in the image)."""
    found = []
    for path in sorted((data_dir / "benchmark/B100").glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[0] // SCALE * SCALE, rgb.shape[1] // SCALE * SCALE
        rgb = rgb[:h, :w]
        y = (16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255) / 255
        score, top, left = window_scores(y)
        if score > 0:
            found.append((score, path.stem, rgb, top, left))
    found.sort(key=lambda f: -f[0])
    out = []
    for _, name, rgb, top, left in found[:count]:
        y0 = (top + WINDOW // 2 - CROP // 2) // SCALE * SCALE
        x0 = (left + WINDOW // 2 - CROP // 2) // SCALE * SCALE
        y0, x0 = min(max(0, y0), rgb.shape[0] - CROP), min(max(0, x0), rgb.shape[1] - CROP)
        crop = work / f"{name}_crop.png"
        Image.fromarray(rgb[y0: y0 + CROP, x0: x0 + CROP]).save(crop)
        out.append((name, crop, (top - y0, left - x0)))
    return out


def explain(ckpt: Path, crop: Path, window: tuple[int, int], out: Path) -> float:
    proc = _run(["-m", "sr_lightning.explain", f"ckpt_path={ckpt}", f"input={crop}", "from_hr=true",
                 f"window=[{window[0]},{window[1]},{WINDOW}]", f"output={out}"])
    last = proc.stdout.strip().splitlines()[-1]
    return float(last.split("=", 1)[1])


def measure(data_dir: Path, trained: dict[str, Path], work: Path, count: int) -> dict:
    weights = data_dir / "weights"
    ckpts = {"srcnn": work / "srcnn_x4.ckpt", "vdsr": work / "vdsr.ckpt", "imdn": work / "imdn_x4.ckpt"}
    _run(["-m", "sr_lightning.convert", "--format", "srcnn-mat", "--scale", "4",
          str(weights / "srcnn_955_imagenet/x4.mat"), str(ckpts["srcnn"])])
    _run(["-m", "sr_lightning.convert", "--format", "vdsr-mat", "--scale", "4",
          str(weights / "vdsr_official/vdsr_official.mat"), str(ckpts["vdsr"])])
    _run(["-m", "sr_lightning.convert", "--format", "pth", "--net", "imdn", "--scale", "4",
          str(weights / "imdn_official/x4.pth"), str(ckpts["imdn"])])
    ckpts.update(trained)
    windows = crops(data_dir, work, count)
    result = {"windows": [(name, list(w)) for name, _, w in windows], "di": {}, "seconds": {}}
    for net, ckpt in ckpts.items():
        t0 = time.perf_counter()
        result["di"][net] = [explain(ckpt, crop, w, work / f"{net}_{name}_lam.png") for name, crop, w in windows]
        result["seconds"][net] = time.perf_counter() - t0
        print(f"{net}: DI {result['di'][net]} ({result['seconds'][net]:.0f} s)", file=sys.stderr, flush=True)
    return result


def markdown(result: dict) -> str:
    names = [name for name, _ in result["windows"]]
    head = ["network", *names, "mean DI", "Set5 x4 PSNR", "explain s (all windows)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for net, values in sorted(result["di"].items(), key=lambda kv: np.mean(kv[1])):
        psnr = SET5_X4.get(net)
        lines.append(f"| {net} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.mean(values):.2f} | "
                     f"{'' if psnr is None else f'{psnr:.2f}'} | {result['seconds'][net]:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--ckpt", action="append", default=[], help="NAME=PATH of an x4 checkpoint (repeatable)")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="keep the crops and maps in this folder")
    args = parser.parse_args()
    data_dir = main_data_dir(args.data_dir)
    trained = {}
    for spec in args.ckpt:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            sys.exit(f"error: --ckpt {spec!r}: give NAME=PATH of an existing checkpoint")
        trained[name] = Path(path).resolve()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = measure(data_dir, trained, work, args.windows)
    table = markdown(result)
    print(table)
    print(json.dumps(result), file=sys.stderr)
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.write_readme:
        replace_block(ROOT / "docs/beyond.md", MARK_START, MARK_END, table)


if __name__ == "__main__":
    main()
