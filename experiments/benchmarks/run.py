"""Speed benchmark: the hardware's conv roof, then each network's training step in a plain
fp32 NCHW PyTorch loop vs the project's defaults, the data pipeline, imresize and the LR
cache, and tiled inference. Ratios are measured side by side in one run.

    python experiments/benchmarks/run.py [--steps 10] [--nets vdsr,srcnn] [--compile-nets vdsr]
    make bench

Every measurement runs in a fresh process, so each side gets the process state it would
have on its own: the plain loop glibc's default allocator, the project's defaults the
allocator tuning that ``sr_lightning.train`` applies (``tune_allocator``). Prints a table
and writes experiments/benchmarks/results.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from sr_lightning.budget import time_calls
from sr_lightning.data import SRDataModule
from sr_lightning.data.pairs import Degradation, degradation_input, make_lr
from sr_lightning.hardware import resolve_precision, tune_allocator
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import create_net, list_nets
from sr_lightning.ops.resize import imresize
from sr_lightning.zoo import net_gflops

HERE = Path(__file__).resolve().parent
BATCH, HR_PATCH, SCALE = 16, 48, 2  # the reference step: batch 16, 48x48 HR patches, x2
ROOF_SHAPES = ((16, 64, 48), (16, 64, 96), (8, 256, 64))  # (batch, channels, side): VDSR's layer and two larger


# -- measurements (each runs in its own process via `run.py --measure NAME ...`) -------------
def roof(steps: int) -> dict[str, float]:
    """TFLOP/s of a CxC 3x3 convolution: the forward, best over :data:`ROOF_SHAPES`, in fp32
    NCHW, fp32 channels_last and bf16 channels_last; and forward + both backward convolutions
    (what a training step runs) in bf16 channels_last on VDSR's layer (16, 64, 48x48)."""
    out: dict[str, float] = {}
    for n, c, side in ROOF_SHAPES:
        x, w = torch.randn(n, c, side, side), torch.randn(c, c, 3, 3)
        xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        flops = 2 * c * c * 9 * n * side * side
        settings = {"fp32 NCHW": (x, w, False), "fp32 channels_last": (xc, wc, False),
                    "bf16 channels_last": (xc, wc, True)}
        for label, (xi, wi, bf16) in settings.items():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                best = time_calls(lambda xi=xi, wi=wi: F.conv2d(xi, wi, padding=1), steps, best=True)
            out[label] = max(out.get(label, 0.0), flops / best / 1e12)
    n, c, side = ROOF_SHAPES[0]
    x = torch.randn(n, c, side, side, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)

    def fwd_bwd() -> None:
        F.conv2d(x, w, padding=1)
        torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                            [True, True, False])

    fwd_bwd_s = time_calls(fwd_bwd, steps, best=True)
    out["bf16 channels_last fwd+bwd"] = 3 * 2 * c * c * 9 * n * side * side / fwd_bwd_s / 1e12
    return out


def plain_step(name: str, steps: int) -> float:
    """Seconds per hand-written fp32 NCHW training step (Adam, L1) of ``name``."""
    torch.manual_seed(0)
    net = create_net(name, scale=SCALE, in_channels=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    lr, hr = torch.rand(BATCH, 1, HR_PATCH // SCALE, HR_PATCH // SCALE), torch.rand(BATCH, 1, HR_PATCH, HR_PATCH)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.l1_loss(net(lr), hr).backward()
        opt.step()

    return time_calls(step, steps)


class _StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args: object) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, *args: object) -> None:
        self.times.append(time.perf_counter() - self._t0)


def project_step(name: str, steps: int, compile_net: bool = False) -> float:
    """Seconds per training step through Lightning with the project's defaults (precision
    auto, channels_last, gradient clipping 1.0, the tuned allocator), same batch shape; data
    loading is outside the timed span."""
    torch.manual_seed(0)
    warmup = 10 if compile_net else 2
    dm = SRDataModule(train_dir="sample:train", val_dir=None, scale=SCALE, patch_size=HR_PATCH // SCALE,
                      batch_size=BATCH, steps_per_epoch=steps + warmup)
    module = SRLitModule(net={"name": name, "scale": SCALE, "in_channels": 1}, loss={"_target_": "torch.nn.L1Loss"},
                         optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
                         channels_last=True, compile_net=compile_net)
    timer = _StepTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=resolve_precision("auto", "cpu"),
                        max_steps=steps + warmup, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0, gradient_clip_val=1.0)
    trainer.fit(module, datamodule=dm)
    return float(np.median(timer.times[warmup:]))


