"""What a network costs to run, measured on this machine: peak activation memory for a
1-megapixel output, and the latency of upscaling a video frame with PyTorch fp32, bf16,
``torch.compile`` and onnxruntime. Used by ``python -m sr_lightning.zoo --memory --latency``.

Memory is the process's resident memory: each network runs in a fresh interpreter (so
nothing cached by an earlier network counts), which reads its resident set with the
network and the input built, resets the kernel's high-water mark (``/proc/self/clear_refs``),
runs one forward pass without autograd and reads the new high-water mark (``VmHWM``). The
difference is what the pass needed on top of the weights and the input: activations, the
output, and the convolution library's scratch space. Linux only (elsewhere: not measured).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sr_lightning.errors import UserError
from sr_lightning.nets import SRNet, create_net, get_net_class

BACKENDS = ("fp32", "bf16", "compile", "onnxruntime")
FRAME = (360, 640)  # the LR frame: 640x360 (x2: 720p out, x4: 1440p)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_child(name: str, scale: int, in_channels: int) -> float:
    """In a fresh process: MiB of resident memory one 1-megapixel forward pass adds."""
    net = create_net(name, scale=scale, in_channels=in_channels).eval()
    side = round(1000 / scale)
    lr = torch.rand(1, in_channels, side, side)
    with torch.no_grad():
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        out = net(lr)
        peak = _status_kb("VmHWM")
    del out
    return (peak - before) / 1024


def peak_activation_mib(name: str, scale: int = 4, in_channels: int = 3, runs: int = 3,
                        timeout: int = 900) -> float | None:
    """Peak memory (MiB) one forward pass of ``name`` at ``scale`` needs for a 1-megapixel
    output beyond its weights and input: the median of ``runs`` fresh processes (the
    allocator's and oneDNN's choices move it by up to ~15 % between runs); None off Linux or
    where the network does not support ``scale``."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    cls = get_net_class(name)
    if cls.scales is not None and scale not in cls.scales:
        return None
    code = f"from sr_lightning.cost import _peak_child; print(_peak_child({name!r}, {scale}, {in_channels}))"
    peaks = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              check=True)
        peaks.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(peaks)


@dataclass(frozen=True)
class Latency:
    """Milliseconds per frame for each backend measured (None: not run, with ``why``)."""

    ms: dict[str, float | None]
    why: dict[str, str]


def time_ms(fn: Callable[[], object], repeats: int, budget_s: float, warm_up_counts: bool = True) -> float:
    """The fastest of up to ``repeats`` timed calls of ``fn`` (after one warm-up), stopping
    early once ``budget_s`` seconds are spent; in milliseconds. A warm-up longer than the
    budget is the result when ``warm_up_counts`` (minutes a frame: the one-time set-up is
    noise); not for ``torch.compile``, whose warm-up is the compilation."""
    start = time.perf_counter()
    fn()
    cold = time.perf_counter() - start
    if cold > budget_s and warm_up_counts:
        return cold * 1000
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        if time.perf_counter() - start > budget_s:
            break
    return best * 1000


def frame_latency(net: SRNet, backends: tuple[str, ...] = BACKENDS, repeats: int = 3, budget_s: float = 60.0,
                  bf16_fast: bool = False) -> Latency:
    """Latency of ``net`` (eval) upscaling one :data:`FRAME` LR frame with each backend.

    ``bf16`` runs only where ``bf16_fast`` (AMX): elsewhere bf16 is emulated and slower
    than fp32. A backend whose warm-up run alone exceeds ``budget_s`` is timed once; after
    fp32 exceeds ``budget_s``, the other backends are skipped (said in ``why``).
    """
    net = net.eval()
    lr = torch.rand(1, net.in_channels, *FRAME)
    ms: dict[str, float | None] = {}
    why: dict[str, str] = {}
    with torch.no_grad():
        for backend in backends:
            if backend == "bf16" and not bf16_fast:
                ms[backend], why[backend] = None, "no bf16 units (AMX) on this CPU"
                continue
            if backend != "fp32" and (ms.get("fp32") or 0) > budget_s * 1000:
                ms[backend], why[backend] = None, f"fp32 over {budget_s:g} s a frame"
                continue
            try:
                ms[backend] = time_ms(_runner(net, backend, lr), repeats, budget_s, backend != "compile")
            except UserError as err:  # the network cannot be exported
                ms[backend], why[backend] = None, str(err)
            except Exception as err:  # torch.compile's backends fail in many ways (a compiler missing, an op)
                if backend != "compile":
                    raise
                first = next((line for line in str(err).splitlines() if line.strip()), "")
                ms[backend], why[backend] = None, f"{type(err).__name__}: {first[:200]}"
    return Latency(ms, why)


def _runner(net: SRNet, backend: str, lr: Tensor) -> Callable[[], object]:
    if backend == "fp32":
        return lambda: net(lr)
    if backend == "bf16":
        def bf16() -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(lr)
        return bf16
    if backend == "compile":
        compiled = torch.compile(net)
        return lambda: compiled(lr)
    if backend == "onnxruntime":
        from sr_lightning.inference.export import export
        from sr_lightning.inference.onnx_runner import OnnxNet

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            export(net, net.in_channels, "onnx", path, tolerance=1e-3, size=list(FRAME))
            onnx_net = OnnxNet(path, "onnxruntime")
        return lambda: onnx_net(lr)
    raise ValueError(f"unknown backend {backend!r}")


def latency_row(name: str, scales: tuple[int, ...], budget_s: float, bf16_fast: bool,
                max_frame_s: float | None = None) -> dict:
    """{scale: Latency as a dict} for ``name`` in its default configuration on RGB; after a
    scale whose fp32 frame took more than ``max_frame_s`` seconds, the larger scales are not
    timed (said in ``why``)."""
    out = {}
    slow = None
    for scale in scales:
        cls = get_net_class(name)
        if cls.scales is not None and scale not in cls.scales:
            continue
        if slow is not None:
            out[str(scale)] = {"ms": dict.fromkeys(BACKENDS), "why": dict.fromkeys(BACKENDS, slow)}
            continue
        lat = frame_latency(create_net(name, scale=scale, in_channels=3), budget_s=budget_s, bf16_fast=bf16_fast)
        out[str(scale)] = {"ms": lat.ms, "why": lat.why}
        fp32 = lat.ms.get("fp32")
        if max_frame_s is not None and fp32 is not None and fp32 > max_frame_s * 1000:
            slow = f"not timed: x{scale} fp32 took {fp32 / 1000:.0f} s a frame (> --max-frame-s {max_frame_s:g})"
        print(json.dumps({"net": name, "scale": scale, **out[str(scale)]}), file=sys.stderr, flush=True)
    return out
