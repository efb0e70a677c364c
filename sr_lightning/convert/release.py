"""PyTorch releases: an author's ``.pth`` / ``.pt`` / ``.safetensors`` state dict as one of our networks.

``python -m sr_lightning.convert --format pth --net imdn [--scale 4] x4.pth imdn_x4.ckpt``

* The file is read as data: ``torch.load(weights_only=True)`` or safetensors; a pickled
  whole model (code) is refused with how to re-save it as a state dict.
* The wrappers releases use are unwrapped (``params_ema`` before ``params``, ``state_dict``,
  ``model``) and DataParallel's ``module.`` prefix dropped.
* Each network states its release's layout beside its architecture (``SRNet.release_format``:
  a :class:`~sr_lightning.nets.release_format.ReleaseFormat`): release key names become ours
  through its key map; keys a release stores but that are computed from the others
  (attention masks, index tables, SPAN's folded convolutions, RCAN's mean shifts) are checked
  against what our network computes (:func:`check_derived`: a file from modified code is
  refused) or folded into it (its ``fold``: RCAN's trainable mean shifts), then dropped; its
  ``options`` are those the release was trained with (RCAN: inputs 0..255).
* The network is the model config ``--net`` names (``conf/model/<net>.yaml``, its defaults =
  the paper's) at the scale and channel count that fit the file's shapes; a given ``--scale``
  that does not fit, or keys that do not, are named with both shapes.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sr_lightning.checkpoint import check_values
from sr_lightning.convert.imported import Imported
from sr_lightning.data.pairs import BENCHMARK_LR
from sr_lightning.errors import UserError, WeightFormatError
from sr_lightning.files import PICKLED, UnreadableFileError, read_data
from sr_lightning.nets import SRNet, build_net, class_path, detect, get_net_class, net_class
from sr_lightning.nets.detection import unwrap_state
from sr_lightning.nets.release_format import ReleaseFormat, derived_keys, first_mismatch, our_keys

RESAVE = ("load it where you trust its code and save only the weights: "
          "torch.save(model.state_dict(), 'weights.pth')")


def read_tensors(path: Path) -> Any:
    """The file's content as data (:func:`~sr_lightning.files.read_data`: safetensors, or
    ``torch.load(weights_only=True)``)."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    try:
        return read_data(path)
    except UnreadableFileError as err:
        if str(err).startswith(PICKLED):
            raise WeightFormatError(f"'{path}' is a pickled Python object, not a state dict of tensors ({err}): "
                                    f"{RESAVE}") from None
        raise WeightFormatError(f"'{path}' is {err if str(err).startswith('not a') else f'not readable ({err})'}"
                                ) from None


def expected_derived(module: torch.nn.Module, key: str, like: Tensor) -> Tensor | None:
    """What our network computes for a release's derived tensor (our key ``key``, shaped as
    ``like``), or None when it computes nothing of the kind: a buffer of the same name (index
    tables), a shifted-window mask (Swin's, SRFormer's, DAT's two) at the square size the shape implies, HAT's
    shared index tables (its first window's / overlapping window's), or a SPAN convolution
    folded from its branches."""
    buffers = dict(module.named_buffers())
    prefix, _, leaf = key.rpartition(".")
    if key in buffers:
        return buffers[key]
    own = module.release_derived(key) if isinstance(module, SRNet) else None  # the network's own rule
    if own is not None:
        return own
    if key in ("relative_position_index_SA", "relative_position_index_OCA"):
        end = "overlap_attn.relative_position_index" if key.endswith("OCA") else "relative_position_index"
        return next((v for k, v in buffers.items() if k.endswith(end) and "overlap" not in k[: -len(end)]), None)
    owner = module.get_submodule(prefix.removesuffix(".eval_conv")) if prefix else module
    mask = re.fullmatch(r"attn_mask(?:_(\d))?", leaf)
    if mask and hasattr(owner, "attention_mask") and like.dim() == 3:  # (windows, queries, keys) of a square map
        side = round(math.sqrt(like.shape[0] * like.shape[1]))
        branch = () if mask[1] is None else (int(mask[1]),)  # DAT's two window shapes
        return owner.attention_mask(side, side, torch.device("cpu"), *branch)
    if prefix.endswith(".eval_conv") and hasattr(owner, "folded"):
        weight, bias = owner.folded()
        return (weight if leaf == "weight" else bias).detach()
    return None


