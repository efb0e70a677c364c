"""Optuna search through hydra-optuna-sweeper, made resumable and checked up front.

:class:`ResumableOptunaSweeper` is the plugin's sweeper with three changes:

* ``n_trials`` is the study's total: a study interrupted after 3 of 5 trials runs the 2
  that are missing when the same command is run again (the plugin would run 5 more);
  job folders continue the numbering instead of overwriting trial 0, 1, ...
* the storage's folder is created (SQLite does not create it);
* every key of the search space must exist in the config (or be a config group), checked
  before any trial runs, with the keys that do exist named in the error;
* a study storage is read as data only: a sampler that keeps pickled state in the storage
  and unpickles it every trial (Optuna's CmaEsSampler) is refused with a storage.

A failing trial is recorded as failed and the study goes on (``max_failure_rate: 1.0``).
"""

from __future__ import annotations

import difflib
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError as err:  # pragma: no cover - exercised only without the plugin
    raise ImportError("hparams_search needs the Optuna sweeper plugin: pip install hydra-optuna-sweeper") from err

log = logging.getLogger(__name__)


def _flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    out = []
    if OmegaConf.is_dict(cfg):
        for k in cfg.keys():
            key = f"{prefix}{k}"
            out.append(key)
            node = cfg._get_node(k)
            if OmegaConf.is_dict(node):
                out += _flat_keys(node, key + ".")
    return out


def check_search_space(params: dict[str, Any] | None, config: DictConfig) -> None:
    """Raise a ValueError naming every search-space key that is neither a config key nor a group."""
    keys = set(_flat_keys(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])))
    groups = set(config.hydra.runtime.choices) if "hydra" in config else set()
    bad = [k for k in (params or {}) if k.lstrip("+~") not in keys and k not in groups and not k.startswith("+")]
    if bad:
        hints = {k: difflib.get_close_matches(k, sorted(keys | groups), n=3) for k in bad}
        detail = "; ".join(f"'{k}'" + (f" (did you mean {', '.join(h)}?)" if h else "") for k, h in hints.items())
        raise ValueError(f"hydra.sweeper.params names keys that are not in the config: {detail}")


# Samplers that store pickled state in the study's storage and unpickle it on every trial.
PICKLING_SAMPLERS = ("optuna.samplers.CmaEsSampler",)


def check_sampler(sweeper: Any) -> None:
    """Raise a ValueError if the sampler would unpickle what the study storage holds."""
    target = str((sweeper.get("sampler") or {}).get("_target_", ""))
    if sweeper.get("storage") and target in PICKLING_SAMPLERS:
        raise ValueError(f"hydra/sweeper/sampler={target.rsplit('.', 1)[-1]} keeps its state pickled in the study "
                         f"storage and unpickles it on every trial, so a storage file could run code; sr_lightning "
                         f"reads a study storage as data only: use hydra/sweeper/sampler=tpe (or random, grid, "
                         f"nsgaii), or hydra.sweeper.storage=null")


class ResumableOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's OptunaSweeper; see the module docstring for what differs."""

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        try:
            check_search_space(OmegaConf.to_container(config.hydra.sweeper.params or {}), config)
            check_sampler(config.hydra.sweeper)
        except ValueError as err:  # one line, as every other bad option
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        storage = impl.storage
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if storage and impl.study_name:
            import optuna

            try:
                done = len(optuna.load_study(study_name=impl.study_name, storage=storage).trials)
            except KeyError:  # a new study
                done = 0
            if done:
                log.info("study %s: %d trial(s) already in %s; running %d more", impl.study_name, done, storage,
                         max(0, impl.n_trials - done))
            impl.n_trials = max(0, impl.n_trials - done)
            impl.job_idx = done
            if impl.n_trials == 0:
                log.info("study %s already has its %d trials", impl.study_name, done)
                return None
        try:
            return super().sweep(arguments)
        except ValueError as err:  # the plugin asks for the best trial at the end
            import optuna

            study = optuna.load_study(study_name=impl.study_name, storage=storage) if storage else None
            if study is None or any(t.state.name == "COMPLETE" for t in study.trials):
                raise err
            log.error("study %s: no trial completed (all failed; see the job folders' logs)", impl.study_name)
            return None
