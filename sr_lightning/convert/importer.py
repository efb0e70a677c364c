"""``convert()``: a released weights file -> an sr_lightning checkpoint, written by the module
that owns the format (:func:`sr_lightning.checkpoint.weights_checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import torch

from sr_lightning.checkpoint import save_checkpoint, weights_checkpoint
from sr_lightning.convert.formats import FORMATS
from sr_lightning.convert.imported import Imported
from sr_lightning.errors import UserError
from sr_lightning.lit import SRLitModule


def imported_module(imported: Imported) -> SRLitModule:
    """An :class:`SRLitModule` of the imported network (the literature's evaluation protocol)
    holding the imported weights, with the file's provenance as checkpoint metadata."""
    module = SRLitModule(net=imported.net)
    convs = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(imported.weights):  # the format modules build matching configs; guard anyway
        raise UserError(f"{len(imported.weights)} layers of weights for a network with {len(convs)} convolutions")
    for conv, (w, b) in zip(convs, imported.weights, strict=True):
        if conv.weight.shape != w.shape or conv.bias.shape != b.shape:
            raise UserError(f"weight shape {tuple(w.shape)} does not fit the layer {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
    module.checkpoint_meta = {"trained_scales": imported.trained_scales, "source": imported.source,
                              "degradation": dict(imported.degradation)}
    return module


def convert(fmt: str, src: str | Path, dst: str | Path, scale: int | None = None, overwrite: bool = False) -> Path:
    """Import ``src`` (format ``fmt``, see :data:`FORMATS`) and write the checkpoint ``dst``."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; choose one of {', '.join(sorted(FORMATS))}")
    dst = Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"'{dst}' exists; choose another output path or pass --force to overwrite it")
    return save_checkpoint(weights_checkpoint(imported_module(FORMATS[fmt](src, scale))), dst)
