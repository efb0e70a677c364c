"""Speed settings that depend on the machine: the mixed precision it runs fast, the memory
format, compilation, threads and the C allocator's behaviour for training loops (each
measured per instruction set); how the machine is named in logs; and the instruction-set
limits that emulate a smaller CPU."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from sr_lightning.errors import UserError

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h) and glibc's cap on the mmap threshold on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30


# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA) under which its AMX kernels still run.
_AMX_ISAS = ("", "ALL", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")


def amx_usable() -> bool:
    """True when the CPU has AMX and oneDNN may use it: ``ONEDNN_MAX_CPU_ISA=AVX2`` (how a
    commodity CPU is emulated) switches AMX off although cpuid still reports it."""
    return bool(torch.cpu._is_amx_tile_supported()) and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _AMX_ISAS


@cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class IsaLimit:
    """How to make torch use at most one instruction set: the oneDNN limit (its convolutions
    and matmuls), ATen's kernel level (everything else), and the /proc/cpuinfo flag the CPU
    needs for it."""

    onednn: str
    aten: str
    flag: str


# The instruction sets a run can be limited to (`make bench ARGS="--isa avx2"`): AVX2 is a
# commodity CPU (most laptops and workstations, AMD EPYC/Ryzen before Zen 4); avx512 an
# AVX-512 server without AMX (bf16 dot products at most); amx a Xeon of Sapphire Rapids or later.
ISA_LIMITS = {
    "avx2": IsaLimit(onednn="AVX2", aten="avx2", flag="avx2"),
    "avx512": IsaLimit(onednn="AVX512_CORE_BF16", aten="avx512", flag="avx512f"),
    "amx": IsaLimit(onednn="AVX512_CORE_AMX", aten="avx512", flag="amx_bf16"),
}


def isa_environment(isa: str) -> dict[str, str]:
    """The environment variables that limit a fresh process to ``isa`` (``native``: none).

    Raises:
        ValueError: an unknown name, or an instruction set this CPU does not have (the
            message says which ones it has).
    """
    if isa == "native":
        return {}
    if isa not in ISA_LIMITS:
        raise UserError(f"--isa {isa}: unknown instruction set; choose native or one of {', '.join(ISA_LIMITS)}")
    limit = ISA_LIMITS[isa]
    if limit.flag not in cpu_flags():
        has = [name for name, other in ISA_LIMITS.items() if other.flag in cpu_flags()]
        raise UserError(f"--isa {isa}: this CPU ({cpu_model()}) has no {limit.flag}; it can run "
                         f"{', '.join(['native', *has])}")
    return {"ONEDNN_MAX_CPU_ISA": limit.onednn, "ATEN_CPU_CAPABILITY": limit.aten}


def machine_class() -> str:
    """The instruction set class training speed depends on, as torch's kernels see it now
    (following ``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA``): ``AVX512+AMX``, ``AVX512``,
    ``AVX2``, ..."""
    return f"{torch.backends.cpu.get_cpu_capability()}{'+AMX' if amx_usable() else ''}"


def describe_cpu() -> str:
    """``AMD EPYC 7B13, AVX2`` or ``Intel(R) Xeon(R) ..., AVX512+AMX``: the model and the
    instruction set torch's kernels use (following ``ATEN_CPU_CAPABILITY`` and
    ``ONEDNN_MAX_CPU_ISA`` when they restrict it)."""
    return f"{cpu_model()}, {machine_class()}"


@cache
def _warn_emulated_bf16() -> None:
    log.warning("precision=bf16-mixed: bf16 is emulated on this CPU (%s, no AMX): training steps about 4-12x slower "
                "than fp32 (measured on a 2-core AVX2 CPU: VDSR 11.8x, EDSR-baseline 9.8x, FSRCNN 5.2x); "
                "precision=auto picks 32-true here", describe_cpu())


def check_accelerator(accelerator: str, option: str = "trainer.accelerator") -> None:
    """Refuse ``gpu`` (or ``cuda``) where torch finds no CUDA GPU, in one line naming ``option``
    and the build, instead of Lightning's error from inside the trainer's constructor."""
    if str(accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UserError(f"{option}={accelerator}: torch {torch.__version__} ({build}) finds no CUDA GPU "
                        f"here; use {option}=auto (the GPU when there is one) or cpu, or install a CUDA "
                        f"build of torch (README: make install PIP_TORCH_ARGS=...)")


def device_for(accelerator: str) -> torch.device:
    """The device a run's ``accelerator`` (Lightning's ``trainer.accelerator``, or a command's
    ``device``) puts the network on: ``auto``, ``gpu`` and ``cuda`` the CUDA GPU when torch
    finds one (else the CPU), ``cpu``, ``mps``. The one device rule of every command."""
    name = str(accelerator)
    if name in ("auto", "gpu", "cuda"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """The Lightning precision for ``precision`` (returned as is unless it is ``"auto"``).

    ``"auto"``: bf16-mixed where the hardware has bf16 matrix units, so it runs about 5x
    faster than fp32 there: CPUs with AMX (Sapphire Rapids and later) and NVIDIA GPUs of
    compute capability 8.0 and up (Ampere, Hopper, ...). Elsewhere (older GPUs emulate bf16;
    CPUs without AMX, or with AMX switched off by ``ONEDNN_MAX_CPU_ISA``, convert it in
    software) 32-true.
    """
    device = device_for(accelerator)
    if str(precision) != "auto":
        if str(precision).startswith("bf16") and device.type == "cpu" and not amx_usable():
            _warn_emulated_bf16()
        return precision
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.get_device_capability()[0] >= 8 else "32-true"
    if device.type == "cpu" and amx_usable():
        return "bf16-mixed"
    return "32-true"


def fast_bf16(accelerator: str = "auto") -> bool:
    """Whether training runs on bf16 matrix units (AMX on the CPU, compute capability >= 8.0
    on an NVIDIA GPU): what ``precision: auto`` picks bf16-mixed for."""
    return resolve_precision("auto", accelerator) == "bf16-mixed"


@dataclass(frozen=True)
class SpeedDefaults:
    """What the speed options set to ``auto`` become on one machine class."""

    channels_last: bool
    tune_allocator: bool
    compile: bool
    threads: int | None  # None: torch's default, one thread per physical core


# Per machine class, from `make bench` (experiments/benchmarks/results.md: each network's
# training step with each default changed on its own; ratios to the defaults, 2 threads).
SPEED_DEFAULTS = {
    # AVX512+AMX, bf16 (Xeon, 2026-12-01): NCHW 0.97-1.72 (only WDSR faster); 1 thread
    # 1.32-1.95; glibc's allocator 0.96-1.14; compile 0.53-1.30 and fails for SRCNN, after
    # 20-60 s of compiling that every short run and test would pay.
    "bf16": SpeedDefaults(channels_last=True, tune_allocator=True, compile=False, threads=None),
    # AVX2, fp32 (AMD EPYC 2026-11-25; Xeon limited to AVX2 2026-12-01): NCHW 0.96-1.45;
    # 1 thread 1.45-1.99; glibc's allocator 0.97-1.13; compile 0.96-1.22 and fails for
    # several networks (nothing to fuse: oneDNN's fp32 convolutions dominate).
    "fp32": SpeedDefaults(channels_last=True, tune_allocator=True, compile=False, threads=None),
}
SPEED_OPTIONS = ("channels_last", "tune_allocator", "compile", "threads")


def resolve_speed(options: Mapping[str, Any], accelerator: str = "auto") -> dict[str, Any]:
    """The :data:`SPEED_OPTIONS` of a run config, ``auto`` (or absent) replaced by this
    machine's default (:data:`SPEED_DEFAULTS`; bf16 where ``precision: auto`` picks bf16).

    Raises:
        ValueError: a value that is neither ``auto`` nor of the option's type.
    """
    defaults = SPEED_DEFAULTS["bf16" if fast_bf16(accelerator) else "fp32"]
    resolved = {}
    for name in SPEED_OPTIONS:
        value = options.get(name, "auto")
        if value == "auto":
            value = getattr(defaults, name)
        elif name == "threads" and not (type(value) is int and value > 0):
            raise UserError(f"threads={value!r}: give a positive number of threads, or auto (one per core)")
        elif name != "threads" and not isinstance(value, bool):
            raise UserError(f"{name}={value!r}: use true, false or auto (this machine's default)")
        resolved[name] = value
    return resolved


# `make train` on a machine without bf16 units: a network that makes enough steps in the
# budget. Measured on a 2-core AMD EPYC (AVX2, fp32, 7 minutes): VDSR 2.4 s a step, 147 steps,
# +0.00 dB over bicubic (it never leaves the bicubic start); edsr_quick 0.20 s a step, ~1800
# steps, +1.10 dB (lr 2e-3; +0.94 with lr 1e-3). docs/getting-started.md ("What make train does").
QUICKSTART_SMALL_CPU = ("model=edsr_quick",)


def quickstart_overrides() -> tuple[list[str], str]:
    """The overrides ``make train`` adds on this machine, and why (one line)."""
    if fast_bf16():
        where = "the GPU" if torch.cuda.is_available() else describe_cpu()
        return [], f"quickstart: VDSR (the default) in bf16 on {where}"
    return list(QUICKSTART_SMALL_CPU), (
        f"quickstart: {' '.join(QUICKSTART_SMALL_CPU)} on {describe_cpu()}: no bf16 units, so fp32, where VDSR makes "
        f"~10x fewer steps in the budget and does not beat bicubic (make train MODEL_ARGS= keeps VDSR)")


def tune_allocator() -> bool:
    """Let glibc's malloc keep freed tensor memory for reuse (Linux/glibc only).

    By default glibc serves every allocation above a (dynamic) threshold with a fresh
    ``mmap`` and returns freed memory at the top of the heap to the kernel, so each training
    step page-faults its activations in again: about 26 000 minor faults per VDSR bf16 step
    on CPU, a fifth of its time (138 -> 108 ms). This raises the mmap threshold to glibc's
    maximum (32 MiB) and the trim threshold to 1 GiB, so the memory of one step is reused by
    the next. The resident set then stays at its peak instead of shrinking between steps.

    Returns:
        True if the settings were applied; False on other C libraries (nothing changes).
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    applied = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
               and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not applied:
        log.warning("mallopt refused the allocator settings; training runs with glibc's defaults")
    return applied


if __name__ == "__main__":  # `python -m sr_lightning.hardware quickstart`: what `make train` adds here
    if sys.argv[1:] != ["quickstart"]:
        sys.exit("usage: python -m sr_lightning.hardware quickstart")
    overrides, why = quickstart_overrides()
    print(why, file=sys.stderr)
    print(" ".join(overrides))
