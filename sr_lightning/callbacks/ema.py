"""An exponential moving average of the weights: Lightning's ``EMAWeightAveraging`` with the
project's option names and checks (``callbacks.ema``)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import Tensor

from sr_lightning.errors import UserError


class EMA(EMAWeightAveraging):
    """Keeps ``average = decay * average + (1 - decay) * weights`` every ``update_every``
    optimizer steps from step ``start_step`` on. Validation, test, the ``last`` / ``best``
    checkpoints (and so ``eval`` and ``upscale`` on them) use the average; a checkpoint also
    holds the current weights and the average's state, so a resumed run goes on exactly.

    Args:
        decay: in (0, 1); 0.999 averages over about the last 1000 updates.
        update_every: update the average every this many optimizer steps (>= 1).
        start_step: the first optimizer step that updates it (>= 0); before it the average
            is the weights themselves (so validation then sees them).
        warmup: ramp the decay as min(decay, (1 + n) / (10 + n)) over the first n updates, so
            a short run's average does not keep its first, untrained weights (a fixed 0.999
            keeps 18 % of them after 1700 steps).
    """

    def __init__(self, decay: float = 0.999, update_every: int = 1, start_step: int = 0, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise UserError(f"callbacks.ema.decay={decay} must be in (0, 1), e.g. 0.999 (an average over about the "
                            f"last 1/(1 - decay) updates)")
        if int(update_every) != update_every or update_every < 1:
            raise UserError(f"callbacks.ema.update_every={update_every} must be an integer >= 1 (optimizer steps)")
        if int(start_step) != start_step or start_step < 0:
            raise UserError(f"callbacks.ema.start_step={start_step} must be an integer >= 0 (optimizer steps)")
        super().__init__(decay=decay, update_every_n_steps=int(update_every), update_starting_at_step=int(start_step))
        self.decay, self.update_every, self.start_step, self.warmup = decay, int(update_every), int(start_step), warmup
        if warmup:  # the AveragedModel's update rule (EMAWeightAveraging keeps it with its other options)
            self._kwargs["avg_fn"] = self._warm_average

    def _warm_average(self, average: Tensor, current: Tensor, updates: Tensor) -> Tensor:
        """``d * average + (1 - d) * current`` with d = min(decay, (1 + n) / (10 + n)) after n updates."""
        d = min(self.decay, (1.0 + float(updates)) / (10.0 + float(updates)))
        return average * d + current * (1.0 - d)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step - 1 < self.start_step and self._average_model is not None:
            self._average_model.n_averaged.zero_()  # the next update copies the weights
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = trainer.global_step
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
