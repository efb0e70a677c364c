"""Evaluate a checkpoint or a parameter-free model on the test sets:
``python -m sr_lightning.eval ckpt_path=PATH`` or ``python -m sr_lightning.eval model=bicubic``.

Prints the table and writes ``metrics.json`` to the run's output folder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sr_lightning.callbacks import ProgressLog
from sr_lightning.checkpoint import Checkpoint
from sr_lightning.cli import overridden_keys, prepare_argv, require_given, user_errors
from sr_lightning.config import register_resolvers, updated
from sr_lightning.evaluation_setup import evaluation_module
from sr_lightning.loggers import instantiate_loggers
from sr_lightning.published import PACKAGED, PublishedRow, find_published, read_published, variants
from sr_lightning.report import report
from sr_lightning.settings import apply_settings, trainer_settings

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, checkpoint: Checkpoint | None = None
             ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Run the test sets; returns ``(metrics.json content, objects)`` (``objects["cfg"]``: the
    config it ran with, its decisions recorded). ``checkpoint``: ``cfg.ckpt_path`` already read
    (the Python API's model)."""
    register_resolvers()
    if OmegaConf.is_missing(cfg.data, "train_dir"):  # data=folder: evaluation trains on nothing
        cfg = updated(cfg, {"data.train_dir": None})
    require_given(cfg)
    settings = apply_settings(trainer_settings(cfg))
    # A model file's network (checked against the registry) and weights; the evaluation protocol is
    # this command's; no loss/optimizer/scheduler is built. A bare FSRCNN file holds no scale: data.scale=N gives it.
    module, cfg = evaluation_module(cfg, cfg.ckpt_path, overridden_keys(), checkpoint=checkpoint,
                                    channels_last=settings.channels_last)
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    progress = ProgressLog(**cfg.get("progress", {}))
    trainer: L.Trainer = instantiate(cfg.trainer, devices=1, val_check_interval=None,  # eval never validates
                                     logger=instantiate_loggers(cfg.get("logger")) or False,
                                     callbacks=[progress], precision=settings.precision, enable_checkpointing=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    results = module.test_results
    lines = _add_published(results, cfg, module.net.name, module.scale)
    ensemble = " + x8 self-ensemble" if module.self_ensemble else ""
    title = f"{module.net.name}{ensemble} x{module.scale} ({cfg.ckpt_path or 'no checkpoint'})"
    report(results, cfg.paths.output_dir, title, lines)
    return results, {"module": module, "datamodule": datamodule, "trainer": trainer, "cfg": cfg}


def _add_published(results: dict[str, dict[str, float]], cfg: DictConfig, net_name: str, scale: int) -> list[str]:
    """Add ``published_psnr``/``published_ssim`` to each set's results where the published
    rows (``published.csv`` and the packaged ones) have them; returns notes for the report,
    including a protocol difference (a row scored grayscale images another way)."""
    pub = cfg.get("published") or {}
    if not pub.get("csv"):
        return []
    path = Path(pub.csv).expanduser()
    rows, sources = read_published(PACKAGED), [str(PACKAGED.name)]
    if path.is_file() or "published.csv" in overridden_keys():
        rows, sources = read_published(path) + rows, [str(path), *sources]
    else:
        log.info("no published results at %s (set published.csv to a copy of reference/published.csv)", path)
    method = pub.get("method") or net_name
    found: list[PublishedRow] = []
    for name, values in results.items():
        row = find_published(rows, method, name, scale, pub.get("variant"))
        if row is not None:
            found.append(row)
            values["published_psnr"] = row.psnr
            if row.ssim is not None:
                values["published_ssim"] = row.ssim
    if found or not results:
        lines = [f"published: {method}{f' ({pub.variant})' if pub.get('variant') else ''} from "
                 f"{' + '.join(sources)}"]
        if cfg.evaluation.get("self_ensemble"):
            lines.append("published: these are single-pass rows; this run is the x8 self-ensemble (a paper's '+' row)")
        other = sorted({r.gray for r in found} - {cfg.evaluation.gray})
        if other:
            lines.append(f"published: these rows score grayscale test images with evaluation.gray={other[0]}; this "
                         f"run used {cfg.evaluation.gray} (rerun with evaluation.gray={other[0]} to compare like "
                         f"with like)")
        return lines
    choices = variants(rows, method)
    if len(choices) > 1 and not pub.get("variant"):
        return [f"published: {method} has several variants ({', '.join(choices)}): choose one with published.variant"]
    return [f"published: no {method} x{scale} rows for {', '.join(results)} in {' + '.join(sources)}"]


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


def cli() -> None:
    """``python -m sr_lightning.eval`` and the ``sr-eval`` console script."""
    sys.argv = prepare_argv(sys.argv)  # data=291; plugins present
    main()


if __name__ == "__main__":
    cli()
