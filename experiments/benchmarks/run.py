"""Speed benchmark: the hardware's conv roof, then each network's training step in a plain
fp32 NCHW PyTorch loop vs the project's defaults, the data pipeline, imresize, and tiled
inference. Ratios are measured side by side in one run.

    python experiments/benchmarks/run.py [--steps 10] [--nets vdsr,srcnn]    # or: make bench

Prints a table and writes experiments/benchmarks/results.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from sr_lightning.data import SRDataModule
from sr_lightning.hardware import resolve_precision
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import create_net, list_nets
from sr_lightning.ops.resize import imresize, weight_matrix
from sr_lightning.zoo import net_gflops

HERE = Path(__file__).resolve().parent
BATCH, HR_PATCH, SCALE = 16, 48, 2  # the reference step: batch 16, 48x48 HR patches, x2


def _time(fn, steps: int, warmup: int = 2, best: bool = False) -> float:
    """Median (or with ``best``, the fastest) seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(min(times) if best else np.median(times))


ROOF_SHAPES = ((16, 64, 48), (16, 64, 96), (8, 256, 64))  # (batch, channels, side): VDSR's layer and two larger


def roof(steps: int) -> dict[str, float]:
    """The best TFLOP/s of a CxC 3x3 convolution forward over :data:`ROOF_SHAPES`, in three
    settings (fastest call of ``steps``)."""
    out: dict[str, float] = {}
    for n, c, side in ROOF_SHAPES:
        x, w = torch.randn(n, c, side, side), torch.randn(c, c, 3, 3)
        xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        flops = 2 * c * c * 9 * n * side * side
        settings = {"fp32 NCHW": (x, w, False), "fp32 channels_last": (xc, wc, False),
                    "bf16 channels_last": (xc, wc, True)}
        for label, (xi, wi, bf16) in settings.items():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                best = _time(lambda xi=xi, wi=wi: F.conv2d(xi, wi, padding=1), steps, best=True)
            out[label] = max(out.get(label, 0.0), flops / best / 1e12)
    return out


