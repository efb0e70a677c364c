"""Zero-shot SR (Shocher et al., CVPR 2018) on Set5 / Set14 at x2, beside bicubic and the paper.

    python experiments/paper_tables/zssr.py [--sets Set5,Set14] [--max-steps N]
    python experiments/paper_tables/zssr.py --write-readme   # into docs/beyond.md

For each image: the standard LR (MATLAB bicubic of the uint8 HR, modcropped to the scale,
rounded to uint8), then ``python -m sr_lightning.train experiment=zssr input=LR.png
output=SR.png`` (as a user runs it: training on the LR image alone, the paper's learning-rate
policy, the x8 self-ensemble), scored like the benchmark tables: Y of BT.601, the scale's
border shaved, PSNR/SSIM of the uint8 result. ``--max-steps`` caps the paper's 3000 steps
(the policy usually stops earlier). Needs the benchmark data (``SR_DATA_DIR``).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from reproduce import ROOT, _run, main_data_dir, parser_for, replace_block

from sr_lightning.metrics import psnr, ssim
from sr_lightning.ops import imresize

MARK_START, MARK_END = "<!-- zssr:start -->", "<!-- zssr:end -->"
# Shocher et al. 2018, Table 1 (bicubic downscaling, x2): PSNR / SSIM.
PUBLISHED = {"Set5": (37.37, 0.9570), "Set14": (33.00, 0.9108)}


def _tensor(path: Path) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def one_image(hr_path: Path, scale: int, work: Path, max_steps: int | None) -> dict:
    hr = np.asarray(Image.open(hr_path).convert("RGB"))
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = imresize(torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None], 1 / scale)  # uint8 in and out
    lr_path, sr_path = work / f"{hr_path.stem}_lr.png", work / f"{hr_path.stem}_zssr.png"
    Image.fromarray(lr[0].permute(1, 2, 0).numpy()).save(lr_path)
    args = ["-m", "sr_lightning.train", "experiment=zssr", f"input={lr_path}", f"output={sr_path}",
            f"data.scale={scale}", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={work / hr_path.stem}"]
    if max_steps:
        args.append(f"trainer.max_steps={max_steps}")
    t0 = time.perf_counter()
    _run(args)
    seconds = time.perf_counter() - t0
    hr_t = torch.from_numpy(hr.astype(np.float64) / 255).permute(2, 0, 1)[None]
    sr_t = _tensor(sr_path)
    bicubic = torch.round(imresize(_tensor(lr_path), scale).clamp(0, 1) * 255) / 255
    kw = {"crop_border": scale, "y_channel": True}
    return {"image": hr_path.stem, "psnr": float(psnr(sr_t, hr_t, **kw)[0]), "ssim": float(ssim(sr_t, hr_t, **kw)[0]),
            "bicubic_psnr": float(psnr(bicubic, hr_t, **kw)[0]), "bicubic_ssim": float(ssim(bicubic, hr_t, **kw)[0]),
            "seconds": seconds, "steps": trained_steps(work / hr_path.stem)}


def trained_steps(run_dir: Path) -> int:
    """The steps a run trained (the policy may stop it early), from its CSV log."""
    (log,) = run_dir.rglob("metrics.csv")
    with log.open() as f:
        return 1 + max(int(row["step"]) for row in csv.DictReader(f) if row.get("step"))


def markdown(rows: dict[str, list[dict]], max_steps: int | None) -> str:
    lines = ["| set | images | ZSSR PSNR / SSIM (ours) | bicubic | gain (dB) | published ZSSR | steps per image | "
             "seconds per image |", "|---|---|---|---|---|---|---|---|"]
    for name, images in rows.items():
        p, s = np.mean([r["psnr"] for r in images]), np.mean([r["ssim"] for r in images])
        bp, bs = np.mean([r["bicubic_psnr"] for r in images]), np.mean([r["bicubic_ssim"] for r in images])
        pub = PUBLISHED.get(name)
        lines.append(f"| {name} | {len(images)} | {p:.3f} / {s:.4f} | {bp:.3f} / {bs:.4f} | {p - bp:+.3f} | "
                     f"{'' if pub is None else f'{pub[0]:.2f} / {pub[1]:.4f}'} | "
                     f"{np.mean([r['steps'] for r in images]):.0f} | {np.mean([r['seconds'] for r in images]):.0f} |")
    cap = f"at most {max_steps} steps" if max_steps else "the paper's policy, at most 3000 steps"
    return "\n".join(lines) + f"\n\nTraining: {cap} per image."


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--sets", default="Set5,Set14")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--images", type=int, default=None, help="only the first N images of each set")
    args = parser.parse_args()
    data_dir = main_data_dir(args.data_dir)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            files = sorted((data_dir / "benchmark" / name).glob("*.png"))[: args.images]
            for f in files:
                r = one_image(f, args.scale, Path(tmp), args.max_steps)
                rows.setdefault(name, []).append(r)
                print(json.dumps({"set": name, **r}), file=sys.stderr, flush=True)
    table = markdown(rows, args.max_steps)
    print(table)
    if args.write_readme:
        replace_block(ROOT / "docs/beyond.md", MARK_START, MARK_END, table)


if __name__ == "__main__":
    main()
