"""Loggers and callbacks from config: checks that fail early with what to do, the run's
name and W&B group (the ``sr.run_name`` / ``sr.sweep_group`` resolvers), the commit it ran
from, ending logger runs between the jobs of a multirun, and continuing them when a run
is resumed (a CSV that keeps its rows, the same W&B run id)."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch.loggers
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, open_dict

from sr_lightning.config import CONF_DIR
from sr_lightning.errors import UserError

log = logging.getLogger(__name__)


def check_wandb(logger_cfg: Mapping[str, Any] | None) -> None:
    """Fail early, with how to go offline, when W&B is selected but cannot log.

    Raises:
        ValueError: wandb is not installed, or it is not logged in and not offline
            (``logger.wandb.offline`` / ``WANDB_MODE=offline``).
    """
    entries = [e for e in (logger_cfg or {}).values()
               if isinstance(e, Mapping) and str(e.get("_target_", "")).endswith("WandbLogger")]
    if not entries:
        return
    try:
        import wandb
    except ImportError:
        raise UserError("logger=wandb needs the wandb package: pip install wandb (or use logger=csv or "
                         "logger=tensorboard)") from None
    if any(e.get("offline") for e in entries) or os.environ.get("WANDB_MODE", "").lower() in (
            "offline", "dryrun", "disabled"):
        return
    try:
        key = os.environ.get("WANDB_API_KEY") or wandb.api.api_key
    except Exception:  # wandb's settings could not be read
        key = None
    if not key:
        raise UserError("logger=wandb: this machine is not logged in to W&B. Run `wandb login`, or log offline "
                         "with WANDB_MODE=offline (or logger.wandb.offline=true) and upload later with "
                         "`wandb sync <run folder>/wandb/offline-run-*`")


def check_tensorboard(logger_cfg: Mapping[str, Any] | None) -> None:
    """Fail early, saying what to install, when TensorBoard is selected but not installed.

    Raises:
        ValueError: a TensorBoardLogger is configured and neither tensorboard nor tensorboardX
            is installed.
    """
    import importlib.util

    if not any(isinstance(e, Mapping) and str(e.get("_target_", "")).endswith("TensorBoardLogger")
               for e in (logger_cfg or {}).values()):
        return
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        raise UserError("logger=tensorboard needs the tensorboard package: pip install 'sr_lightning[tensorboard]' "
                         "(or pip install tensorboard), or use logger=csv or logger=wandb")


def close_loggers(loggers: list[Logger], failed: bool) -> None:
    """End the job's logger runs, so the next job of a multirun (same process) starts its own:
    loggers are finalised (W&B uploads the best checkpoint then, with ``log_model``) and W&B
    runs finished (exit code 1 when ``failed``)."""
    for logger in loggers:
        logger.finalize("failed" if failed else "success")
        if isinstance(logger, WandbLogger) and logger._experiment is not None:  # only a run that was started
            logger._experiment.finish(exit_code=1 if failed else 0)
            logger._experiment = None


# A W&B run folder: [offline-]run-<date>_<time>-<id>, and -<n> after it when a resumed run
# starts in the same second as the folder before it.
WANDB_RUN_FOLDER = re.compile(r"run-(\d{8}_\d{6})-([a-z0-9]+)(?:-\d+)?")


def wandb_run_id(run_dir: str | Path) -> str | None:
    """The id of the newest W&B run written under ``run_dir/wandb`` (:data:`WANDB_RUN_FOLDER`), or None."""
    runs = sorted((m.groups(), p) for p in Path(run_dir).glob("wandb/*run-*-*")
                  if p.is_dir() and (m := WANDB_RUN_FOLDER.search(p.name)))
    return runs[-1][0][1] if runs else None


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping the rows an earlier part of the run wrote (its own
    deletes ``metrics.csv`` when the folder is not empty)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class CSVLogger(lightning.pytorch.loggers.CSVLogger):
    """Lightning's ``CSVLogger`` (``<save_dir>/<name>/<version>/metrics.csv``); with
    ``append=True`` (a resumed run: ``resume=...`` sets it) new rows go after the existing
    ones, the header widened when new metrics appear."""

    def __init__(self, *args: Any, append: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.append = append

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self.append:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return super().experiment


def continue_logger_runs(logger_cfg: DictConfig | None, run_dir: Path) -> None:
    """A resumed run logs into the logger runs it started: W&B resumes the run id found in
    ``run_dir/wandb``, the CSV logger appends to its ``metrics.csv`` (TensorBoard adds an
    event file beside the first, which it reads as one run)."""
    run_id = wandb_run_id(run_dir)
    for entry in (logger_cfg or {}).values():
        target = str(entry.get("_target_", "")) if isinstance(entry, DictConfig) else ""
        with open_dict(entry) if target else contextlib.nullcontext():
            if target == f"{__name__}.{CSVLogger.__name__}":
                entry.append = True
            elif target.endswith("WandbLogger") and run_id and entry.get("id") is None:
                entry.id, entry.resume = run_id, "allow"
                log.info("W&B: resuming run %s", run_id)


def git_commit() -> str | None:
    """The checkout's commit (``<sha>`` or ``<sha>-dirty``), or None where the package is not
    run from its own git checkout (an installed wheel, even inside another project's repository)."""
    root = CONF_DIR.parents[1]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        if top.returncode or Path(top.stdout.strip()).resolve() != root:
            return None
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty else "")


def instantiate_group(cfg: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate each ``_target_`` entry of a callbacks/logger config mapping."""
    if not cfg:
        return []
    objects = []
    for name, entry in cfg.items():
        if isinstance(entry, Mapping) and "_target_" in entry:
            log.info("%s: %s <%s>", kind, name, entry["_target_"])
            objects.append(instantiate(entry))
    return objects


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """Callbacks from the ``callbacks`` config group."""
    return instantiate_group(cfg, "callback")


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Loggers from the ``logger`` config group."""
    return instantiate_group(cfg, "logger")
