"""The module an evaluation scores, built from a command's config: a model file's network
with its weights (and the data config that fits it), or the configured parameter-free model.
Owned here so that ``eval`` and ``compare`` score a model the same way."""

from __future__ import annotations

from collections.abc import Collection

from omegaconf import DictConfig

from sr_lightning.checkpoint import Checkpoint, config_trusted_nets, data_for
from sr_lightning.config import updated
from sr_lightning.convert.importer import read_model
from sr_lightning.errors import UserError
from sr_lightning.lit import SRLitModule, load_module


def evaluation_module(cfg: DictConfig, path: str | None, given: Collection[str], *, key: str = "ckpt_path",
                      checkpoint: Checkpoint | None = None, channels_last: bool = False
                      ) -> tuple[SRLitModule, DictConfig]:
    """The module that scores ``path`` (any model file: a checkpoint, a release, a community
    state dict; ``checkpoint``: that file already read) under ``cfg.evaluation``, and ``cfg``
    with its ``data`` fitted to the network (scale, channels, the degradation it recorded)
    unless ``given`` (the keys set on the command line) says otherwise. Without ``path``:
    ``cfg.model`` as configured, which must have no trainable weights (bicubic).

    Raises:
        UserError: the file cannot be loaded (its one line names ``key``), or a trainable
            ``cfg.model`` has no weights.
    """
    if path:
        ckpt = checkpoint or read_model(path, key, config_trusted_nets(cfg), cfg.get("architecture"),
                                        cfg.data.scale if "data.scale" in given else None)
        data_updates, net_overrides = data_for(ckpt, cfg.data, given)
        cfg = updated(cfg, data_updates)
        return load_module(ckpt, net_overrides=net_overrides, evaluation=cfg.evaluation,
                           channels_last=channels_last), cfg
    module = SRLitModule(net=cfg.model, evaluation=cfg.evaluation, channels_last=channels_last)
    if any(p.requires_grad for p in module.parameters()):
        raise UserError(f"model={module.net.name} has trainable weights but no {key} was given: pass "
                        f"{key}=<a checkpoint of sr_lightning.train> (or model=bicubic for the baseline)")
    return module, cfg
