"""What each evaluation-protocol option changes, measured: PSNR/SSIM of bicubic and of the
released SRCNN x3 model on Set5/Set14/B100 at x3, for the default protocol and for one
option changed at a time.

    python experiments/paper_tables/protocol.py

Every number comes from ``python -m sr_lightning.eval`` (subprocess), as in reproduce.py.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce import _evaluate, _run, main_data_dir  # noqa: E402

SETS = ["Set5", "Set14", "B100"]
SCALE = 3
# label -> overrides (one option changed from the default protocol)
OPTIONS = {
    "default (y_matlab, crop scale, uint8 SR, Y)": [],
    "data/degradation=benchmark_lr (LR from uint8 RGB, clamp)": ["data/degradation=benchmark_lr"],
    "data/degradation=float (LR from float RGB)": ["data/degradation=float"],
    "data.degradation.border=clamp": ["data.degradation.border=clamp"],
    "evaluation.crop_border=scale+6": ["evaluation.crop_border=scale+6"],
    "evaluation.quantize=false": ["evaluation.quantize=false"],
}
RGB_OPTIONS = {  # bicubic only: SRCNN is a Y network
    "RGB pairs (data.channels=3, benchmark_lr), Y metric": ["data.channels=3", "data/degradation=benchmark_lr"],
    "RGB pairs, evaluation.y_channel=false (RGB PSNR)": ["data.channels=3", "data/degradation=benchmark_lr",
                                                         "evaluation.y_channel=false"],
}


def main() -> None:
    data_dir = main_data_dir()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        srcnn = work / "srcnn.ckpt"
        _run(["-m", "sr_lightning.convert", "--format", "srcnn-mat", "--scale", str(SCALE),
              str(data_dir / f"weights/srcnn_955_imagenet/x{SCALE}.mat"), str(srcnn)])
        for k, (label, extra) in enumerate({**OPTIONS, **RGB_OPTIONS}.items()):
            methods = {"bicubic": ["model=bicubic"]}
            if label in OPTIONS:
                methods["srcnn"] = [f"ckpt_path={srcnn}"]
            for method, args in methods.items():
                m = _evaluate(work / f"{method}{k}", SETS, SCALE, data_dir, *args, *extra)
                rows.append((label, method, m))
    base = {method: m for label, method, m in rows if label.startswith("default")}
    print(f"| option (x{SCALE}) | method | " + " | ".join(f"{s} PSNR (diff)" for s in SETS) + " | "
          + " | ".join(f"{s} SSIM (diff)" for s in SETS) + " |")
    print("|---|---|" + "---|" * (2 * len(SETS)))
    for label, method, m in rows:
        b = base[method]
        psnr = " | ".join(f"{m[s]['psnr']:.3f} ({m[s]['psnr'] - b[s]['psnr']:+.3f})" for s in SETS)
        ssim = " | ".join(f"{m[s]['ssim']:.4f} ({m[s]['ssim'] - b[s]['ssim']:+.4f})" for s in SETS)
        print(f"| {label} | {method} | {psnr} | {ssim} |")
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