def plain_step_seconds(name: str, steps: int) -> float:
    """A hand-written fp32 NCHW training step (Adam, L1) with the same network and batch."""
    torch.manual_seed(0)
    net = create_net(name, scale=SCALE, in_channels=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    lr, hr = torch.rand(BATCH, 1, HR_PATCH // SCALE, HR_PATCH // SCALE), torch.rand(BATCH, 1, HR_PATCH, HR_PATCH)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.l1_loss(net(lr), hr).backward()
        opt.step()

    return _time(step, steps)


class _StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._t0)


def project_step_seconds(name: str, steps: int) -> float:
    """The project's training step through Lightning with the defaults (precision auto,
    channels_last), on the same batch shape; the data loading is outside the timed span."""
    torch.manual_seed(0)
    dm = SRDataModule(train_dir="sample:train", val_dir=None, scale=SCALE, patch_size=HR_PATCH // SCALE,
                      batch_size=BATCH, steps_per_epoch=steps + 2)
    module = SRLitModule(net={"name": name, "scale": SCALE, "in_channels": 1}, loss={"_target_": "torch.nn.L1Loss"},
                         optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
                         channels_last=True)
    timer = _StepTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=resolve_precision("auto", "cpu"),
                        max_steps=steps + 2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return float(np.median(timer.times[2:]))


def data_batches_per_second(steps: int) -> float:
    """Batches/s of the default training DataLoader (sample data, the default config's sizes)."""
    dm = SRDataModule(train_dir="sample:train", val_dir=None, scale=SCALE, patch_size=24, batch_size=BATCH,
                      steps_per_epoch=steps)
    dm.setup("fit")
    t0 = time.perf_counter()
    n = sum(1 for _ in dm.train_dataloader())
    return n / (time.perf_counter() - t0)


def imresize_loop(x: np.ndarray, scale: float) -> np.ndarray:
    """The same MATLAB bicubic as ``imresize`` (float, clamp), one output row/column at a time."""
    def axis(a: np.ndarray, n_out: int) -> np.ndarray:  # resize along axis 0
        w = weight_matrix(a.shape[0], n_out, scale, True, "clamp").numpy()
        out = np.empty((n_out, *a.shape[1:]))
        for i in range(n_out):
            nz = np.nonzero(w[i])[0]
            out[i] = np.tensordot(w[i, nz], a[nz], axes=1)
        return out

    h, w = x.shape
    y = axis(x, int(np.ceil(h * scale)))
    return axis(y.T, int(np.ceil(w * scale))).T


def imresize_speed(steps: int) -> dict[str, float]:
    img = np.random.default_rng(0).random((512, 512))
    t = torch.from_numpy(img)
    ours = _time(lambda: imresize(t, 0.5, border="clamp"), steps)
    loop = _time(lambda: imresize_loop(img, 0.5), max(2, steps // 5), warmup=1)
    np.testing.assert_allclose(imresize_loop(img, 0.5), imresize(t, 0.5, border="clamp").numpy(), atol=1e-10)
    return {"imresize ms": ours * 1e3, "loop ms": loop * 1e3, "speedup": loop / ours}


def tiled_inference() -> dict[str, float]:
    """VDSR x2 on a 1024x1024 LR image with the upscale defaults (tile 256, overlap 48), in a
    fresh process: output MP/s and peak RSS."""
    code = (
        "import resource, time, torch\n"
        "from sr_lightning.nets import create_net\n"
        "from sr_lightning.tiling import tiled_forward\n"
        "net = create_net('vdsr', scale=2, in_channels=1).eval().to(memory_format=torch.channels_last)\n"
        "x = torch.rand(1, 1, 1024, 1024)\n"
        "t0 = time.perf_counter()\n"
        "with torch.inference_mode():\n"
        "    y = tiled_forward(lambda t: net(t.contiguous(memory_format=torch.channels_last)), x, 2, 256, 48)\n"
        "dt = time.perf_counter() - t0\n"
        "print(y.numel() / 1e6 / dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"MP/s": float(out[0]), "peak RSS MB": float(out[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nets", default=",".join(n for n in list_nets() if n != "bicubic"))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results: dict = {"date": str(date.today()), "machine": f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} threads, torch {torch.__version__}",
                     "precision (auto)": resolve_precision("auto", "cpu")}
    results["roof TFLOP/s"] = roof(args.steps)
    bf16_roof = results["roof TFLOP/s"]["bf16 channels_last"]
    rows = []
    for name in args.nets.split(","):
        flops = 3 * net_gflops(create_net(name, scale=SCALE, in_channels=1)) * 1e9 * BATCH * HR_PATCH**2 / 1e6
        plain, ours = plain_step_seconds(name, args.steps), project_step_seconds(name, args.steps)
        rows.append({"net": name, "plain fp32 NCHW ms": plain * 1e3, "defaults ms": ours * 1e3,
                     "speedup": plain / ours, "output MP/s": BATCH * HR_PATCH**2 / 1e6 / ours,
                     "TFLOP/s": flops / ours / 1e12, "% of bf16 roof": 100 * flops / ours / 1e12 / bf16_roof})
        print(rows[-1], file=sys.stderr, flush=True)
    results["train step"] = rows
    results["data batches/s"] = data_batches_per_second(50)
    results["imresize"] = imresize_speed(args.steps)
    results["tiled inference (vdsr x2, 1024x1024 LR)"] = tiled_inference()
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = [f"# Benchmark results ({results['date']}; {results['machine']})", "",
          "Command: `python experiments/benchmarks/run.py` (`make bench`).", "",
          "| roof (3x3 conv, best of (batch, channels, side) in " + str(ROOF_SHAPES) + ") | TFLOP/s |",
          "|---|---|",
          *(f"| {k} | {v:.3f} |" for k, v in results["roof TFLOP/s"].items()), "",
          f"Training step: batch {BATCH}, {HR_PATCH}x{HR_PATCH} HR patches, x{SCALE}, Y; plain = a hand-written fp32 "
          f"NCHW loop; defaults = Lightning with precision auto ({results['precision (auto)']}) and channels_last. "
          "FLOPs = 3 x forward (flop_counter).", "",
          "| network | plain fp32 NCHW (ms) | defaults (ms) | speedup | output MP/s | TFLOP/s | % of bf16 roof |",
          "|---|---|---|---|---|---|---|",
          *(f"| {r['net']} | {r['plain fp32 NCHW ms']:.1f} | {r['defaults ms']:.1f} | {r['speedup']:.2f}x | "
            f"{r['output MP/s']:.2f} | {r['TFLOP/s']:.3f} | {r['% of bf16 roof']:.0f} % |" for r in rows), "",
          f"Data pipeline (default DataLoader, batch {BATCH}, 24x24 LR): {results['data batches/s']:.1f} batches/s.",
          "",
          f"imresize (512x512 -> 256x256, float): {results['imresize']['imresize ms']:.2f} ms vs a per-row loop "
          f"{results['imresize']['loop ms']:.1f} ms ({results['imresize']['speedup']:.0f}x).", "",
          "Tiled inference, VDSR x2 on 1024x1024 LR (tile 256, overlap 48): "
          f"{results['tiled inference (vdsr x2, 1024x1024 LR)']['MP/s']:.2f} output MP/s, peak RSS "
          f"{results['tiled inference (vdsr x2, 1024x1024 LR)']['peak RSS MB']:.0f} MB.", ""]
    (HERE / "results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
