"""Speed benchmark: the hardware's conv roof, then each network's training step in a plain
fp32 NCHW PyTorch loop vs the project's defaults, the data pipeline, imresize and the LR
cache, and tiled inference. Ratios are measured side by side in one run.

    python experiments/benchmarks/run.py [--steps 10] [--nets vdsr,srcnn] [--settings NCHW,compile] [--isa avx2]
    make bench ARGS="--isa avx2"

Every measurement runs in a fresh process, so each side gets the process state it would
have on its own: the plain loop glibc's default allocator, the project's defaults the
allocator tuning that ``sr_lightning.train`` applies (``tune_allocator``). Prints a table
and writes experiments/benchmarks/results.md and results.json, where each machine class
(the instruction set: AVX2, AVX512+AMX, ...) keeps its own entry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from sr_lightning.budget import time_calls
from sr_lightning.config import CONF_DIR
from sr_lightning.data import SRDataModule
from sr_lightning.data.pairs import Degradation, degradation_input, make_lr
from sr_lightning.hardware import (
    ISA_LIMITS,
    cpu_model,
    isa_environment,
    machine_class,
    resolve_precision,
    tune_allocator,
)
from sr_lightning.nets import create_net
from sr_lightning.nets.flops import net_gflops
from sr_lightning.ops.resize import imresize

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run.py loaded from elsewhere (the tests)
    sys.path.insert(0, str(HERE))
from common import (  # noqa: E402  (experiments/benchmarks is not a package)
    BATCH,
    HR_PATCH,
    ROOF_SHAPES,
    SCALE,
    MeasurementFailed,
    measure,
    model_config,
    plain_step,
    project_step,
)


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


def one_thread(name: str, steps: int) -> float:
    """:func:`project_step` on one thread (torch's default is one per core)."""
    torch.set_num_threads(1)
    return project_step(name, steps)


def other_precision(name: str, steps: int) -> float:
    """:func:`project_step` in the precision ``auto`` does not pick here (fp32 where it picks
    bf16-mixed, else bf16-mixed: emulated without bf16 units, so at most 3 steps)."""
    if resolve_precision("auto", "cpu") == "bf16-mixed":
        return project_step(name, steps, precision="32-true")
    return project_step(name, min(steps, 3), precision="bf16-mixed")


def machine() -> dict[str, object]:
    """What the measuring processes run on, as they see it (after any ``--isa`` limit)."""
    return {"cpu": cpu_model(), "class": machine_class(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "precision (auto)": resolve_precision("auto", "cpu"),
            "limits": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ}}


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

    from sr_lightning.inference import tiled_forward

    net = create_net("vdsr", scale=2, in_channels=1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, 1024, 1024)
    t0 = time.perf_counter()
    with torch.inference_mode():
        y = tiled_forward(lambda t: net(t.contiguous(memory_format=torch.channels_last)), x, 2, 256, 48)
    dt = time.perf_counter() - t0
    return {"MP/s": y.numel() / 1e6 / dt, "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


MEASURES: dict[str, Callable[..., object]] = {
    "machine": lambda steps: machine(),
    "roof": lambda steps: roof(steps),
    "plain": lambda steps, name: plain_step(name, steps),
    "defaults": lambda steps, name: project_step(name, steps),
    "NCHW": lambda steps, name: project_step(name, steps, channels_last=False),
    "1 thread": lambda steps, name: one_thread(name, steps),
    "glibc allocator": lambda steps, name: project_step(name, steps),  # not in TUNED: glibc's defaults
    "compile": lambda steps, name: project_step(name, steps, compile_net=True),
    "other precision": lambda steps, name: other_precision(name, steps),
    "data": lambda steps: data_batches_per_second(5 * steps),
    "imresize": lambda steps: imresize_speed(steps),
    "lr_cache": lambda steps: lr_cache_speed(),
    "tiled": lambda steps: tiled_inference(),
}
# Measurements run with the project's allocator tuning (the rest with glibc's defaults).
TUNED = {"roof", "defaults", "NCHW", "1 thread", "compile", "other precision", "data", "lr_cache", "tiled"}
# Each network's step under the project's defaults with one of them changed (--settings).
VARIANTS = ("NCHW", "1 thread", "glibc allocator", "compile", "other precision")
# `make bench` times every model config but the full EDSR (40.7 M parameters: minutes a step
# on a 2-core CPU without AMX; --nets edsr adds it).
DEFAULT_NETS = tuple(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem not in ("bicubic", "edsr")))


def variant_ms(kind: str, steps: int, env: dict[str, str], name: str) -> float | str:
    """ms per step of a variant, or ``"fails: <error>"`` where that setting breaks the step
    (recorded in the table rather than ending the benchmark)."""
    try:
        return measure(kind, steps, env, name) * 1e3
    except MeasurementFailed as e:
        return f"fails: {e}"


# -- report ----------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def _rule(columns: int) -> str:
    return "|---" * columns + "|"


def _machines(runs: dict[str, dict]) -> list[str]:
    m = {c: r["machine"] for c, r in runs.items()}
    return [_row("", list(runs)), _rule(len(runs) + 1),
            _row("CPU", [x["cpu"] for x in m.values()]),
            _row("date", [r["date"] for r in runs.values()]),
            _row("command", [f"`{r['command']}`" for r in runs.values()]),
            _row("threads, torch", [f"{x['threads']}, {x['torch']}" for x in m.values()]),
            _row("ISA limits", [", ".join(f"{k}={v}" for k, v in x["limits"].items()) or "none" for x in m.values()]),
            _row("precision: auto", [x["precision (auto)"] for x in m.values()])]


def _roof_share(run: dict, row: dict) -> float:
    """The step's TFLOP/s as a percentage of the forward roof of the precision it runs in."""
    key = "bf16 channels_last" if run["machine"]["precision (auto)"].startswith("bf16") else "fp32 channels_last"
    return 100 * row["GFLOP"] / row["defaults ms"] / run["roof TFLOP/s"][key]


def _steps(runs: dict[str, dict]) -> list[str]:
    by_net = {c: {row["net"]: row for row in r["train step"]} for c, r in runs.items()}
    md = [_row("network", [f"{c} plain (ms) | {c} defaults (ms) | {c} speedup | {c} % roof" for c in runs]),
          _rule(4 * len(runs) + 1)]
    for net in sorted(set().union(*by_net.values())):
        cells = []
        for c, run in runs.items():
            row = by_net[c].get(net)
            cells.append("- | - | - | -" if row is None else
                         f"{row['plain ms']:.1f} | {row['defaults ms']:.1f} | "
                         f"{row['plain ms'] / row['defaults ms']:.2f}x | {_roof_share(run, row):.0f} %")
        md.append(_row(net, cells))
    return md


def _variant_cell(row: dict, variant: str) -> str:
    value = row.get(variant)
    if value is None:
        return "-"
    if isinstance(value, str):  # "fails: <error>"
        return value.replace("|", "/")
    return f"{value:.1f} ({value / row['defaults ms']:.2f})"


def _variants(name: str, run: dict) -> list[str]:
    variants = [v for v in VARIANTS if any(v in row for row in run["train step"])]
    if not variants:
        return []
    md = ["", f"### {name}: each default changed on its own", "",
          "ms per step, and in brackets the ratio to the defaults (above 1: the default is faster). "
          "NCHW: channels_last=false; 1 thread: torch.set_num_threads(1) (torch's default is one per core); "
          "glibc allocator: tune_allocator=false; compile: compile=true (after 4 warm-up steps); other precision: "
          "32-true where auto picks bf16-mixed, else bf16-mixed (emulated in software there).", "",
          _row("network", ["defaults (ms)", *variants]), _rule(len(variants) + 2)]
    for row in run["train step"]:
        md.append(_row(row["net"], [f"{row['defaults ms']:.1f}", *(_variant_cell(row, v) for v in variants)]))
    return md


def _data(runs: dict[str, dict]) -> list[str]:
    def consumed(run: dict) -> float:
        return 1e3 / min(row["defaults ms"] for row in run["train step"])

    first = next(iter(runs.values()))
    md = ["## Data, resizing and inference", "",
          f"Default training DataLoader (in-process), batch {BATCH}, {HR_PATCH // SCALE}x{HR_PATCH // SCALE} LR "
          "patches, batches/s, against the batches/s the fastest network's step consumes: " +
          "; ".join(f"{c}: {r['data batches/s']:.0f} vs {consumed(r):.0f}" for c, r in runs.items()) + ".", "",
          "imresize (float64, one channel, clamp) vs a straightforward per-row loop of the same algorithm "
          "(`imresize_loop` in run.py: per output row, its taps and weights, then a weighted sum of input rows), ms:",
          "", _row("image | downscale", [f"{c} imresize | {c} loop | {c} speedup" for c in runs]),
          _rule(3 * len(runs) + 2)]
    for i, case in enumerate(first["imresize"]):
        md.append(_row(f"{case['size']} | x{case['factor']}", [
            f"{r['imresize'][i]['imresize ms']:.2f} | {r['imresize'][i]['loop ms']:.1f} | "
            f"{r['imresize'][i]['speedup']:.0f}x" for r in runs.values()]))
    cache = "; ".join(f"{c}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["LR cache ms/image"].items())
                      for c, r in runs.items())
    tiled = "; ".join(f"{c}: {r['tiled inference']['MP/s']:.2f} MP/s, {r['tiled inference']['peak RSS MB']:.0f} MB"
                      for c, r in runs.items())
    return [*md, "", f"LR cache (x2 LR of a 2040x1356 RGB image, default degradation), ms per image: {cache}.", "",
            f"Tiled inference, VDSR x2 on 1024x1024 LR (tile 256, overlap 48), output MP/s and peak RSS: {tiled}.", ""]


def markdown(machines: dict[str, dict]) -> str:
    """results.md: every machine class measured so far, side by side."""
    runs = {c: machines[c] for c in sorted(machines)}
    md = ["# Benchmark results", "",
          "One column per machine class (the instruction set torch's kernels use): `make bench` on a machine "
          "replaces its class's column and keeps the others; `make bench ARGS=\"--isa avx2\"` measures a commodity "
          "CPU's class on a larger one (oneDNN and ATen limited by `ONEDNN_MAX_CPU_ISA` / `ATEN_CPU_CAPABILITY`). "
          "Every measurement runs in a fresh process.", "", *_machines(runs), "",
          "## Roof (TFLOP/s)", "",
          f"3x3 convolution, forward: best of (batch, channels, side) in {ROOF_SHAPES}; fwd+bwd: the forward and "
          "both backward convolutions (input and weight gradients) of VDSR's layer (16, 64, 48x48) in bf16 "
          "channels_last, which is what a bf16 training step runs.", "",
          _row("setting", list(runs)), _rule(len(runs) + 1),
          *(_row(k, [f"{r['roof TFLOP/s'][k]:.3f}" for r in runs.values()])
            for k in next(iter(runs.values()))["roof TFLOP/s"]), "",
          "## Training step: a plain loop vs the defaults", "",
          f"Batch {BATCH}, {HR_PATCH}x{HR_PATCH} HR patches, x{SCALE}, Y, `model=<name>`. plain = a hand-written "
          "fp32 NCHW loop (Adam, L1) in a plain process; defaults = `SRLitModule` through Lightning with "
          "precision auto, channels_last, gradient clipping and the tuned allocator. % roof: the step's FLOPs "
          "(3 x forward, flop_counter) per second over the forward roof of its precision (fp32 channels_last for "
          "32-true, bf16 channels_last for bf16-mixed).", "", *_steps(runs)]
    for name, run in runs.items():
        md += _variants(name, run)
    md += ["", *_data(runs)]
    pair_file = HERE / "precision_pair.json"
    if pair_file.is_file():
        pair = json.loads(pair_file.read_text())
        md += ["## bf16 vs fp32 quality at equal steps", "", f"Command: `{pair['command']}`.", "",
               "| step | val/psnr bf16 | val/psnr fp32 | bf16 - fp32 (dB) |", "|---|---|---|---|",
               *(f"| {r['step']} | {r['bf16']:.3f} | {r['fp32']:.3f} | {r['bf16 - fp32']:+.3f} |"
                 for r in pair["rows"]), ""]
    return "\n".join(md)


def step_rows(nets: list[str], variants: list[str], steps: int, env: dict[str, str], partial: Path) -> list[dict]:
    """Each network's step: plain loop, defaults and the ``variants``, ms; and its GFLOP.

    Rows are saved to ``partial`` as they are measured, so a benchmark that was interrupted
    continues where it stopped when run again with the same arguments (the file is removed
    once the results are written)."""
    key = {"steps": steps, "variants": variants, "env": env}
    saved = json.loads(partial.read_text()) if partial.is_file() else {}
    rows = saved.get("rows", []) if saved.get("key") == key else []
    if [row["net"] for row in rows] != nets[:len(rows)]:
        rows = []
    for name in nets[len(rows):]:
        gflop = 3 * net_gflops(instantiate(model_config(name))) * BATCH * HR_PATCH**2 / 1e6
        row = {"net": name, "GFLOP": gflop, "plain ms": measure("plain", steps, env, name) * 1e3,
               "defaults ms": measure("defaults", steps, env, name) * 1e3}
        row |= {v: variant_ms(v, steps, env, name) for v in variants}
        rows.append(row)
        partial.write_text(json.dumps({"key": key, "rows": rows}))
        print(row, file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nets", default=",".join(DEFAULT_NETS),
                        help="model configs (sr_lightning/conf/model) to time")
    parser.add_argument("--settings", default=",".join(VARIANTS),
                        help=f"defaults changed one at a time per network, of {', '.join(VARIANTS)} ('' for none)")
    parser.add_argument("--isa", default="native",
                        help=f"limit torch to an instruction set: native (none), {', '.join(ISA_LIMITS)}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: the GPU benchmark (gpu_bench.py) into results_cuda.md")
    parser.add_argument("--compile", default="edsr_baseline,rcan,vdsr,swinir_light",
                        help="with --device cuda: the networks also timed with compile=true")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = parser.parse_args()
    if args.device == "cuda" and not args.measure:
        import gpu_bench

        if args.nets == ",".join(DEFAULT_NETS):  # on a GPU the full EDSR is seconds, not minutes
            args.nets = ",".join(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "bicubic"))
        gpu_bench.bench(args)
        return
    if args.measure:
        kind, *rest = args.measure
        if kind in TUNED:
            tune_allocator()
        print(json.dumps(MEASURES[kind](args.steps, *rest)))
        return
    try:
        env = isa_environment(args.isa)
        nets = [n for n in args.nets.split(",") if n]
        missing = [n for n in nets if not (CONF_DIR / "model" / f"{n}.yaml").is_file()]
        if missing:
            raise ValueError(f"--nets: no model config {', '.join(missing)} in {CONF_DIR / 'model'}")
        variants = [v for v in args.settings.split(",") if v]
        if unknown := [v for v in variants if v not in VARIANTS]:
            raise ValueError(f"--settings: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    except ValueError as e:
        sys.exit(f"error: {e}")
    command = "make bench" + (f' ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")
    run = {"date": str(date.today()), "command": command, "machine": measure("machine", args.steps, env)}
    print(run["machine"], file=sys.stderr, flush=True)
    run["roof TFLOP/s"] = measure("roof", args.steps, env)
    print(run["roof TFLOP/s"], file=sys.stderr, flush=True)
    partial = HERE / f".partial-{run['machine']['class']}.json"
    run["train step"] = step_rows(nets, variants, args.steps, env, partial)
    run["data batches/s"] = measure("data", args.steps, env)
    run["imresize"] = measure("imresize", args.steps, env)
    run["LR cache ms/image"] = measure("lr_cache", args.steps, env)
    run["tiled inference"] = measure("tiled", args.steps, env)
    results_file = HERE / "results.json"
    machines = json.loads(results_file.read_text())["machines"] if results_file.is_file() else {}
    machines[run["machine"]["class"]] = run
    results_file.write_text(json.dumps({"machines": machines}, indent=2) + "\n")
    md = markdown(machines)
    (HERE / "results.md").write_text(md)
    partial.unlink(missing_ok=True)
    print(md)


if __name__ == "__main__":
    main()
