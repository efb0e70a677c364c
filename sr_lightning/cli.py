"""The command-line front door of the entry points: where the configs are, the argv
fixes and plugin checks before Hydra sees a command line, and bad input as one line."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException
from omegaconf import DictConfig, OmegaConf

from sr_lightning.config import CONF_DIR, compose_config, quote_numeric_choices, register_resolvers
from sr_lightning.errors import UserError

log = logging.getLogger(__name__)

# What the entry points print as one line: our own bad-input errors (UserError and its typed
# kinds: CheckpointError, ImageReadError, WeightFormatError) and a missing file. Anything else
# keeps its traceback.
USER_ERRORS = (UserError, FileNotFoundError)


class JobFailed(CompactHydraException):
    """A multirun job's bad input, raised to the sweeper: it records the job as failed and goes
    on; if Hydra reports it at the end of the sweep, it prints the one line, no traceback."""


def user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Print a bad-input error as one line (``error: ...``) and exit with status 2,
    instead of a stack trace. ``HYDRA_FULL_ERROR=1`` re-raises for debugging. In a
    multirun the error is logged and raised again as :class:`JobFailed`, so the sweeper
    records a failed job and goes on (a process exit would end the whole sweep)."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except (*USER_ERRORS, InstantiationException) as err:
            # A bad option met inside hydra.utils.instantiate arrives wrapped: report its cause.
            cause = err.__cause__ if isinstance(err, InstantiationException) else err
            if not isinstance(cause, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {cause}", file=sys.stderr)
            if HydraConfig.initialized() and str(HydraConfig.get().mode).endswith("MULTIRUN"):
                log.error("job %s failed: %s", HydraConfig.get().job.num, cause)
                raise JobFailed(str(cause)) from None
            sys.exit(2)

    return wrapper


# Config choices that need a Hydra plugin: (group, option prefix) -> (plugin module, pip package, our extra).
PLUGINS = {
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    ("hydra/launcher", "submitit"): ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
}


def missing_plugins(argv: list[str]) -> list[str]:
    """For each command-line choice whose Hydra plugin is not installed: what to install."""
    import importlib.util

    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        for (group, prefix), (module, package, extra) in PLUGINS.items():
            if sep and key.lstrip("+~") == group and value.startswith(prefix) and value != "null":
                if importlib.util.find_spec(module) is None:
                    out.append(f"{arg} needs the Hydra plugin {package}: pip install {package} "
                               f"(or pip install 'sr_lightning[{extra}]')")
    return out


class _DropLightningTips(logging.Filter):
    """Drops Lightning's advertisement lines ("💡 Tip: ... try installing litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_known_noise() -> None:
    """Silence what every run printed that says nothing about the run: Lightning's litlogger
    tip, and the FutureWarning Lightning 2.6's data loader wrapper raises with torch >= 2.10
    (``isinstance(treespec, LeafSpec)`` is deprecated; Lightning's code, not ours)."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTips())


def prepare_argv(argv: list[str]) -> list[str]:
    """The entry points' command line before Hydra sees it: numeric choices quoted
    (``data=291``), and a one-line error (exit 2) for a choice whose plugin is missing or
    for Hydra's ``--experimental-rerun`` (which unpickles a file)."""
    problems = missing_plugins(argv)
    if any(a.split("=", 1)[0] == "--experimental-rerun" for a in argv):
        problems.append("--experimental-rerun unpickles the file it is given, and sr_lightning never unpickles a "
                        "file; rerun a job with the overrides listed in <run folder>/.hydra/overrides.yaml")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        sys.exit(2)
    quiet_known_noise()
    register_resolvers()
    return quote_numeric_choices(argv, CONF_DIR)


def quoted(value: str | Path) -> str:
    """A value (a path, a test set's name) as a Hydra override value, quoted when it holds
    characters Hydra's grammar treats specially."""
    text = str(value)
    return text if re.fullmatch(r"[\w./:@%-]+", text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextlib.contextmanager
def composed(config_name: str, overrides: Sequence[str], output_dir: str | Path | None = None
             ) -> Iterator[DictConfig]:
    """:func:`compose_config` for running the entry point's function from Python: ``HydraConfig``
    set for the block (the overrides; ``hydra.runtime.output_dir`` = ``output_dir``, None: the
    composed ``hydra.run.dir``; created), without the ``hydra`` node, as ``@hydra.main``
    passes it."""
    from omegaconf import open_dict

    quiet_known_noise()
    hydra_cfg = HydraConfig.instance().cfg
    cfg = compose_config(config_name, overrides)
    try:
        out = Path(output_dir if output_dir is not None else cfg.hydra.run.dir).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        yield cfg
    finally:
        HydraConfig.instance().cfg = hydra_cfg


def require_given(cfg: DictConfig) -> None:
    """Raise a one-line :class:`UserError` naming the config's ``???`` keys (left to the user) that
    the command line did not set."""

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{', '.join(missing)} must be given (the config leaves it to you, '???'): add "
                        f"{missing[0]}=... to the command")


def overridden_keys() -> set[str]:
    """Config keys given on the command line (empty outside a Hydra run)."""
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
