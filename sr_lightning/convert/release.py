"""PyTorch releases: an author's ``.pth`` / ``.pt`` / ``.safetensors`` state dict as one of our networks.

``python -m sr_lightning.convert --format pth --net imdn [--scale 4] x4.pth imdn_x4.ckpt``

* The file is read as data: ``torch.load(weights_only=True)`` or safetensors; a pickled
  whole model (code) is refused with how to re-save it as a state dict.
* The wrappers releases use are unwrapped (``params_ema`` before ``params``, ``state_dict``,
  ``model``) and DataParallel's ``module.`` prefix dropped.
* Release key names become ours through :data:`KEY_MAPS` (ordered regex rewrites per model
  config; a network whose release uses our names has none); keys a release stores but that
  are computed from the others (:data:`DERIVED`: attention masks, index tables, SPAN's
  folded convolutions, RCAN's mean shifts) are checked against what our network computes
  (:func:`check_derived`: a file from modified code is refused) or folded into it
  (:data:`FOLDS`: RCAN's trainable mean shifts), then dropped; :data:`RELEASE_OPTIONS` sets the
  options a release was trained with (RCAN: inputs 0..255).
* The network is the model config ``--net`` names (``conf/model/<net>.yaml``, its defaults =
  the paper's) at the scale and channel count that fit the file's shapes; a given ``--scale``
  that does not fit, or keys that do not, are named with both shapes.
"""

from __future__ import annotations

import hashlib
import logging
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
from sr_lightning.files import PICKLED, UnreadableFileError, read_data
from sr_lightning.nets import build_net, net_class

log = logging.getLogger(__name__)

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


def derived_keys(net: str, state: Mapping[str, Tensor]) -> dict[str, tuple[str, Tensor]]:
    """The release's :data:`DERIVED` keys: our key (through :data:`KEY_MAPS`) -> (its key, tensor)."""
    derived = {k: v for k, v in state.items() if any(re.search(p, k) for p in DERIVED.get(net, ()))}
    out = {}
    for key, value in derived.items():
        ours = key
        for pattern, repl in KEY_MAPS.get(net, ()):
            ours = re.sub(pattern, repl, ours)
        out[ours] = (key, value)
    return out


def _affine_1x1(weight: Tensor, bias: Tensor, key: str, path: Path) -> tuple[Tensor, Tensor]:
    if weight.shape != (3, 3, 1, 1) or bias.shape != (3,):
        raise WeightFormatError(f"'{path}': {key} is {tuple(weight.shape)}, not the (3, 3, 1, 1) mean-shift "
                                f"convolution of RCAN's code")
    return weight[:, :, 0, 0].double(), bias.double()


