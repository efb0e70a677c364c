"""Evaluate a checkpoint or a parameter-free model on the test sets:
``python -m sr_lightning.eval ckpt_path=PATH`` or ``python -m sr_lightning.eval model=bicubic``.

Prints the table and writes ``metrics.json`` to the run's output folder.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from sr_lightning.lit import SRLitModule, net_class
from sr_lightning.runtime import (
    instantiate_loggers,
    load_module,
    overridden_keys,
    read_checkpoint,
    report,
    resolve_precision,
    user_errors,
)

log = logging.getLogger(__name__)


def _module_from_checkpoint(cfg: DictConfig) -> SRLitModule:
    """Load the checkpoint; adopt its scale/channels unless given on the command line."""
    ckpt = read_checkpoint(cfg.ckpt_path)
    net_cfg = ckpt["hyper_parameters"]["net"]
    net_cls = net_class(net_cfg)
    given = overridden_keys()
    ckpt_scale, ckpt_channels = int(net_cfg["scale"]), int(net_cfg["in_channels"])
    overrides: dict[str, Any] = {}
    if "data.scale" in given and int(cfg.data.scale) != ckpt_scale:
        if not net_cls.scale_agnostic:
            raise ValueError(f"data.scale={cfg.data.scale} is not supported by this {net_cls.name} checkpoint: its "
                             f"weights are for x{ckpt_scale} only (drop data.scale or use data.scale={ckpt_scale})")
        net_cls.check_scale(cfg.data.scale)
        overrides["scale"] = int(cfg.data.scale)
    if "data.channels" in given and int(cfg.data.channels) != ckpt_channels:
        raise ValueError(f"data.channels={cfg.data.channels} does not match the checkpoint's network "
                         f"({ckpt_channels} channel(s)); drop data.channels")
    with open_dict(cfg):
        cfg.data.scale = overrides.get("scale", ckpt_scale)
        cfg.data.channels = ckpt_channels
    return load_module(ckpt, net_overrides=overrides, evaluation=cfg.evaluation)


def evaluate(cfg: DictConfig) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Run the test sets; returns ``(metrics.json content, objects)``."""
    if cfg.ckpt_path:
        module = _module_from_checkpoint(cfg)
    else:
        module = SRLitModule(net=cfg.model, evaluation=cfg.evaluation)
        if any(p.requires_grad for p in module.parameters()):
            raise ValueError(f"model={module.net.name} has trainable weights but no ckpt_path was given: pass "
                             f"ckpt_path=<a checkpoint of sr_lightning.train> (or model=bicubic for the baseline)")
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.get("accelerator", "auto"))
    trainer: L.Trainer = instantiate(cfg.trainer, devices=1, logger=instantiate_loggers(cfg.get("logger")) or False,
                                     callbacks=[], precision=precision, enable_checkpointing=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    title = f"{module.net.name} x{module.scale} ({cfg.ckpt_path or 'no checkpoint'})"
    report(module.test_results, cfg.paths.output_dir, title)
    return module.test_results, {"module": module, "datamodule": datamodule, "trainer": trainer}


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
