"""What the benchmark scripts share (run.py: the CPU benchmark, gpu_bench.py: the GPU one): the
timed training step's shape and network configs, the plain and the project's training step,
and running one measurement in a fresh process. experiments/benchmarks is not a package: the
scripts put this folder on ``sys.path``."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sr_lightning.budget import time_calls
from sr_lightning.config import compose_config
from sr_lightning.data import SRDataModule
from sr_lightning.data.pairs import BENCHMARK_LR
from sr_lightning.hardware import resolve_precision
from sr_lightning.lit import SRLitModule

BATCH, HR_PATCH, SCALE = 16, 48, 2  # the reference step: batch 16, 48x48 HR patches, x2
ROOF_SHAPES = ((16, 64, 48), (16, 64, 96), (8, 256, 64))  # (batch, channels, side): VDSR's layer and two larger


@dataclass(frozen=True)
class StepShape:
    """The batch a timed training step runs: ``batch`` LR patches of ``lr_patch`` pixels a
    side, ``channels`` (1: Y, 3: RGB), x``scale``. The default is the CPU benchmark's
    reference step (batch 16, 48x48 HR patches, x2, Y)."""

    batch: int = BATCH
    lr_patch: int = HR_PATCH // SCALE
    channels: int = 1
    scale: int = SCALE


REFERENCE = StepShape()


def model_config(name: str, shape: StepShape = REFERENCE) -> DictConfig:
    """``sr_lightning/conf/model/<name>.yaml`` as the default training config composes it for
    ``shape`` (x2, Y by default), resolved."""
    return OmegaConf.create(_composed_model(name, shape.scale, shape.channels))


@functools.cache  # a Hydra composition takes ~1 s; a fresh DictConfig is made from the copy
def _composed_model(name: str, scale: int, channels: int) -> dict:
    cfg = compose_config("train", [f"model={name}", f"data.scale={scale}", f"data.channels={channels}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_step(name: str, steps: int, device: str = "cpu", shape: StepShape = REFERENCE) -> float:
    """Seconds per hand-written fp32 NCHW training step (Adam, L1) of ``model=name`` on
    ``device`` with PyTorch's default settings."""
    torch.manual_seed(0)
    dev = torch.device(device)
    net = instantiate(model_config(name, shape)).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    side = shape.lr_patch
    lr = torch.rand(shape.batch, shape.channels, side, side, device=dev)
    hr = torch.rand(shape.batch, shape.channels, side * shape.scale, side * shape.scale, device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.l1_loss(net(lr), hr).backward()
        opt.step()
        synchronize(dev)

    return time_calls(step, steps)


class _StepTimer(L.Callback):
    """Each training step's wall time, the device's queued work included."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        synchronize(trainer.strategy.root_device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        synchronize(trainer.strategy.root_device)
        self.times.append(time.perf_counter() - self._t0)


def project_step(name: str, steps: int, channels_last: bool = True, compile_net: bool = False,
                 precision: str = "auto", device: str = "cpu", shape: StepShape = REFERENCE) -> float:
    """Seconds per training step of ``model=name`` through Lightning with the project's
    defaults (precision auto, channels_last, gradient clipping 1.0, the tuned allocator) or
    with one of them changed, on ``device`` (``cpu`` or ``cuda``); data loading is outside the
    timed span."""
    torch.manual_seed(0)
    warmup = 4 if compile_net else 2
    dm = SRDataModule(train_dir="sample:train", val_dir=None, scale=shape.scale, patch_size=shape.lr_patch,
                      batch_size=shape.batch, channels=shape.channels, steps_per_epoch=steps + warmup,
                      degradation=asdict(BENCHMARK_LR) if shape.channels == 3 else None)
    module = SRLitModule(net=model_config(name, shape), loss={"_target_": "torch.nn.L1Loss"},
                         optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
                         channels_last=channels_last, compile_net=compile_net)
    timer = _StepTimer()
    accelerator = "gpu" if device == "cuda" else device
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=resolve_precision(precision, accelerator),
                        max_steps=steps + warmup, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0, gradient_clip_val=1.0)
    trainer.fit(module, datamodule=dm)
    return float(np.median(timer.times[warmup:]))


class MeasurementFailed(RuntimeError):
    """A measurement's process failed; the message is its last error line."""


def measure(kind: str, steps: int, env: dict[str, str], *args: str, script: str) -> object:
    """Run one measurement of ``script`` (run.py or gpu_bench.py: ``--measure KIND``) in a fresh process
    (with ``env`` added) and return its result."""
    cmd = [sys.executable, script, "--steps", str(steps), "--measure", kind, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines() if "Error" in line] or out.stderr.splitlines()[-1:]
        print(out.stderr[-3000:], file=sys.stderr)
        raise MeasurementFailed(errors[-1][:200] if errors else f"exit code {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])
