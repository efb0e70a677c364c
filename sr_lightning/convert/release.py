"""PyTorch releases: an author's ``.pth`` / ``.pt`` / ``.safetensors`` state dict as one of our networks.

``python -m sr_lightning.convert --format pth --net imdn [--scale 4] x4.pth imdn_x4.ckpt``

* The file is read as data: ``torch.load(weights_only=True)`` or safetensors; a pickled
  whole model (code) is refused with how to re-save it as a state dict.
* The wrappers releases use are unwrapped (``params_ema`` before ``params``, ``state_dict``,
  ``model``) and DataParallel's ``module.`` prefix dropped.
* Release key names become ours through :data:`KEY_MAPS` (ordered regex rewrites per model
  config; a network whose release uses our names has none); keys a release stores but that
  are computed from the others (:data:`DERIVED`: attention masks, index tables, SPAN's
  folded convolutions, RCAN's mean shifts) are dropped; :data:`RELEASE_OPTIONS` sets the
  options a release was trained with (RCAN: inputs 0..255).
* The network is the model config ``--net`` names (``conf/model/<net>.yaml``, its defaults =
  the paper's) at the scale and channel count that fit the file's shapes; a given ``--scale``
  that does not fit, or keys that do not, are named with both shapes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sr_lightning.convert.imported import Imported
from sr_lightning.convert.mat import WeightFormatError
from sr_lightning.data.pairs import BENCHMARK_LR
from sr_lightning.errors import UserError
from sr_lightning.nets import build_net, net_class

Rewrites = tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...]
# SwinIR's layout (github.com/JingyunLiang/SwinIR), shared by HAT (github.com/XPixelGroup/HAT).
_SWIN: Rewrites = ((r"\.residual_group\.blocks\.", ".layers."), (r"\.mlp\.fc1\.", ".mlp.0."),
                   (r"\.mlp\.fc2\.", ".mlp.2."), (r"^patch_embed\.norm\.", "patch_norm."))
_SWIN_UPSAMPLER: Rewrites = ((r"^upsample\.", "upsample.2."), (r"^conv_before_upsample\.0\.", "upsample.0."),
                             (r"^conv_last\.", "upsample.3."))
_HAT: Rewrites = (*_SWIN, (r"\.residual_group\.overlap_attn\.", ".overlap_attn."),
                  (r"\.conv_block\.cab\.", ".conv_block."), (r"\.attention\.1\.", ".excite.0."),
                  (r"\.attention\.3\.", ".excite.2."), *_SWIN_UPSAMPLER)
_SWIN_DERIVED = (r"attn_mask$", r"relative_position_index(_SA|_OCA)?$")
# Release key -> our key, per model config: (pattern, replacement) applied in order; a network
# whose release uses our names has none.
KEY_MAPS: dict[str, Rewrites] = {
    # IMDN (github.com/Zheng222/IMDN, models/architecture.py): fea_conv, IMDB1..6, c, LR_conv, upsampler.
    "imdn": (
        (r"^fea_conv\.", "head."),
        (r"^IMDB(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),
        (r"\.cca\.conv_du\.", ".cca.excite."),
        (r"^c\.0\.", "fuse.0."),
        (r"^LR_conv\.", "body_tail."),
        (r"^upsampler\.0\.", "upsample.0."),
    ),
    # RCAN (github.com/yulunzhang/RCAN): head.0, CALayer's conv_du; groups and blocks index as ours.
    "rcan": ((r"^head\.0\.", "head."), (r"\.conv_du\.", ".excite.")),
    # ESRGAN's first release (github.com/xinntao/ESRGAN); BasicSR / Real-ESRGAN files use our names.
    "rrdbnet": ((r"^RRDB_trunk\.", "body."), (r"\.RDB(\d)\.", r".rdb\1."), (r"^trunk_conv\.", "conv_body."),
                (r"^upconv(\d)\.", r"conv_up\1."), (r"^HRconv\.", "conv_hr.")),
    "swinir": (*_SWIN, *_SWIN_UPSAMPLER),
    "swinir_light": _SWIN,  # its one-step upsampler is upsample.0 in both
    "hat": _HAT,
    "hat_s": _HAT,
    # SPAN (github.com/hongyuanyu/SPAN): block_1..6.
    "span": ((r"^block_(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),),
    # SAFMN (github.com/sunny2109/SAFMN): the channel mixer's inner Sequential.
    "safmn": ((r"\.ccm\.ccm\.", ".ccm."),),
}
# Release keys that hold values computed from the others (masks, index tables, folded or fixed
# convolutions): dropped, the network computes its own.
DERIVED: dict[str, tuple[str, ...]] = {
    "swinir": _SWIN_DERIVED, "swinir_light": _SWIN_DERIVED, "hat": _SWIN_DERIVED, "hat_s": _SWIN_DERIVED,
    "span": (r"\.eval_conv\.",),
    "rcan": (r"^(sub|add)_mean\.",),
}
# Model options a release was trained with that differ from the config's defaults.
RELEASE_OPTIONS: dict[str, dict[str, Any]] = {"rcan": {"img_range": 255.0}}
# Keys under which releases nest the state dict, in order of preference (EMA weights first).
WRAPPERS = ("params_ema", "params", "state_dict", "model")
RESAVE = ("load it where you trust its code and save only the weights: "
          "torch.save(model.state_dict(), 'weights.pth')")


def read_tensors(path: Path) -> Any:
    """The file's content as data: safetensors, or ``torch.load(weights_only=True)``."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightFormatError(f"'{path}' is not a readable .safetensors file ({err})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file it will not read as data
        text = str(err)
        if "Unsupported global" in text or "weights_only" in text.lower():
            found = re.search(r"GLOBAL ([\w.]+)", text)
            raise WeightFormatError(
                f"'{path}' is a pickled Python object{f' ({found[1]})' if found else ''}, not a state dict of "
                f"tensors; sr_lightning never unpickles code: {RESAVE}") from None
        raise WeightFormatError(f"'{path}' is not a PyTorch weights file torch can read ({type(err).__name__}: "
                                f"{text.splitlines()[0][:200] if text else ''})") from None


def unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    """The state dict inside a release's file: :data:`WRAPPERS` unwrapped, ``module.`` dropped."""
    while isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        inner = next((k for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise WeightFormatError(f"'{path}' holds {sorted(map(str, obj))[:8]} but no state dict of tensors "
                                    f"(looked under {', '.join(WRAPPERS)})")
        obj = obj[inner]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightFormatError(f"'{path}' holds a {type(obj).__name__}, not a state dict of tensors")
    return {re.sub(r"^(module\.)+", "", str(k)): v for k, v in obj.items()}


def our_keys(net: str, state: Mapping[str, Tensor]) -> dict[str, tuple[str, Tensor]]:
    """Our key -> (the release's key, tensor), through :data:`KEY_MAPS` for ``net`` (a model
    config name), without the release's :data:`DERIVED` keys."""
    out = {}
    for key, value in state.items():
        if any(re.search(pattern, key) for pattern in DERIVED.get(net, ())):
            continue
        ours = key
        for pattern, repl in KEY_MAPS.get(net, ()):
            ours = re.sub(pattern, repl, ours)
        out[ours] = (key, value)
    return out


def model_config(net: str) -> dict[str, Any]:
    """The network config of ``conf/model/<net>.yaml`` (variants included), resolved; its
    ``scale`` and ``in_channels`` (which follow ``data``) are set per candidate by the caller."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from sr_lightning.cli import CONF_DIR

    known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    if net not in known:
        raise UserError(f"--net {net!r} is not a model config; choose one of {', '.join(known)}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"model={net}"])
    finally:
        GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.model, resolve=True)


def first_mismatch(expected: Mapping[str, Tensor], found: Mapping[str, tuple[str, Tensor]]) -> str | None:
    """The first difference between a network's state dict and the file's, or None if they fit."""
    missing = [k for k in expected if k not in found]
    if missing:
        return f"the network's {missing[0]} {tuple(expected[missing[0]].shape)} is not in the file" \
               f"{f' ({len(missing)} keys missing)' if len(missing) > 1 else ''}"
    extra = [k for k in found if k not in expected]
    if extra:
        key, value = found[extra[0]]
        return f"the file's {key} {tuple(value.shape)} has no place in the network" \
               f"{f' ({len(extra)} keys unexpected)' if len(extra) > 1 else ''}"
    for k, v in expected.items():
        key, value = found[k]
        if value.shape != v.shape:
            return f"{key} is {tuple(value.shape)} in the file but {tuple(v.shape)} in the network ({k})"
    return None


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
    state = our_keys(net, unwrap(read_tensors(path), path))
    base = {**model_config(net), **RELEASE_OPTIONS.get(net, {})}
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
    # RGB releases take the standard LR files (benchmark_lr); Y ones the MATLAB Y pipeline (Imported's default).
    rgb = {"degradation": asdict(BENCHMARK_LR)} if cfg["in_channels"] == 3 else {}
    return Imported(net=cfg, state_dict=tensors, trained_scales=[found_scale], **rgb,
                    source={"format": "pth", "net": net, "file": path.name,
                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
