"""Turning imported weights into an sr_lightning checkpoint (what ``SRLitModule`` saves)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import torch
from torch import Tensor

from sr_lightning.errors import UserError
from sr_lightning.lit.sr_module import DEFAULT_EVALUATION, SRLitModule


@dataclass
class Imported:
    """Weights read from a released file.

    Attributes:
        net: the network config (``_target_`` + kwargs, scale included).
        weights: one ``(weight, bias)`` pair per convolution, in order, as torch
            ``(C_out, C_in, k, k)`` / ``(C_out,)`` float32 tensors.
        trained_scales: the scales the weights were trained for (None: unknown).
        source: provenance, stored in the checkpoint.
        degradation: the data pipeline the weights expect (``data.degradation``), which
            ``eval`` adopts; default: the Y-channel MATLAB pipeline of the SRCNN/VDSR code.
    """

    net: dict[str, Any]
    weights: list[tuple[Tensor, Tensor]]
    trained_scales: list[int] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    degradation: dict[str, Any] = field(default_factory=lambda: {"source": "y", "border": "symmetric",
                                                                  "antialias": True})


def _state_dict(imported: Imported) -> dict[str, Tensor]:
    module = SRLitModule(net=imported.net)
    convs = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(imported.weights):  # the format modules build matching configs; guard anyway
        raise UserError(f"{len(imported.weights)} layers of weights for a network with {len(convs)} convolutions")
    for conv, (w, b) in zip(convs, imported.weights, strict=True):
        if conv.weight.shape != w.shape or conv.bias.shape != b.shape:
            raise UserError(f"weight shape {tuple(w.shape)} does not fit the layer {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
    return module.state_dict()


def checkpoint_dict(imported: Imported) -> dict[str, Any]:
    """The checkpoint as a dict of plain types and tensors (loadable with ``weights_only=True``)."""
    return {
        "state_dict": _state_dict(imported),
        "hyper_parameters": {"net": imported.net, "loss": None, "optimizer": None, "scheduler": None,
                             "evaluation": dict(DEFAULT_EVALUATION), "channels_last": False,
                             "adjustable_clip": None},
        "pytorch-lightning_version": lightning.__version__,
        "sr_lightning": {"trained_scales": imported.trained_scales, "source": imported.source,
                         "degradation": dict(imported.degradation)},
    }


def write_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Save atomically (no partial file on failure); parent folders are created."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def convert(fmt: str, src: str | Path, dst: str | Path, scale: int | None = None, overwrite: bool = False) -> Path:
    """Import ``src`` (format ``fmt``, see :data:`FORMATS`) and write the checkpoint ``dst``."""
    from sr_lightning.convert.formats import FORMATS

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; choose one of {', '.join(sorted(FORMATS))}")
    dst = Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"'{dst}' exists; choose another output path or pass --force to overwrite it")
    imported = FORMATS[fmt](src, scale)
    return write_checkpoint(checkpoint_dict(imported), dst)
