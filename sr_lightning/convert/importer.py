"""``convert()``: a released weights file -> an sr_lightning checkpoint, written by the module
that owns the format (:func:`sr_lightning.checkpoint.weights_checkpoint`)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch

from sr_lightning.checkpoint import (
    EXPECTED,
    Checkpoint,
    NotACheckpointError,
    RunMeta,
    checkpoint_of,
    save_checkpoint,
    weights_checkpoint,
)
from sr_lightning.convert.formats import FORMATS, NEEDS_NET
from sr_lightning.convert.imported import Imported
from sr_lightning.convert.release import detected
from sr_lightning.errors import UserError
from sr_lightning.files import load_tensors
from sr_lightning.lit import SRLitModule


def imported_module(imported: Imported) -> SRLitModule:
    """An :class:`SRLitModule` of the imported network (the literature's evaluation protocol)
    holding the imported weights, with the file's provenance as checkpoint metadata."""
    module = SRLitModule(net=imported.net)
    if imported.state_dict is not None:
        module.net.load_state_dict(imported.state_dict)  # the reader fitted the keys and shapes (release.py)
    else:
        _copy_convolutions(module.net, imported.weights)
    module.run_meta = RunMeta(degradation=dict(imported.degradation), source=imported.source,
                              trained_scales=tuple(imported.trained_scales) if imported.trained_scales else None)
    return module


def read_model(path: str | Path, key: str = "ckpt_path", trusted_nets: Collection[str] = (),
               architecture: str | None = None, fallback_scale: int | None = None) -> Checkpoint:
    """Any model file as a checkpoint: an sr_lightning checkpoint (:func:`read_checkpoint`), or a
    bare state dict (``.pth``, ``.pt``, ``.safetensors``: a release or a community file) whose
    network is detected (:func:`sr_lightning.convert.release.detected`) and imported in memory.

    Args:
        architecture: for a bare state dict, the network to take when several fit (the
            ``architecture`` option of the entry points).
        fallback_scale: for a bare state dict whose weights do not hold their scale (FSRCNN's),
            the scale it was trained for; None: such a file is refused, saying how to give it.

    Raises:
        FileNotFoundError, UserError: the file is missing, unreadable, or no known network
            (the closest named).
    """
    path = Path(path).expanduser()
    data = load_tensors(path, key, EXPECTED)  # read once, whichever it is
    try:
        return checkpoint_of(data, path, key, trusted_nets)
    except NotACheckpointError:
        imported = detected(path, data=data, architecture=architecture, fallback_scale=fallback_scale)
    return checkpoint_of(weights_checkpoint(imported_module(imported)), path, key)


def _copy_convolutions(net: torch.nn.Module, weights: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Copy ``(weight, bias)`` pairs into ``net``'s convolutions, in order."""
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(weights):  # the format modules build matching configs; guard anyway
        raise UserError(f"{len(weights)} layers of weights for a network with {len(convs)} convolutions")
    for conv, (w, b) in zip(convs, weights, strict=True):
        if conv.weight.shape != w.shape or conv.bias.shape != b.shape:
            raise UserError(f"weight shape {tuple(w.shape)} does not fit the layer {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)


def convert(fmt: str, src: str | Path, dst: str | Path, scale: int | None = None, overwrite: bool = False,
            net: str | None = None) -> Path:
    """Import ``src`` (format ``fmt``, see :data:`FORMATS`; ``net``: the model config of a
    ``pth`` release) and write the checkpoint ``dst``."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; choose one of {', '.join(sorted(FORMATS))}")
    if net is not None and fmt not in NEEDS_NET:
        raise UserError(f"--net names the network of a --format {'/'.join(NEEDS_NET)} file")
    dst = Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"'{dst}' exists; choose another output path or pass --force to overwrite it")
    if fmt in NEEDS_NET:  # a state dict: the network named, or detected from its keys and shapes
        imported = FORMATS[fmt](src, scale, net) if net is not None else detected(src, scale)
    else:
        imported = FORMATS[fmt](src, scale)
    return save_checkpoint(weights_checkpoint(imported_module(imported)), dst)
