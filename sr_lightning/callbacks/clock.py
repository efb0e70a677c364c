"""Training time as a metric, so learning curves can be drawn against wall-clock time."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn


class TrainingClock(L.Callback):
    """Logs ``time/train_s`` at every validation: seconds spent training so far, with
    validation (and the test/eval runs around it) left out. Resumed runs go on counting
    from the checkpoint's value."""

    def __init__(self) -> None:
        self.train_s = 0.0  # banked: everything up to the last pause
        self._since: float | None = None  # training clock running since then

    def _pause(self) -> None:
        if self._since is not None:
            self.train_s += time.perf_counter() - self._since
            self._since = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            pl_module.log("time/train_s", self.train_s, on_step=False, on_epoch=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._since = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return {"train_s": self.train_s + running}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_s = float(state_dict["train_s"])
