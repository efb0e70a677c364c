"""Learning-rate schedules beyond torch's own."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from sr_lightning.errors import UserError


def warmup_cosine(optimizer: Optimizer, *, total_steps: int, warmup_steps: int = 0,
                  min_factor: float = 1e-3) -> LambdaLR:
    """Linear warmup from ~0 to the optimizer's lr over ``warmup_steps`` (at most a tenth of
    ``total_steps``, so short runs stay mostly at full rate), then cosine decay to
    ``min_factor`` x lr at ``total_steps``. Step it every optimizer step.

    Warmup keeps Adam's first, full-size updates from killing the ReLUs of deep plain
    networks (VDSR) at a high learning rate.
    """
    if total_steps < 1 or warmup_steps < 0:
        raise UserError(f"scheduler: need total_steps >= 1 (got {total_steps}) and warmup_steps >= 0 "
                         f"(got {warmup_steps}); total_steps follows trainer.max_steps")
    warmup_steps = min(warmup_steps, total_steps // 10)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
