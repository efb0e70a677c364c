"""GPU benchmark: ``make bench ARGS="--device cuda"`` (run.py hands ``--device cuda`` here).

On one CUDA device: the roof (bf16 matmul and 3x3 convolutions, TF32 and IEEE fp32); each
network's training step at its paper's colour (RGB or Y; batch 16 of 48x48 LR patches, x2)
as a plain fp32 loop with PyTorch's defaults, through Lightning with the project's defaults
(precision auto = bf16-mixed from compute capability 8.0, channels_last) and with
compile=true (some networks, ``--compile``), in ms, images/s and % of the bf16 roof; the
training DataLoader (memory, disk, shards of B100's photos; 0-8 workers; batch 16 and 32 of 48x48
RGB patches) against the batches/s EDSR-baseline and RCAN consume at those batches; and
the evaluation of Set5, Set14 and B100 (the float64 MATLAB bicubic and metrics) with the
trainer on the GPU vs on the CPU.

    python experiments/benchmarks/run.py --device cuda [--steps 20] [--nets ...] [--compile edsr_baseline,rcan]

Writes experiments/benchmarks/results_cuda.json (one entry per GPU model) and
results_cuda.md. The data sections need $SR_DATA_DIR (its benchmark sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import common  # noqa: E402
import data_scale  # noqa: E402  (experiments/benchmarks is not a package)

from sr_lightning.budget import time_calls  # noqa: E402
from sr_lightning.data.pairs import BENCHMARK_LR  # noqa: E402
from sr_lightning.hardware import cpu_model, resolve_precision  # noqa: E402
from sr_lightning.nets import net_class  # noqa: E402
from sr_lightning.nets.flops import net_gflops  # noqa: E402

LOADER_WORKERS = (0, 1, 2, 4, 8)
LOADER_BATCHES = (16, 32)
LR_PATCH = 48  # EDSR's and RCAN's training patch
# The loader's photos, under $SR_DATA_DIR: B100's 100 HR photos (480x321; T91's smallest
# images are under the 96-pixel HR patch).
LOADER_SET = "benchmark/B100"
CONSUMERS = ("edsr_baseline", "rcan")  # the networks the loader must keep fed
EVAL_SETS = ("Set5", "Set14", "B100")
RESULTS_JSON, RESULTS_MD = HERE / "results_cuda.json", HERE / "results_cuda.md"


def shape_of(name: str, batch: int = 16) -> common.StepShape:
    """The step a network is timed at: its paper's colour (RGB networks on RGB, the rest on Y)."""
    rgb = net_class(dict(common.model_config(name))).published_on_rgb
    return common.StepShape(batch=batch, lr_patch=LR_PATCH, channels=3 if rgb else 1, scale=2)


# -- measurements (each kind in its own process via `gpu_bench.py --measure KIND ...`) --------
def device_info(device: str) -> dict[str, Any]:
    """The device as the measuring processes see it."""
    dev = torch.device(device)
    info: dict[str, Any] = {"torch": torch.__version__, "cpu cores": len(os.sched_getaffinity(0)),
                            "precision (auto)": resolve_precision("auto", "gpu" if dev.type == "cuda" else "cpu")}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info |= {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                 "memory GiB": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
                 "cuda": torch.version.cuda}
    else:
        info["gpu"] = f"none ({cpu_model()})"
    return info


def _timed(fn: Any, steps: int, dev: torch.device) -> float:
    """Fastest seconds per call of ``fn``, the device's queued work included."""
    def call() -> None:
        fn()
        common.synchronize(dev)
    return time_calls(call, steps, warmup=3, best=True)


