"""Report a metric to an Optuna trial at every validation and stop the run when the
study's pruner says the trial is not worth finishing (``hparams_search`` sweeps)."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L

from sr_lightning.errors import UserError

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Reports ``monitor`` to trial number ``trial`` of ``study_name`` in ``storage`` after
    every validation (step = the global step) and stops training when the trial should be
    pruned; the trial is then marked (user attribute ``pruned``) so the sweeper tells the
    study PRUNED. Does nothing when ``trial`` is None (a run outside a sweep).

    Args:
        storage: the study's storage URL (``hydra.sweeper.storage``).
        study_name: the study (``hydra.sweeper.study_name``).
        trial: the trial's number; the sweeper sets it for each job.
        monitor: the metric reported (the mean of a validation).
        pruner: the study's pruner (``hydra.sweeper.pruner``: a storage does not keep it).
    """

    def __init__(self, storage: str | None = None, study_name: str | None = None, trial: int | None = None,
                 monitor: str = "val/psnr", pruner: Any = None) -> None:
        self.storage, self.study_name, self.number, self.monitor = storage, study_name, trial, monitor
        self.pruner = pruner
        self.pruned = False
        self._trial = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.number is None or not trainer.is_global_zero:
            return
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
        frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == self.number), None)
        if frozen is None:
            raise UserError(f"callbacks.pruning.trial={self.number}: study {self.study_name!r} in {self.storage} "
                             f"has no such trial")
        self._trial = optuna.trial.Trial(study, frozen._trial_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.number is None or trainer.sanity_checking:
            return
        prune = False
        if self._trial is not None and self.monitor in trainer.callback_metrics:
            value = float(trainer.callback_metrics[self.monitor])
            self._trial.report(value, step=trainer.global_step)
            prune = self._trial.should_prune()
            if prune:
                self._trial.set_user_attr("pruned", True)
                log.info("trial %d pruned at step %d (%s %.4f)", self.number, trainer.global_step, self.monitor,
                         value)
        if trainer.strategy.reduce_boolean_decision(prune, all=False):
            self.pruned = True
            trainer.should_stop = True
