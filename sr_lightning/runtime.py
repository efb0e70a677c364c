"""What the entry points share: one-line user errors, argv quirks and plugin checks,
callbacks/loggers from config, the results table and metrics.json."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from sr_lightning.errors import UserError
from sr_lightning.nets import net_class

log = logging.getLogger(__name__)


# What the entry points print as one line: our own bad-input errors (UserError and its typed
# kinds: CheckpointError, ImageReadError, WeightFormatError) and a missing file. Anything else
# keeps its traceback.
USER_ERRORS = (UserError, FileNotFoundError)
# The Hydra config tree (the entry points' config_path).
CONF_DIR = Path(__file__).resolve().parent / "conf"


def user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Print a bad-input error as one line (``error: ...``) and exit with status 2,
    instead of a stack trace. ``HYDRA_FULL_ERROR=1`` re-raises for debugging. In a
    multirun the error is logged and re-raised, so the sweeper records a failed job and
    goes on (a process exit would end the whole sweep)."""

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
                raise
            sys.exit(2)

    return wrapper


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
    return quote_numeric_choices(argv, CONF_DIR)


def close_loggers(loggers: list[Logger], failed: bool) -> None:
    """End the job's logger runs, so the next job of a multirun (same process) starts its own:
    loggers are finalised (W&B uploads the best checkpoint then, with ``log_model``) and W&B
    runs finished (exit code 1 when ``failed``)."""
    for logger in loggers:
        logger.finalize("failed" if failed else "success")
        if isinstance(logger, WandbLogger) and logger._experiment is not None:  # only a run that was started
            logger._experiment.finish(exit_code=1 if failed else 0)
            logger._experiment = None


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


def run_name(target: str, scale: int, lr: float | None = None) -> str:
    """A readable run name, ``vdsr-x2-lr1e-3``, from the model's ``_target_``, the scale and the lr."""
    try:
        name = net_class({"_target_": target}).name
    except (ValueError, TypeError):
        name = str(target).rsplit(".", 1)[-1].lower()
    out = f"{name}-x{scale}"
    if lr is not None:
        out += "-lr" + f"{float(lr):.0e}".replace("e-0", "e-").replace("e+0", "e")
    return out


def sweep_group() -> str | None:
    """The W&B group of a multirun's jobs (``sweep-<sweep folder name>``); None for a single run
    or outside Hydra."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return f"sweep-{Path(hc.sweep.dir).name}" if str(hc.mode).endswith("MULTIRUN") else None


OmegaConf.register_new_resolver("sr.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("sr.sweep_group", sweep_group, replace=True)


def quote_numeric_choices(argv: list[str], conf_dir: str | Path) -> list[str]:
    """Quote config-group choices that are numbers (``data=291`` -> ``data='291'``).

    Hydra parses ``291`` as an int and rejects it as a group choice; quoting makes it the
    option name it is. Only keys that are config groups in ``conf_dir`` are touched.
    """
    groups = {p.name for p in Path(conf_dir).iterdir() if p.is_dir()}
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in groups and value.replace(".", "", 1).isdigit():
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


def overridden_keys() -> set[str]:
    """Config keys given on the command line (empty outside a Hydra run)."""
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


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


def results_table(results: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """A rich table: set, images, PSNR/SSIM of the network and of bicubic, the gain, and
    the published PSNR/SSIM with our difference where ``published_psnr`` is given."""
    table = Table(title=title)
    published = any("published_psnr" in r for r in results.values())
    columns = ["set", "images", "PSNR (dB)", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain (dB)"]
    if published:
        columns += ["published PSNR", "published SSIM", "diff PSNR", "diff SSIM"]
    for col in columns:
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, r in results.items():
        row = [name, str(r["num_images"]), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['psnr_bicubic']:.3f}",
               f"{r['ssim_bicubic']:.4f}", f"{r['psnr'] - r['psnr_bicubic']:+.3f}"]
        if published:
            p_psnr, p_ssim = r.get("published_psnr"), r.get("published_ssim")
            row += [f"{p_psnr:.2f}" if p_psnr is not None else "-", f"{p_ssim:.4f}" if p_ssim is not None else "-",
                    f"{r['psnr'] - p_psnr:+.3f}" if p_psnr is not None else "-",
                    f"{r['ssim'] - p_ssim:+.4f}" if p_ssim is not None else "-"]
        table.add_row(*row)
    return table


@rank_zero_only
def report(results: Mapping[str, Mapping[str, float]], output_dir: str | Path, title: str,
           extra_lines: list[str] | None = None) -> Path:
    """Write ``metrics.json`` to ``output_dir`` and print the table (rank 0 only)."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    console = Console(width=None if sys.stdout.isatty() else 200)  # logs/pipes: do not squeeze the table
    console.print(results_table(results, title))
    for line in [*(extra_lines or []), f"metrics: {path}"]:
        console.print(line, highlight=False, soft_wrap=True)
    return path