def _channels_last(shape: tuple[int, ...], dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    return torch.randn(*shape, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)


def gpu_roof(steps: int, device: str) -> dict[str, float]:
    """TFLOP/s: a 8192^3 matmul in bf16 / TF32 / IEEE fp32; the forward of a 3x3 convolution
    (the best of :data:`common.ROOF_SHAPES` and a larger layer) in bf16 channels_last, TF32 and
    fp32; the forward + both backward convolutions in bf16 on the larger layer."""
    dev = torch.device(device)
    out: dict[str, float] = {}
    # a layer large enough to fill an H100-class GPU; on the CPU (a dry run of the code) small ones
    n, shapes = (8192, (*common.ROOF_SHAPES, (32, 256, 96))) if dev.type == "cuda" else (256, ((2, 16, 16),))
    large = shapes[-1]
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    modes = {"bf16": (torch.bfloat16, False), "TF32": (torch.float32, True), "fp32": (torch.float32, False)}
    for label, (dtype, tf32) in modes.items():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        x, y = a.to(dtype), b.to(dtype)
        out[f"matmul {label}"] = 2 * n**3 / _timed(lambda x=x, y=y: x @ y, steps, dev) / 1e12
        best = 0.0
        for batch, c, side in shapes:
            xi, wi = _channels_last((batch, c, side, side), dtype, dev), _channels_last((c, c, 3, 3), dtype, dev)
            seconds = _timed(lambda xi=xi, wi=wi: F.conv2d(xi, wi, padding=1), steps, dev)
            best = max(best, 2 * c * c * 9 * batch * side * side / seconds / 1e12)
        out[f"conv3x3 {label}"] = best
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # PyTorch's defaults
    batch, c, side = large
    bf16 = torch.bfloat16
    x, w = _channels_last((batch, c, side, side), bf16, dev), _channels_last((c, c, 3, 3), bf16, dev)
    grad = torch.randn_like(x)

    def fwd_bwd() -> None:
        F.conv2d(x, w, padding=1)
        torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                            [True, True, False])

    out["conv3x3 bf16 fwd+bwd"] = 3 * 2 * c * c * 9 * batch * side * side / _timed(fwd_bwd, steps, dev) / 1e12
    return out


def steps_of(kind: str, steps: int, device: str, nets: list[str]) -> dict[str, float | str]:
    """ms per training step of each network for one kind (``plain``, ``defaults``, ``compile``),
    all in this process (the GPU has no allocator state to isolate); a failing network is
    recorded as ``"fails: <error>"``."""
    out: dict[str, float | str] = {}
    for name in nets:
        try:
            if kind == "plain":
                seconds = common.plain_step(name, steps, device, shape_of(name))
            else:
                seconds = common.project_step(name, steps, compile_net=kind == "compile", device=device,
                                           shape=shape_of(name))
            out[name] = seconds * 1e3
        except Exception as e:  # recorded in the table (a compile failure is a finding), the rest go on
            out[name] = f"fails: {type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}"
        print(kind, name, out[name], file=sys.stderr, flush=True)
    return out


def consumption(steps: int, device: str) -> dict[str, float]:
    """Batches/s the :data:`CONSUMERS` train at (the defaults), RGB, at each of :data:`LOADER_BATCHES`."""
    return {f"{name}, batch {batch}": 1.0 / common.project_step(name, steps, device=device,
                                                             shape=shape_of(name, batch))
            for name in CONSUMERS for batch in LOADER_BATCHES}


def loader(steps: int, data_dir: str) -> list[dict[str, Any]]:
    """Training DataLoader batches/s on the :data:`LOADER_SET` photos (RGB, x2, 48x48 LR
    patches): storage memory and disk, and shards made from them by ``sr_lightning.prepare``;
    each worker count and batch size. The LR cache on and filled first, as in a run's second
    epoch on (disk reads each LR from it; shards make LR per sample)."""
    from sr_lightning.data import SRDataModule

    photos = Path(data_dir) / LOADER_SET
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "lr")
        SRDataModule(train_dir=str(photos), val_dir=None, patch_size=LR_PATCH, channels=3, cache_dir=cache,
                     degradation=asdict(BENCHMARK_LR)).setup("fit")  # fills the cache
        shards = Path(tmp) / "shards"
        subprocess.run([sys.executable, "-m", "sr_lightning.prepare", f"input={photos}", f"output={shards}"],
                       check=True, capture_output=True)
        for mode in data_scale.MODES:
            for batch in LOADER_BATCHES:
                location = str(shards if mode == "shards" else photos)
                row = data_scale.measure(mode, location, steps, LOADER_WORKERS, batch=batch, patch=LR_PATCH,
                                         channels=3, cache_dir=cache)
                rows.append({"mode": mode, "batch": batch,
                             **{str(w): row[f"batches/s, {w} workers"] for w in LOADER_WORKERS}})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def evaluation(device: str) -> dict[str, dict[str, float]]:
    """Seconds to evaluate each of :data:`EVAL_SETS` with ``model=bicubic`` (MATLAB bicubic and
    float64 metrics) with the trainer on ``device`` (key ``device``) and on the CPU (``cpu``);
    the LR cache warmed first, so both time the same work."""
    from sr_lightning.cli import composed
    from sr_lightning.eval import evaluate

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SR_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in EVAL_SETS:
            runs = (("warm-up", "cpu"), ("device", "gpu" if device == "cuda" else "cpu"), ("cpu", "cpu"))
            for label, accelerator in runs:
                with composed("eval", ["model=bicubic", f"data.test_sets=[{name}]",
                                       f"trainer.accelerator={accelerator}", "progress.when=never",
                                       f"hydra.run.dir={tmp}/{name}-{label}"]) as cfg:
                    t0 = time.perf_counter()
                    evaluate(cfg)
                    out.setdefault(name, {})[label] = time.perf_counter() - t0
            del out[name]["warm-up"]
    return out


