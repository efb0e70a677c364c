"""Fit a training run to a time budget (``budget_minutes``): time a few training steps of the
configured network on this machine, then set ``trainer.max_steps`` (on which the
learning-rate schedule is defined) to what fits, so the run anneals fully in the budget.

The steps chosen are logged and recorded in the run's config; ``trainer.max_steps=N`` on
the command line pins them exactly (no calibration).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate

from sr_lightning.data.datamodule import lr_patch_side
from sr_lightning.errors import UserError
from sr_lightning.hardware import describe_cpu

# Of the budget, the share the timed steps may fill: the rest is Lightning's own work per
# step, data loading and the validations (measured: the default run's steps take about 8 %
# longer through Lightning than in the bare loop timed here).
STEP_SHARE = 0.85


def seconds_per_step(module: torch.nn.Module, optimizer: Mapping[str, Any], data: Mapping[str, Any],
                     precision: str | int, clip: float | None, device: torch.device,
                     steps: int = 4, warmup: int = 2) -> float:
    """Median seconds of one training step (forward, loss, backward, clipping, optimizer step)
    on a random batch of the configured shape (the step time does not depend on the pixels).

    Args:
        module: an ``SRLitModule`` with a loss (``criterion``), built as the run builds it.
        optimizer: the optimizer config (a partial taking ``params``).
        data: the data config: ``batch_size``, ``channels``, ``scale``, ``patch_size`` or
            ``patch_size_hr``.
        precision: the resolved Lightning precision (``bf16-mixed`` runs under autocast).
        clip: the gradient-norm clip value (None: none).
        device: where the run trains.
    """
    scale = int(data["scale"])
    side = lr_patch_side(scale, int(data["patch_size"]), data.get("patch_size_hr"))
    n, c = int(data["batch_size"]), int(data["channels"])
    module = module.to(device)
    lr, hr = torch.rand(n, c, side, side, device=device), torch.rand(n, c, side * scale, side * scale, device=device)
    opt = instantiate(optimizer)(params=[p for p in module.parameters() if p.requires_grad])
    bf16 = str(precision).startswith("bf16")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.criterion(module(lr), hr)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return time_calls(step, steps, warmup)


def time_calls(fn: Callable[[], object], steps: int, warmup: int = 2, best: bool = False) -> float:
    """Median (or with ``best``, the fastest) seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(min(times) if best else statistics.median(times))


def steps_for_budget(minutes: float, step_s: float, max_steps: int) -> int:
    """The steps that fit in ``minutes`` at ``step_s`` seconds each (their timed share:
    :data:`STEP_SHARE`), at most ``max_steps`` and at least 1."""
    return max(1, min(int(max_steps), int(minutes * 60 * STEP_SHARE / step_s)))


def check_budget(minutes: Any) -> float:
    """``budget_minutes`` as a float.

    Raises:
        ValueError: not a positive number.
    """
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise UserError(f"budget_minutes={minutes!r} is not a number: give minutes of training (e.g. 6) "
                         f"or null for trainer.max_steps") from None
    if not value > 0:
        raise UserError(f"budget_minutes={minutes} must be > 0 (or null: train trainer.max_steps)")
    return value


def plan(minutes: float, step_s: float, max_steps: int, precision: str | int) -> tuple[int, str]:
    """The steps for the budget, and the line that says what was chosen and why."""
    steps = steps_for_budget(minutes, step_s, max_steps)
    capped = " (the cap, trainer.max_steps)" if steps == max_steps else ""
    line = (f"budget: {minutes:g} min -> {steps} steps{capped} at {step_s:.3f} s/step measured on this machine "
            f"({describe_cpu()}, {precision}); pin them with trainer.max_steps={steps}")
    return steps, line
