"""Ctrl-C and SIGTERM (SLURM preemption, ``kill``) end training with a resumable checkpoint."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptCheckpoint(L.Callback):
    """During ``fit``, SIGINT (Ctrl-C) and SIGTERM do not kill the run: the step in progress
    finishes, the full training state is saved to ``dirpath/filename.ckpt`` (the file
    ``resume=RUN_FOLDER`` reads) and training stops. A second Ctrl-C stops at once, without
    a checkpoint. After ``fit``, :attr:`signal_name` names the signal (None: not interrupted)
    and :attr:`path` the checkpoint.

    Under DDP the processes agree at each step (one of them signalled is enough), so all
    save and stop together.

    Args:
        dirpath: the run's checkpoint folder.
        filename: the checkpoint's name without ``.ckpt`` (``last``: what resuming reads).
    """

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signal_name: str | None = None
        self._received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: stop now
        self._received = signum
        log.warning("%s received: finishing this step, then saving %s and stopping (Ctrl-C again stops at once)",
                    signal.Signals(signum).name, self.path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning set its own SIGTERM handler (which would end the run with an
        # exception instead), and restored by Lightning's teardown or ours.
        self._received, self.signal_name = None, None
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        except ValueError:  # not the main thread (e.g. a notebook's worker): signals keep their handlers
            self._previous = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self._received is not None, all=False):
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full training state
        trainer.should_stop = True
        self.signal_name = signal.Signals(self._received or signal.SIGTERM).name
        log.warning("stopped at step %d by %s; the training state is in %s", trainer.global_step, self.signal_name,
                    self.path)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for s, handler in self._previous.items():
            if signal.getsignal(s) == self._handle:
                signal.signal(s, handler)
        self._previous = {}