MEASURES = {
    "device": lambda steps, device: device_info(device),
    "roof": lambda steps, device: gpu_roof(steps, device),
    "steps": lambda steps, device, kind, nets: steps_of(kind, steps, device, nets.split(",")),
    "consumption": lambda steps, device: consumption(steps, device),
    "loader": lambda steps, device, data_dir: loader(10 * steps, data_dir),
    "evaluation": lambda steps, device: evaluation(device),
}


# -- report ----------------------------------------------------------------------------------
def _ms_cell(value: float | str | None, batch: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("|", "/")
    return f"{value:.1f} ({batch * 1e3 / value:,.0f} img/s)"


def _roof_md(r: dict) -> list[str]:
    return ["### Roof (TFLOP/s)", "", "| operation | TFLOP/s |", "|---|---|",
            *(f"| {k} | {v:.1f} |" for k, v in r["roof TFLOP/s"].items()), ""]


def _steps_md(r: dict) -> list[str]:
    roof = r["roof TFLOP/s"]["conv3x3 bf16"]
    md = ["### Training step", "",
          f"Batch 16 of {LR_PATCH}x{LR_PATCH} LR patches, x2; RGB networks on RGB, the others on Y. plain: a "
          "hand-written fp32 NCHW loop (Adam, L1) with PyTorch's defaults; defaults: SRLitModule through "
          "Lightning (precision auto, channels_last, gradient clipping); compile: the defaults with "
          "compile=true (after 4 warm-up steps). ms per step (images/s); % roof: the defaults' FLOPs "
          "(3 x forward) per second over the bf16 conv3x3 roof.", "",
          "| network | channels | plain | defaults | compile | defaults vs plain | % roof |",
          "|---|---|---|---|---|---|---|"]
    for row in r["train step"]:
        plain, dflt = row.get("plain"), row.get("defaults")
        ratio = f"{plain / dflt:.2f}x" if isinstance(plain, float) and isinstance(dflt, float) else "-"
        share = f"{100 * row['GFLOP'] / dflt / roof:.1f} %" if isinstance(dflt, float) else "-"
        md.append(f"| {row['net']} | {row['channels']} | {_ms_cell(plain, 16)} | {_ms_cell(dflt, 16)} | "
                  f"{_ms_cell(row.get('compile'), 16)} | {ratio} | {share} |")
    return [*md, ""]


def _loader_md(r: dict) -> list[str]:
    workers = [w for w in r["loader"][0] if w not in ("mode", "batch")]
    need = r["consumption batches/s"]
    md = ["### Data loading against what the GPU consumes", "",
          f"Training DataLoader on {LOADER_SET} (RGB, x2, {LR_PATCH}x{LR_PATCH} LR patches, LR cache filled), "
          "batches/s by DataLoader workers. Consumed by the defaults: " +
          ", ".join(f"{k} {v:.1f}/s" for k, v in need.items()) + ".", "",
          "| storage | batch | " + " | ".join(f"{w} workers" for w in workers) + " | keeps up with |",
          "|---|---|" + "---|" * len(workers) + "---|"]
    for row in r["loader"]:
        verdicts = []
        for consumer in CONSUMERS:
            rate = need[f"{consumer}, batch {row['batch']}"]
            enough = [w for w in workers if row[w] >= rate]
            verdicts.append(f"{consumer}: {enough[0]} workers" if enough else f"{consumer}: none")
        md.append(f"| {row['mode']} | {row['batch']} | " + " | ".join(f"{row[w]:.1f}" for w in workers)
                  + f" | {'; '.join(verdicts)} |")
    return [*md, ""]


def _evaluation_md(r: dict) -> list[str]:
    return ["### Evaluation: float64 bicubic and metrics on the GPU vs the CPU", "",
            "`python -m sr_lightning.eval model=bicubic data.test_sets=[SET] trainer.accelerator=...`, seconds "
            "(LR cache warm; the LR images are made on the CPU either way).", "",
            "| set | CPU (s) | GPU (s) | speedup |", "|---|---|---|---|",
            *(f"| {s} | {t['cpu']:.2f} | {t['device']:.2f} | {t['cpu'] / t['device']:.1f}x |"
              for s, t in r["evaluation s"].items()), ""]


# Each section of results_cuda.md and the keys it is drawn from (absent: not measured, e.g. a
# run stopped at its time limit).
SECTIONS = ((_roof_md, ("roof TFLOP/s",)), (_steps_md, ("roof TFLOP/s", "train step")),
            (_evaluation_md, ("evaluation s",)), (_loader_md, ("consumption batches/s", "loader")))


def markdown(gpus: dict[str, dict]) -> str:
    """results_cuda.md: every GPU model measured, one part each, with the sections measured."""
    md = ["# GPU benchmark results", "",
          "`make bench ARGS=\"--device cuda\"` (experiments/benchmarks/gpu_bench.py) on each GPU model; the CPU "
          "classes are in results.md. Times are the fastest (roof) or median (steps) after warm-up, the GPU "
          "synchronised around each.", ""]
    for name, r in sorted(gpus.items()):
        md += [f"## {name}", "",
               "; ".join(f"{k}: {v}" for k, v in r["device"].items()) + f". {r['date']}, `{r['command']}`.", ""]
        missing = [key for _, keys in SECTIONS for key in keys if key not in r]
        if missing:
            md += [f"Not measured (the run stopped before): {', '.join(dict.fromkeys(missing))}.", ""]
        for render, keys in SECTIONS:
            if all(key in r for key in keys):
                md += render(r)
    return "\n".join(md)


def in_fresh_process(kind: str, steps: int, device: str, *extra: str) -> Any:
    """One measurement kind of :data:`MEASURES` in a new process (``common.measure``)."""
    return common.measure(kind, steps, {}, device, *extra, script=__file__)


def bench(args: Any, device: str = "cuda", measure: Callable[..., Any] = in_fresh_process,
          results: tuple[Path, Path] = (RESULTS_JSON, RESULTS_MD)) -> dict[str, Any]:
    """``run.py --device cuda``: every measurement (``measure(kind, steps, device, *args)``),
    then the ``results`` files (json, md); returns this device's entry. ``device="cpu"``
    runs the same code on the CPU (the tests' dry run)."""
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: torch.cuda.is_available() is False here (torch "
                 f"{torch.__version__}); install a CUDA build: make install TORCH_SPEC=... PIP_TORCH_ARGS=...")
    data_dir = os.environ.get("SR_DATA_DIR")
    if not data_dir or not all((Path(data_dir) / "benchmark" / s).is_dir() for s in EVAL_SETS):
        sys.exit(f"error: --device cuda: set SR_DATA_DIR to the benchmark data folder (its benchmark/"
                 f"{{{','.join(EVAL_SETS)}}} are read)")
    nets = [n for n in args.nets.split(",") if n]
    compiled = [n for n in args.compile.split(",") if n]

    def one(kind: str, *extra: str) -> Any:
        return measure(kind, args.steps, device, *extra)

    command = "make bench ARGS=\"" + " ".join(sys.argv[1:]) + "\""
    result: dict[str, Any] = {"date": str(date.today()), "command": command, "device": one("device")}
    json_file, md_file = results
    gpus = json.loads(json_file.read_text())["gpus"] if json_file.is_file() else {}

    def save(key: str, value: Any) -> None:
        """Record a section and rewrite both files: a run stopped at a time limit keeps what it measured."""
        result[key] = value
        gpus[result["device"]["gpu"]] = result
        json_file.write_text(json.dumps({"gpus": gpus}, indent=2) + "\n")
        md_file.write_text(markdown(gpus))
        print(key, value, file=sys.stderr, flush=True)

    save("roof TFLOP/s", one("roof"))
    rows = [{"net": name, "channels": shape_of(name).channels,
             "GFLOP": 3 * net_gflops(instantiate(common.model_config(name, shape_of(name)))) * 16 * (2 * LR_PATCH) ** 2
             / 1e6} for name in nets]
    for kind, subset in (("plain", nets), ("defaults", nets), ("compile", compiled)):
        if subset:
            times = one("steps", kind, ",".join(subset))
            save("train step", [row | ({kind: times[row["net"]]} if row["net"] in times else {}) for row in rows])
            rows = result["train step"]
    save("evaluation s", one("evaluation"))
    save("consumption batches/s", one("consumption"))
    save("loader", one("loader", data_dir))
    print(markdown(gpus))
    return result


def main() -> None:
    """Internal entry: ``gpu_bench.py --steps N --measure KIND DEVICE [ARGS...]`` prints one JSON line."""
    steps = int(sys.argv[sys.argv.index("--steps") + 1])
    kind, *rest = sys.argv[sys.argv.index("--measure") + 1:]
    print(json.dumps(MEASURES[kind](steps, *rest)))


if __name__ == "__main__":
    main()