def check_derived(cfg: dict[str, Any], tensors: Mapping[str, Tensor], derived: Mapping[str, tuple[str, Tensor]],
                  path: Path) -> None:
    """Every derived tensor the release holds equals what our network computes from the rest
    (to 1e-5 of its scale), so dropping it loses nothing.

    Raises:
        WeightFormatError: one that differs (a file from modified code: which copy its outputs
            used cannot be known), or that sr_lightning cannot recompute.
    """
    if not derived:
        return
    module = build_net(cfg)
    module.load_state_dict(dict(tensors), strict=False)
    with torch.no_grad():
        for ours, (key, value) in derived.items():
            want = expected_derived(module, ours, value)
            if want is None:
                raise WeightFormatError(f"'{path}': {key} is a derived tensor sr_lightning cannot recompute for "
                                        f"{cfg['_target_'].rsplit('.', 1)[-1]}; the file does not fit")
            diff = (value.double() - want.double()).abs().max() if value.shape == want.shape else float("inf")
            if diff > 1e-5 * max(1.0, float(want.double().abs().max())):
                raise WeightFormatError(f"'{path}': {key} is not what the network computes from the other weights "
                                        f"(largest difference {float(diff):.3g}): the file comes from modified code "
                                        f"and its outputs cannot be reproduced; re-save it from the authors' code")


def release_format(net: str) -> ReleaseFormat:
    """The release format the network of model config ``net`` states (``SRNet.release_format``)."""
    cfg = model_config(net)
    return net_class(cfg).release_format(cfg)


def model_config(net: str) -> dict[str, Any]:
    """The network config of ``conf/model/<net>.yaml`` (variants included), resolved; its
    ``scale`` and ``in_channels`` (which follow ``data``) are set per candidate by the caller.
    A fresh copy each call (the composition is done once per process)."""
    return copy.deepcopy(_composed_model_config(net))