def fold_mean_shift(cfg: dict[str, Any], tensors: dict[str, Tensor], derived: Mapping[str, tuple[str, Tensor]],
                    path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """RCAN's mean shifts as the file has them, folded exactly into our network.

    The authors' ``sub_mean`` / ``add_mean`` are 1x1 convolutions (y = W x + b, on 0..255
    values) meant to hold identity weights and -/+ 255 x the DIV2K mean; their code sets
    ``requires_grad = False`` on the module, not on its parameters, so a run can train them.
    Ours: the input is ``(lr - m) * r`` and the output ``tail / r + m`` (r = ``img_range``, m =
    ``rgb_mean``). A file holding the standard values keeps the config as it is; otherwise
    ``m = -W_s^-1 b_s / r`` (the mean the input shift implies), ``W_s`` is folded into the head
    convolution (exact at the zero-padded borders too: W_s 0 = 0) and ``W_a``, ``b_a`` into
    the last convolution of the tail.

    Raises:
        WeightFormatError: the shifts are not 3x3 affine maps, or ``W_s`` is singular.
    """
    if not derived:
        return cfg, tensors
    (ks, ws), (_, bs) = derived["sub_mean.weight"], derived["sub_mean.bias"]
    (ka, wa), (_, ba) = derived["add_mean.weight"], derived["add_mean.bias"]
    (w_s, b_s), (w_a, b_a) = _affine_1x1(ws, bs, ks, path), _affine_1x1(wa, ba, ka, path)
    r, mean = float(cfg["img_range"]), torch.tensor(cfg.get("rgb_mean") or [0.0] * 3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    standard = (torch.allclose(w_s, eye, atol=1e-6) and torch.allclose(w_a, eye, atol=1e-6)
                and torch.allclose(b_s, -r * mean, atol=1e-4 * r) and torch.allclose(b_a, r * mean, atol=1e-4 * r))
    if standard:
        return cfg, tensors
    if torch.linalg.matrix_rank(w_s) < 3:
        raise WeightFormatError(f"'{path}': {ks} is a singular 3x3 map, which no mean shift folds into the head")
    m = -torch.linalg.solve(w_s, b_s) / r
    tensors = dict(tensors)
    tensors["head.weight"] = torch.einsum("ojuv,jc->ocuv", tensors["head.weight"].double(), w_s).float()
    last_w, last_b = tensors["tail.1.weight"].double(), tensors["tail.1.bias"].double()
    tensors["tail.1.weight"] = torch.einsum("ij,jcuv->icuv", w_a, last_w).float()
    tensors["tail.1.bias"] = (w_a @ last_b + b_a - r * m).float()
    log.warning("'%s': its mean shifts are not RCAN's standard ones (identity, -/+ %g x the DIV2K mean); folded "
                "into the head and tail convolutions, rgb_mean=%s", path, r, [round(float(v), 6) for v in m])
    return {**cfg, "rgb_mean": [float(v) for v in m]}, tensors


def expected_derived(module: torch.nn.Module, key: str, like: Tensor) -> Tensor | None:
    """What our network computes for a release's derived tensor (our key ``key``, shaped as
    ``like``), or None when it computes nothing of the kind: a buffer of the same name (index
    tables), a Swin layer's shifted-window mask at the square size the shape implies, HAT's
    shared index tables (its first window's / overlapping window's), or a SPAN convolution
    folded from its branches."""
    buffers = dict(module.named_buffers())
    prefix, _, leaf = key.rpartition(".")
    if key in buffers:
        return buffers[key]
    if key in ("relative_position_index_SA", "relative_position_index_OCA"):
        end = "overlap_attn.relative_position_index" if key.endswith("OCA") else "attn.relative_position_index"
        return next((v for k, v in buffers.items() if k.endswith(end) and "overlap" not in k[: -len(end)]), None)
    owner = module.get_submodule(prefix.removesuffix(".eval_conv")) if prefix else module
    if leaf == "attn_mask" and hasattr(owner, "attention_mask") and like.dim() == 3:
        side = owner.window * round(like.shape[0] ** 0.5)
        return owner.attention_mask(side, side, torch.device("cpu"))
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


# Derived tensors a network takes over (folded into its weights) rather than checks.
FOLDS: dict[str, Callable[..., tuple[dict[str, Any], dict[str, Tensor]]]] = {"rcan": fold_mean_shift}


def model_config(net: str) -> dict[str, Any]:
    """The network config of ``conf/model/<net>.yaml`` (variants included), resolved; its
    ``scale`` and ``in_channels`` (which follow ``data``) are set per candidate by the caller."""
    from omegaconf import OmegaConf

    from sr_lightning.config import CONF_DIR, compose_config

    known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    if net not in known:
        raise UserError(f"--net {net!r} is not a model config; choose one of {', '.join(known)}")
    return OmegaConf.to_container(compose_config("train", [f"model={net}"]).model, resolve=True)


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
    raw = unwrap(read_tensors(path), path)
    state, derived = our_keys(net, raw), derived_keys(net, raw)
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
    if net in FOLDS:
        cfg, tensors = FOLDS[net](cfg, tensors, derived, path)
    else:
        check_derived(cfg, tensors, derived, path)
    # RGB releases take the standard LR files (benchmark_lr); Y ones the MATLAB Y pipeline (Imported's default).
    rgb = {"degradation": asdict(BENCHMARK_LR)} if cfg["in_channels"] == 3 else {}
    return Imported(net=cfg, state_dict=tensors, trained_scales=[found_scale], **rgb,
                    source={"format": "pth", "net": net, "file": path.name,
                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
