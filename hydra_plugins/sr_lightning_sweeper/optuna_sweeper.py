"""An Optuna (>= 4) search as a Hydra sweeper, ask-and-tell, with pruning.

The config schema is hydra-optuna-sweeper's (``params`` in Hydra's sweep syntax or a
``search_space`` dict, ``sampler``, ``direction``, ``storage``, ``study_name``, ``n_trials``,
``n_jobs``, ``max_failure_rate``) plus ``pruner``. What it does beyond that plugin:

* ``n_trials`` is the study's total of complete and pruned trials: a study interrupted after
  3 of 5 trials runs the 2 that are missing when the same command is run again, and failed
  trials do not count, so rerunning after a fix runs them again; one run makes at most
  ``n_trials`` attempts; job folders continue the numbering;
* pruning: each trial's job gets ``callbacks.pruning.trial=<number>``, and the
  :class:`~sr_lightning.callbacks.OptunaPruning` callback reports the monitored metric at
  every validation and stops the run when the pruner says so; the trial is told PRUNED;
* every key of the search space must exist in the config (or be a config group), checked
  before any trial runs; the storage's folder is created;
* a study storage is read as data only: a sampler that keeps pickled state in the storage
  (Optuna's CmaEsSampler) is refused with a storage.

A failing trial is told FAIL and the study goes on while the failure rate stays within
``max_failure_rate``.
"""

from __future__ import annotations

import difflib
import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from sr_lightning.errors import UserError

log = logging.getLogger(__name__)

# Samplers that store pickled state in the study's storage and unpickle it on every trial.
PICKLING_SAMPLERS = ("optuna.samplers.CmaEsSampler",)
# The trials that count toward n_trials: a failed one is retried when the command runs again.
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# The override that tells a trial's job which trial it is (for the pruning callback).
TRIAL_KEY = "callbacks.pruning.trial"


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


def check_search_space(keys_of_space: list[str], config: DictConfig) -> None:
    """Raise a ValueError naming every search-space key that is neither a config key nor a group."""
    keys = set(_flat_keys(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])))
    groups = set(config.hydra.runtime.choices) if "hydra" in config else set()
    bad = [k for k in keys_of_space if k.lstrip("+~") not in keys and k not in groups and not k.startswith("+")]
    if bad:
        hints = {k: difflib.get_close_matches(k, sorted(keys | groups), n=3) for k in bad}
        detail = "; ".join(f"'{k}'" + (f" (did you mean {', '.join(h)}?)" if h else "") for k, h in hints.items())
        raise UserError(f"hydra.sweeper.params names keys that are not in the config: {detail}")


def check_sampler(sweeper: Any) -> None:
    """Raise a ValueError if the sampler would unpickle what the study storage holds."""
    target = str((sweeper.get("sampler") or {}).get("_target_", ""))
    if sweeper.get("storage") and target in PICKLING_SAMPLERS:
        raise UserError(f"hydra/sweeper/sampler={target.rsplit('.', 1)[-1]} keeps its state pickled in the study "
                         f"storage and unpickles it on every trial, so a storage file could run code; sr_lightning "
                         f"reads a study storage as data only: use hydra/sweeper/sampler=tpe (or random, grid, "
                         f"nsgaii), or hydra.sweeper.storage=null")


def distribution(override: Override) -> optuna.distributions.BaseDistribution | None:
    """The Optuna distribution of one ``params`` entry in Hydra's sweep syntax (None: a fixed value).

    ``choice(a, b)`` -> categorical; ``interval(lo, hi)`` -> float (int when both ends are ints),
    log-scaled with ``tag(log, ...)``; ``range(start, stop[, step])`` -> int (or float) with that step.
    """
    if not override.is_sweep_override():
        return None
    value = override.value()
    log_scale = "log" in (getattr(value, "tags", None) or set())
    if isinstance(value, ChoiceSweep):
        return optuna.distributions.CategoricalDistribution(list(value.list))
    if isinstance(value, IntervalSweep):
        if isinstance(value.start, int) and isinstance(value.end, int):
            return optuna.distributions.IntDistribution(value.start, value.end, log=log_scale)
        return optuna.distributions.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    if isinstance(value, RangeSweep):
        step = value.step if value.step is not None else 1
        last = value.start + step * max(0, math.ceil((value.stop - value.start) / step) - 1)
        if all(isinstance(v, int) for v in (value.start, value.stop, step)):
            return optuna.distributions.IntDistribution(value.start, last, step=step)
        return optuna.distributions.FloatDistribution(value.start, last, step=step)
    raise UserError(f"hydra.sweeper.params.{override.get_key_element()}: {override.input_line!r} is not a "
                     f"choice(...), interval(...) or range(...) Optuna can search")


def structured_distribution(key: str, spec: Mapping[str, Any]) -> optuna.distributions.BaseDistribution:
    """A ``search_space`` entry: ``{type: float|int, low, high[, log, step]}`` or ``{type: categorical, choices}``."""
    kind = spec.get("type")
    if kind == "categorical":
        return optuna.distributions.CategoricalDistribution(list(spec["choices"]))
    if kind in ("float", "int"):
        cls = optuna.distributions.FloatDistribution if kind == "float" else optuna.distributions.IntDistribution
        return cls(spec["low"], spec["high"], log=bool(spec.get("log", False)),
                   **({"step": spec["step"]} if spec.get("step") is not None else {}))
    raise UserError(f"hydra.sweeper.search_space.{key}: type={kind!r} is not one of float, int, categorical")


