"""What the entry points share: precision choice, callbacks/loggers from config,
checkpoint loading with clear errors, the results table and metrics.json."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from sr_lightning.lit import SRLitModule

log = logging.getLogger(__name__)


USER_ERRORS = (ValueError, FileNotFoundError, TypeError)


def user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Print a bad-input error as one line (``error: ...``) and exit with status 2,
    instead of a stack trace. ``HYDRA_FULL_ERROR=1`` re-raises for debugging."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except USER_ERRORS as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def overridden_keys() -> set[str]:
    """Config keys given on the command line (empty outside a Hydra run)."""
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """``"auto"``: bf16-mixed on CPUs with AMX and GPUs that support bf16, else 32-true."""
    if str(precision) != "auto":
        return precision
    wants_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if wants_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu") and torch.cpu._is_amx_tile_supported():
        return "bf16-mixed"
    return "32-true"


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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an sr_lightning checkpoint's dict (weights only: nothing is unpickled).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an sr_lightning checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path='{path}' does not exist; give a .ckpt written by sr_lightning.train "
                                f"(e.g. logs/train/runs/<date>/checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a non-checkpoint file
        raise ValueError(f"ckpt_path='{path}' is not a readable checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "net" not in hparams or "state_dict" not in ckpt:
        raise ValueError(f"ckpt_path='{path}' is a file torch can read but not an sr_lightning checkpoint "
                         f"(no network config in its hyper_parameters)")
    return ckpt


def load_module(ckpt: str | Path | Mapping[str, Any], *, net_overrides: Mapping[str, Any] | None = None,
                evaluation: Mapping[str, Any] | None = None) -> SRLitModule:
    """Rebuild an ``SRLitModule`` from a checkpoint (a path, or a dict from :func:`read_checkpoint`),
    optionally changing network kwargs (e.g. the scale of a pre-upsampling network) and
    the evaluation protocol."""
    if not isinstance(ckpt, Mapping):
        ckpt = read_checkpoint(ckpt)
    hp = ckpt["hyper_parameters"]
    net = {**hp["net"], **(net_overrides or {})}
    module = SRLitModule(net=net, loss=hp.get("loss"), optimizer=hp.get("optimizer"), scheduler=hp.get("scheduler"),
                         evaluation=evaluation if evaluation is not None else hp.get("evaluation"),
                         channels_last=hp.get("channels_last", False))
    module.load_state_dict(ckpt["state_dict"])
    return module


def results_table(results: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """A rich table: set, images, PSNR/SSIM of the network and of bicubic, and the gain."""
    table = Table(title=title)
    for col in ("set", "images", "PSNR (dB)", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain (dB)"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, r in results.items():
        table.add_row(name, str(r["num_images"]), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['psnr_bicubic']:.3f}",
                      f"{r['ssim_bicubic']:.4f}", f"{r['psnr'] - r['psnr_bicubic']:+.3f}")
    return table


@rank_zero_only
def report(results: Mapping[str, Mapping[str, float]], output_dir: str | Path, title: str,
           extra_lines: list[str] | None = None) -> Path:
    """Write ``metrics.json`` to ``output_dir`` and print the table (rank 0 only)."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    console = Console()
    console.print(results_table(results, title))
    for line in [*(extra_lines or []), f"metrics: {path}"]:
        console.print(line, highlight=False, soft_wrap=True)
    return path