@functools.cache
def _composed_model_config(net: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from sr_lightning.config import CONF_DIR, compose_config

    known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    if net not in known:
        raise UserError(f"--net {net!r} is not a model config; choose one of {', '.join(known)}")
    return OmegaConf.to_container(compose_config("train", [f"model={net}"]).model, resolve=True)


def load(path: str | Path, scale: int | None, net: str) -> Imported:
    """Read a PyTorch release of the network ``net`` (a model config name).

    Args:
        path: ``.pth``/``.pt``/``.safetensors``.
        scale: the upscaling factor; None: the one the file's shapes fit.
        net: the model config (``imdn``, ``swinir_light``, ...).

    Raises:
        FileNotFoundError, WeightFormatError, UserError: with the key or option at fault.
    """
    path = Path(path).expanduser()
    raw = unwrap_state(read_tensors(path), f"'{path}'")
    config = model_config(net)
    fmt = net_class(config).release_format(config)
    state, derived = our_keys(fmt, raw), derived_keys(fmt, raw)
    base = {**config, **fmt.options}
    supported = list(net_class(base).scales or (2, 3, 4, 8))
    candidates = [scale, *(s for s in supported if s != scale)] if scale is not None else supported
    found, first_problem = None, None  # first_problem: at the given scale when there is one
    for s in candidates:
        for channels in (3, 1):
            cfg = {**base, "scale": s, "in_channels": channels}
            problem = first_mismatch(build_net(cfg).state_dict(), state)
            if problem is None:
                found = cfg
                break
            first_problem = first_problem or problem
        if found is not None:
            break
    if found is None:
        raise WeightFormatError(f"'{path}' does not fit --net {net}: {first_problem}")
    cfg, found_scale = found, found["scale"]
    if scale is not None and found_scale != scale:
        raise UserError(f"--scale {scale} does not fit '{path.name}': its upsampler holds x{found_scale} weights "
                        f"({first_problem}); use --scale {found_scale}")
    tensors = {k: v.float() for k, (_, v) in state.items()}
    return _imported(path, fmt, cfg, tensors, derived, [found_scale], {"net": net})


def detected(path: str | Path, scale: int | None = None, data: Any = None, architecture: str | None = None,
             option: str = "architecture", fallback_scale: int | None = None) -> Imported:
    """Read a state dict of any registered network, its network and arguments detected from the
    key names and shapes (:func:`sr_lightning.nets.detect`), in our layout or its authors'.

    Args:
        scale: None (the weights' scale; for a network whose weights do not fix it, such as
            those refining a bicubic upscale, its default) or a scale to check against them.
        data: the file's content when the caller has read it already (as data); None: read here.
        architecture: the network to take when several fit (``option`` names it in errors).
        fallback_scale: the scale of weights that do not hold theirs (unlike ``scale``, not
            checked against those that do).

    Raises:
        UnknownModelError: no registered network fits (the closest named), or two do.
        UserError: ``scale`` differs from the weights', or the network's scale is not in its
            weights and it only runs at the one it was trained for (FSRCNN).
    """
    path = Path(path).expanduser()
    raw = read_tensors(path) if data is None else data  # data: the file as a caller already read it
    found = detect(unwrap_state(raw, f"'{path}'"), f"'{path}'", architecture, option)
    cls = get_net_class(found.name)
    fmt = cls.release_formats()[found.layout]
    cfg = {"_target_": class_path(cls), "name": found.name, **found.kwargs, **fmt.options}
    if "scale" in found.kwargs and scale is not None and scale != found.kwargs["scale"]:
        raise UserError(f"scale={scale} does not fit '{path.name}': its {found.name} upsampler holds "
                        f"x{found.kwargs['scale']} weights")
    if "scale" not in found.kwargs:
        scale = scale if scale is not None else fallback_scale
        if not cls.scale_agnostic and scale is None:
            raise UserError(f"'{path}' holds {found.name} weights, which do not say their scale: give it (upscale: "
                            f"scale=N; eval, train: data.scale=N) or import them with "
                            f"python -m sr_lightning.convert --format pth --scale N '{path}' OUT.ckpt")
        cfg["scale"] = int(scale) if scale is not None else inspect.signature(cls).parameters["scale"].default
    check_values(found.state_dict, f"'{path}'")
    tensors = {k: v.float() for k, v in found.state_dict.items()}
    trained = [cfg["scale"]] if "scale" in found.kwargs or scale is not None else None
    return _imported(path, fmt, cfg, tensors, found.derived, trained, {"net": found.name, "layout": found.layout})


def _imported(path: Path, fmt: ReleaseFormat, cfg: dict[str, Any], tensors: dict[str, Tensor],
              derived: Mapping[str, tuple[str, Tensor]], trained_scales: list[int] | None,
              source: dict[str, Any]) -> Imported:
    """The derived tensors folded or checked, and the import with its provenance."""
    if fmt.fold is not None:
        cfg, tensors = fmt.fold(cfg, tensors, derived, path)
    else:
        check_derived(cfg, tensors, derived, path)
    # RGB releases take the standard LR files (benchmark_lr); Y ones the MATLAB Y pipeline (Imported's default).
    rgb = {"degradation": asdict(BENCHMARK_LR)} if cfg["in_channels"] == 3 else {}
    return Imported(net=cfg, state_dict=tensors, trained_scales=trained_scales, **rgb,
                    source={"format": "pth", **source, "file": path.name,
                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
