"""Training and evaluation progress as plain log lines, for output that is not a terminal
(``| tee log``, CI, nohup), where a live progress bar draws nothing (:mod:`sr_lightning.progress`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from sr_lightning.progress import PlainProgress, check_every, plain_progress_wanted


class ProgressLog(L.Callback):
    """Plain progress lines while training (step / max, ``train/loss``, the last ``val/psnr``,
    steps/s, time left) and testing (batch / total), every ``every_s`` seconds.

    Args:
        every_s: seconds between lines.
        when: ``"auto"`` (only when stdout is not a terminal), ``"always"`` or ``"never"``.
    """

    def __init__(self, every_s: float = 30.0, when: str = "auto") -> None:
        self.active = plain_progress_wanted(when)
        self.every_s = check_every(every_s)
        self._progress: PlainProgress | None = None
        self._tested = 0

    @staticmethod
    def _metrics(trainer: L.Trainer, keys: tuple[str, ...]) -> dict[str, float]:
        m: Mapping[str, Any] = trainer.callback_metrics
        return {k: float(m[k]) for k in keys if k in m}

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            total = trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)
            self._progress = PlainProgress("step", total, self.every_s, "steps", done=trainer.global_step)

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._progress is not None:
            self._progress.update(trainer.global_step, self._metrics(trainer, ("train/loss", "val/psnr")))

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._progress is not None:
            self._progress.update(trainer.global_step, self._metrics(trainer, ("train/loss", "val/psnr")), final=True)
            self._progress = None

    @rank_zero_only
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            self._progress = PlainProgress("test batch", int(sum(trainer.num_test_batches)), self.every_s, "batches")
            self._tested = 0

    @rank_zero_only
    def on_test_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._progress is not None:
            self._tested += 1
            self._progress.update(self._tested)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._progress is not None:
            self._progress.update(self._tested, final=True)
            self._progress = None