class OptunaSweeper(Sweeper):
    """See the module docstring."""

    def __init__(self, sampler: optuna.samplers.BaseSampler | None = None, pruner: Any = None,
                 direction: str = "maximize", storage: str | None = None, study_name: str | None = None,
                 n_trials: int = 20, n_jobs: int = 1, max_failure_rate: float = 1.0,
                 search_space: Mapping[str, Any] | None = None, params: Mapping[str, str] | None = None) -> None:
        self.sampler, self.pruner, self.direction = sampler, pruner, direction
        self.storage, self.study_name = storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = int(n_trials), int(n_jobs), float(max_failure_rate)
        self.search_space = OmegaConf.to_container(search_space) if OmegaConf.is_config(search_space) \
            else dict(search_space or {})
        self.params = dict(params or {})

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        try:
            check_search_space([*self.params, *self.search_space], config)
            check_sampler(config.hydra.sweeper)
            if self.pruner is not None and not isinstance(self.pruner, optuna.pruners.NopPruner) and not self.storage:
                raise UserError("pruning needs hydra.sweeper.storage (the trials report to the study through it), "
                                 "or hydra/sweeper/pruner=none")
        except ValueError as err:  # one line, as every other bad option
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        self.report = "pruning" in (config.get("callbacks") or {})
        if not self.report and self.pruner is not None and not isinstance(self.pruner, optuna.pruners.NopPruner):
            log.warning("hydra.sweeper.pruner is set but the config has no callbacks.pruning, so no trial reports "
                        "and none is pruned (hparams_search configs add it)")
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def _space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        parser = OverridesParser.create()
        distributions, fixed = {}, []
        params = [f"{k}={v}" for k, v in self.params.items()]
        for override in parser.parse_overrides(params + list(arguments)):
            dist = distribution(override)
            if dist is None:
                fixed.append(override.input_line)
            else:
                distributions[override.get_key_element()] = dist
        for key, spec in self.search_space.items():
            distributions[key] = structured_distribution(key, spec)
        return distributions, fixed

    def _open_study(self) -> optuna.Study:
        if isinstance(self.storage, str) and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            return optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                       pruner=self.pruner, direction=self.direction, load_if_exists=True)
        except Exception as err:  # the storage URL is the user's: whatever SQLAlchemy or Optuna raise, say so
            print(f"error: hydra.sweeper.storage={self.storage!r}: Optuna cannot open it "
                  f"({type(err).__name__}: {str(err).splitlines()[0]})", file=sys.stderr)
            sys.exit(2)

    def sweep(self, arguments: list[str]) -> None:
        distributions, fixed = self._space(arguments)
        study = self._open_study()
        before = len(study.trials)
        counted = sum(t.state in COUNTED for t in study.trials)
        todo = max(0, self.n_trials - counted)
        if before:
            log.info("study %s: %d trial(s) complete or pruned in %s (%d failed or unfinished, not counted); "
                     "running %d more", self.study_name, counted, self.storage, before - counted, todo)
        self._check_space(study, distributions)
        failures = 0
        while todo > 0:
            trials = [study.ask(distributions) for _ in range(min(self.n_jobs, todo))]
            jobs = [[*fixed, *(f"{k}={v}" for k, v in t.params.items()),
                     *([f"{TRIAL_KEY}={t.number}"] if self.report else [])] for t in trials]
            returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns, strict=True):
                failures += not self._tell(study, trial, ret)
            todo -= len(trials)  # a run makes at most n_trials attempts; the next run retries the failed ones
            finished = len(study.trials) - before
            if failures / finished > self.max_failure_rate:
                log.error("study %s: %d of %d trials failed, more than max_failure_rate=%g; stopping",
                          self.study_name, failures, finished, self.max_failure_rate)
                break
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            log.error("study %s: no trial completed (see the job folders' logs)", self.study_name)
            return
        best = study.best_trial
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        log.info("study %s: best trial %d, value %.4f, params %s (%d complete, %d pruned, %d failed)",
                 self.study_name, best.number, best.value, best.params, len(complete), pruned,
                 sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials))

    def _check_space(self, study: optuna.Study, distributions: dict[str, Any]) -> None:
        """Refuse, in one line and before any trial is asked (Optuna would leave that trial
        RUNNING in the storage), a search space the stored study's trials cannot share."""
        for trial in study.get_trials(deepcopy=False):
            for key, old in trial.distributions.items():
                if key not in distributions:
                    continue
                try:
                    optuna.distributions.check_distribution_compatibility(old, distributions[key])
                except ValueError as err:
                    reason = str(err).rstrip(".")
                    print(f"error: study {self.study_name} in {self.storage}: {key}: {reason} (its trials used "
                          f"another search space); a study keeps its space: give a new hydra.sweeper.study_name",
                          file=sys.stderr)
                    sys.exit(2)

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, ret: Any) -> bool:
        """Tell the study how the trial's job ended; False if it failed."""
        try:
            value = ret.return_value  # raises the job's exception when it failed
        except Exception as err:  # any error of the job: the trial failed, the study goes on
            log.error("trial %d failed: %s", trial.number, err)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return False
        if next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).user_attrs.get("pruned"):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
        if value is None or (isinstance(value, float) and math.isnan(value)):
            log.error("trial %d returned no value for the optimized metric", trial.number)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return False
        study.tell(trial, float(value))
        return True