def data_batches_per_second(steps: int) -> float:
    """Batches/s of the default training DataLoader (sample data, the default config's sizes)."""
    dm = SRDataModule(train_dir="sample:train", val_dir=None, scale=SCALE, patch_size=HR_PATCH // SCALE,
                      batch_size=BATCH, steps_per_epoch=steps)
    dm.setup("fit")
    t0 = time.perf_counter()
    n = sum(1 for _ in dm.train_dataloader())
    return n / (time.perf_counter() - t0)


def _cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _resize_rows_loop(a: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB bicubic (antialiased, clamped borders) along axis 0, the straightforward way:
    for each output row, its kernel taps and weights, then the weighted sum of input rows."""
    n_in, n_out = a.shape[0], math.ceil(a.shape[0] * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.empty((n_out, a.shape[1]))
    for i in range(n_out):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        row, total = np.zeros(a.shape[1]), 0.0
        for j in range(left, left + math.ceil(width) + 2):
            weight = scale * _cubic(scale * (u - j)) if scale < 1 else _cubic(u - j)
            if weight:
                row += weight * a[min(max(j - 1, 0), n_in - 1)]
                total += weight
        out[i] = row / total
    return out


def imresize_loop(img: np.ndarray, scale: float) -> np.ndarray:
    """The per-row loop reference for a 2-D float64 image (height first, as MATLAB at equal scales)."""
    return _resize_rows_loop(_resize_rows_loop(img, scale).T, scale).T


IMRESIZE_CASES = (((512, 512), 2), ((1356, 2040), 2), ((1356, 2040), 4))  # (H, W), downscale factor


def imresize_speed(steps: int) -> list[dict[str, float]]:
    """imresize vs :func:`imresize_loop` on float64 images (one channel), checked equal."""
    rows = []
    for (h, w), factor in IMRESIZE_CASES:
        img = np.random.default_rng(0).random((h, w))
        t = torch.from_numpy(img)
        ours = time_calls(lambda t=t, f=factor: imresize(t, 1 / f, border="clamp"), steps)
        loop = time_calls(lambda img=img, f=factor: imresize_loop(img, 1 / f), max(2, steps // 5), warmup=1)
        np.testing.assert_allclose(imresize_loop(img, 1 / factor), imresize(t, 1 / factor).numpy(), atol=1e-12)
        rows.append({"size": f"{w}x{h}", "factor": factor, "imresize ms": ours * 1e3, "loop ms": loop * 1e3,
                     "speedup": loop / ours})
    return rows


def lr_cache_speed(images: int = 4) -> dict[str, float]:
    """ms per DIV2K-sized (2040x1356) RGB image to make its x2 LR (default y_matlab
    degradation): no cache, filling the on-disk cache, reading it back."""
    rng = np.random.default_rng(0)
    degradation = Degradation()
    xs = [degradation_input(rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8), degradation)
          for _ in range(images)]
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, cache_dir in (("no cache", None), ("cache: first run", cache), ("cache: later runs", cache)):
            t0 = time.perf_counter()
            for x in xs:
                make_lr(x, 2, degradation, cache_dir)
            out[label] = (time.perf_counter() - t0) / images * 1e3
    return out


def tiled_inference() -> dict[str, float]:
    """VDSR x2 on a 1024x1024 LR image with the upscale defaults (tile 256, overlap 48): output MP/s and peak RSS."""
    import resource

    from sr_lightning.tiling import tiled_forward

    net = create_net("vdsr", scale=2, in_channels=1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, 1024, 1024)
    t0 = time.perf_counter()
    with torch.inference_mode():
        y = tiled_forward(lambda t: net(t.contiguous(memory_format=torch.channels_last)), x, 2, 256, 48)
    dt = time.perf_counter() - t0
    return {"MP/s": y.numel() / 1e6 / dt, "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


MEASURES: dict[str, Callable[..., object]] = {
    "roof": lambda steps: roof(steps),
    "plain": lambda steps, name: plain_step(name, steps),
    "defaults": lambda steps, name: project_step(name, steps),
    "compiled": lambda steps, name: project_step(name, steps, compile_net=True),
    "untuned": lambda steps, name: project_step(name, steps),  # not in TUNED: glibc's default allocator
    "data": lambda steps: data_batches_per_second(5 * steps),
    "imresize": lambda steps: imresize_speed(steps),
    "lr_cache": lambda steps: lr_cache_speed(),
    "tiled": lambda steps: tiled_inference(),
}
TUNED = {"roof", "defaults", "compiled", "data", "lr_cache", "tiled"}  # run with the project's allocator tuning


def measure(kind: str, steps: int, *args: str) -> object:
    """Run one measurement in a fresh process and return its result."""
    cmd = [sys.executable, __file__, "--steps", str(steps), "--measure", kind, *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measurement {kind} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    roofs = results["roof TFLOP/s"]
    fwd_roof, train_roof = roofs["bf16 channels_last"], roofs["bf16 channels_last fwd+bwd"]
    md = [f"# Benchmark results ({results['date']}; {results['machine']})", "",
          f"Command: `{results['command']}` (`make bench`). Every measurement runs in a fresh process.", "",
          "## Roof", "",
          f"3x3 convolution, forward: best of (batch, channels, side) in {ROOF_SHAPES}; fwd+bwd: the forward and "
          "both backward convolutions (input and weight gradients) of VDSR's layer (16, 64, 48x48), which is what a "
          "training step runs.", "",
          "| setting | TFLOP/s |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in roofs.items()), "",
          "## Training step", "",
          f"Batch {BATCH}, {HR_PATCH}x{HR_PATCH} HR patches, x{SCALE}, Y. plain = a hand-written fp32 NCHW loop "
          "(Adam, L1) in a plain process; defaults = `SRLitModule` through Lightning with precision auto "
          f"({results['precision (auto)']}), channels_last, gradient clipping and the tuned allocator. "
          "FLOPs = 3 x forward (flop_counter). % of roof: of the forward roof, and of the fwd+bwd (training) roof.", "",
          "| network | plain fp32 NCHW (ms) | defaults (ms) | speedup | output MP/s | TFLOP/s | % of fwd roof "
          "| % of fwd+bwd roof |",
          "|---|---|---|---|---|---|---|---|"]
    for r in results["train step"]:
        md.append(f"| {r['net']} | {r['plain ms']:.1f} | {r['defaults ms']:.1f} | {r['speedup']:.2f}x | "
                  f"{r['output MP/s']:.2f} | {r['TFLOP/s']:.3f} | {100 * r['TFLOP/s'] / fwd_roof:.0f} % | "
                  f"{100 * r['TFLOP/s'] / train_roof:.0f} % |")
    if results["compiled"]:
        md += ["", "With `compile=true` (torch.compile of the network; the first steps pay the compilation):", "",
               "| network | defaults (ms) | defaults + compile (ms) | speedup over plain |", "|---|---|---|---|"]
        by_net = {r["net"]: r for r in results["train step"]}
        for name, ms in results["compiled"].items():
            md.append(f"| {name} | {by_net[name]['defaults ms']:.1f} | {ms:.1f} | "
                      f"{by_net[name]['plain ms'] / ms:.2f}x |")
        md += ["", "Without the allocator tuning (`tune_allocator=false`, glibc's defaults): " + ", ".join(
            f"{name} {ms:.1f} ms" for name, ms in results["defaults, tune_allocator=false"].items()) + "."]
    consumed = 1e3 / next(r["defaults ms"] for r in results["train step"] if r["net"] == "vdsr") \
        if any(r["net"] == "vdsr" for r in results["train step"]) else float("nan")
    md += ["", "## Data", "",
           f"Default training DataLoader (workers as configured: in-process), batch {BATCH}, "
           f"{HR_PATCH // SCALE}x{HR_PATCH // SCALE} LR patches: {results['data batches/s']:.0f} batches/s; "
           f"the default network (VDSR) consumes {consumed:.1f} batches/s "
           f"({results['data batches/s'] / consumed:.0f}x headroom).", "",
           "imresize (float64, one channel, clamp) vs a straightforward per-row loop of the same algorithm "
           "(`imresize_loop` in run.py: per output row, its taps and weights, then a weighted sum of input rows):", "",
           "| image | downscale | imresize (ms) | per-row loop (ms) | speedup |", "|---|---|---|---|---|",
           *(f"| {r['size']} | x{r['factor']} | {r['imresize ms']:.2f} | {r['loop ms']:.1f} | {r['speedup']:.0f}x |"
             for r in results["imresize"]), "",
           "LR cache (x2 LR of a 2040x1356 RGB image, default degradation), ms per image: " +
           ", ".join(f"{k} {v:.1f}" for k, v in results["LR cache ms/image"].items()) + ".", "",
           "## Inference", "",
           "Tiled inference, VDSR x2 on 1024x1024 LR (tile 256, overlap 48): "
           f"{results['tiled inference']['MP/s']:.2f} output MP/s, peak RSS "
           f"{results['tiled inference']['peak RSS MB']:.0f} MB.", ""]
    pair_file = HERE / "precision_pair.json"
    if pair_file.is_file():
        pair = json.loads(pair_file.read_text())
        md += ["## bf16 vs fp32 quality at equal steps", "", f"Command: `{pair['command']}`.", "",
               "| step | val/psnr bf16 | val/psnr fp32 | bf16 - fp32 (dB) |", "|---|---|---|---|",
               *(f"| {r['step']} | {r['bf16']:.3f} | {r['fp32']:.3f} | {r['bf16 - fp32']:+.3f} |"
                 for r in pair["rows"]), ""]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nets", default=",".join(n for n in list_nets() if n != "bicubic"))
    parser.add_argument("--compile-nets", default="vdsr",
                        help="networks also timed with compile=true and with tune_allocator=false ('' for none)")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = parser.parse_args()
    if args.measure:
        kind, *rest = args.measure
        if kind in TUNED:
            tune_allocator()
        print(json.dumps(MEASURES[kind](args.steps, *rest)))
        return
    command = "python experiments/benchmarks/run.py" + "".join(
        f" {a}" for a in sys.argv[1:])
    results: dict = {"date": str(date.today()), "command": command,
                     "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                                f"torch {torch.__version__}",
                     "precision (auto)": resolve_precision("auto", "cpu")}
    results["roof TFLOP/s"] = measure("roof", args.steps)
    print(results["roof TFLOP/s"], file=sys.stderr, flush=True)
    rows = []
    for name in args.nets.split(","):
        flops = 3 * net_gflops(create_net(name, scale=SCALE, in_channels=1)) * 1e9 * BATCH * HR_PATCH**2 / 1e6
        plain, ours = measure("plain", args.steps, name), measure("defaults", args.steps, name)
        rows.append({"net": name, "plain ms": plain * 1e3, "defaults ms": ours * 1e3, "speedup": plain / ours,
                     "output MP/s": BATCH * HR_PATCH**2 / 1e6 / ours, "TFLOP/s": flops / ours / 1e12})
        print(rows[-1], file=sys.stderr, flush=True)
    results["train step"] = rows
    results["compiled"] = {name: measure("compiled", args.steps, name) * 1e3
                           for name in filter(None, args.compile_nets.split(","))}
    results["defaults, tune_allocator=false"] = {name: measure("untuned", args.steps, name) * 1e3
                                                 for name in filter(None, args.compile_nets.split(","))}
    results["data batches/s"] = measure("data", args.steps)
    results["imresize"] = measure("imresize", args.steps)
    results["LR cache ms/image"] = measure("lr_cache", args.steps)
    results["tiled inference"] = measure("tiled", args.steps)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (HERE / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
