"""LapSRN's and MS-LapSRN's released models (Lai et al.): a MatConvNet DagNN network saved as
a struct ``net`` (``layers``, ``params``, ``vars``, ``meta``); the parameters are read by name:

- LapSRN (one set per pyramid level l): ``input_conv_f/_b``, ``level{l}_conv{d}_f/_b``,
  ``level{l}_upconv_f/_b``, ``level{l}_residual_conv_f/_b``, ``level{l}_img_up_f``; the
  number of levels is the scale (x2: 1, x4: 2, x8: 3), the convolutions per level the depth.
- MS-LapSRN (one set shared by every level and scale): ``input_conv_f/_b``,
  ``conv{d}_f/_b``, ``upconv_f/_b``, ``residual_conv_f/_b``, ``img_up_f``.

Convolution filters are (H, W, C_in, C_out), transposed ones (H, W, C_out, C_in) (MatConvNet's
``vl_nnconvt``); MATLAB drops trailing singleton dimensions. The network's transposed
convolutions' crops and leaky slopes are checked against what :class:`~sr_lightning.nets.lapsrn.LapSRN` computes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sr_lightning.convert.imported import Imported
from sr_lightning.convert.mat import describe, read_mat
from sr_lightning.errors import UserError, WeightFormatError

EXPECTED = ("a MatConvNet DagNN struct `net` with `params` named input_conv_f, level1_conv1_f, ... (LapSRN) or "
            "conv1_f, ... (MS-LapSRN)")
MS_RECURSIONS = 8  # the released MS-LapSRN models are D5R8 (the recursions are not in the weights)


def _field(struct: Any, name: str) -> Any:
    """A field of a MATLAB struct as scipy reads it (1x1 structured arrays)."""
    value = struct[name]
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _entries(net: Any, name: str, path: Path) -> list[Any]:
    try:
        array = net[name][0, 0] if isinstance(net, np.ndarray) else net[name]
    except (KeyError, ValueError, IndexError, TypeError):
        raise WeightFormatError(f"'{path}': `net` has no `{name}`; expected {EXPECTED}") from None
    return list(np.asarray(array).reshape(-1))


def _text(value: Any) -> str:
    return str(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else ""


def read_dagnn(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """(parameter name -> value, layer name -> {type, block fields}) of a saved DagNN."""
    variables = read_mat(path)
    net = variables.get("net")
    if not isinstance(net, np.ndarray) or net.dtype.names is None or "params" not in net.dtype.names:
        raise WeightFormatError(f"'{path}' is not a MatConvNet DagNN network: found {describe(variables)}; "
                                f"expected {EXPECTED}")
    params = {_text(_field(p, "name")): np.asarray(_field(p, "value"), dtype=np.float64)
              for p in _entries(net, "params", path)}
    layers = {}
    for layer in _entries(net, "layers", path) if "layers" in net.dtype.names else []:
        block = _field(layer, "block")
        names = getattr(getattr(block, "dtype", None), "names", None) or ()  # Sum, loss layers: no fields
        fields = {k: np.asarray(_field(block, k)).reshape(-1).tolist() for k in names}
        layers[_text(_field(layer, "name"))] = {"type": _text(_field(layer, "type")), **fields}
    return params, layers


def _filter(value: np.ndarray, dims: tuple[int, int, int, int], path: Path, name: str) -> Tensor:
    """A MatConvNet filter of ``dims`` (H, W, third, fourth; MATLAB's dropped trailing ones
    restored) as torch's (fourth, third, H, W): a convolution's (C_out, C_in, k, k), a transposed
    one's (C_in, C_out, k, k)."""
    if value.size != int(np.prod(dims)):
        raise WeightFormatError(f"'{path}': {name} is {value.shape}, which does not fit {dims}")
    return torch.from_numpy(np.ascontiguousarray(value.reshape(dims).transpose(3, 2, 0, 1))).float()


def _check_layers(layers: dict[str, dict[str, Any]], path: Path) -> None:
    """The transposed convolutions' crops and the ReLUs' leak are the ones LapSRN computes."""
    for name, layer in layers.items():
        if layer["type"] == "dagnn.ReLU" and layer.get("leak", [0.2])[0] != 0.2:
            raise WeightFormatError(f"'{path}': layer {name} is a ReLU of leak {layer['leak'][0]}, not LapSRN's 0.2")
        if layer["type"] == "dagnn.ConvTranspose":
            k = int(layer["size"][0])
            crop = [int(c) for c in layer.get("crop", [0])]
            crop = crop * 4 if len(crop) == 1 else crop
            p = (k - 2) // 2
            expected = [p, p + k % 2, p, p + k % 2]
            if crop != expected or int(layer.get("upsample", [2])[0]) != 2:
                raise WeightFormatError(f"'{path}': layer {name} ({k}x{k}) crops {crop} and upsamples "
                                        f"{layer.get('upsample')}; LapSRN's x2 steps crop {expected}")


def load(path: str | Path, scale: int | None) -> Imported:
    """Read a released LapSRN (any number of levels) or MS-LapSRN DagNN model."""
    path = Path(path).expanduser()
    params, layers = read_dagnn(path)
    _check_layers(layers, path)
    if "input_conv_f" not in params or "input_conv_b" not in params:
        raise WeightFormatError(f"'{path}' has no input_conv_f / input_conv_b parameters (it has "
                                f"{', '.join(sorted(params)[:6])}, ...); expected {EXPECTED}")
    features = params["input_conv_b"].size
    channels = params["input_conv_f"].size // (9 * features)
    levels = sorted({int(m[1]) for k in params if (m := re.match(r"^level(\d+)_", k))})
    shared = not levels
    prefixes = [""] if shared else [f"level{n}_" for n in levels]
    if not shared and levels != list(range(1, len(levels) + 1)):
        raise WeightFormatError(f"'{path}': pyramid levels {levels} are not 1..{len(levels)}")
    depth = len({int(m[1]) for k in params if (m := re.match(rf"^{prefixes[0]}conv(\d+)_f$", k))})

    def get(name: str) -> np.ndarray:
        if name not in params:
            raise WeightFormatError(f"'{path}' lacks the parameter {name} (a {'MS-' if shared else ''}LapSRN of "
                                    f"depth {depth} has it)")
        return params[name]

    def conv(name: str, cin: int, cout: int) -> Tensor:
        value = get(name)
        return _filter(value, (value.shape[0], value.shape[0], cin, cout), path, name)

    state = {"head.weight": conv("input_conv_f", channels, features),
             "head.bias": torch.from_numpy(get("input_conv_b").reshape(-1)).float()}
    up_kernel = get(f"{prefixes[0]}upconv_f").shape[0]
    for i, prefix in enumerate(prefixes):
        body = "levels.{i}.features.body.{j}"
        for d in range(1, depth + 1):
            j = 2 * d - 1 if shared else 2 * (d - 1)  # MS-LapSRN's convolutions follow their activation
            state[f"{body.format(i=i, j=j)}.weight"] = conv(f"{prefix}conv{d}_f", features, features)
            state[f"{body.format(i=i, j=j)}.bias"] = torch.from_numpy(get(f"{prefix}conv{d}_b").reshape(-1)).float()
        state[f"levels.{i}.features.up.weight"] = conv(f"{prefix}upconv_f", features, features)
        state[f"levels.{i}.features.up.bias"] = torch.from_numpy(get(f"{prefix}upconv_b").reshape(-1)).float()
        state[f"levels.{i}.residual.weight"] = conv(f"{prefix}residual_conv_f", features, channels)
        state[f"levels.{i}.residual.bias"] = torch.from_numpy(get(f"{prefix}residual_conv_b").reshape(-1)).float()
        state[f"levels.{i}.image_up.weight"] = conv(f"{prefix}img_up_f", channels, channels)
    own_scale = None if shared else 2 ** len(levels)
    if scale is not None and own_scale is not None and scale != own_scale:
        raise UserError(f"--scale {scale} does not fit '{path.name}': its {len(levels)} pyramid level(s) make "
                        f"x{own_scale}; use --scale {own_scale}")
    if own_scale is None and scale is None:
        raise UserError(f"'{path.name}' is an MS-LapSRN model (one set of weights for x2, x4 and x8): give "
                        f"--scale 2, 4 or 8")
    net = {"_target_": "sr_lightning.nets.lapsrn.LapSRN", "scale": int(own_scale or scale), "in_channels": channels,
           "num_features": features, "depth": depth, "recursions": MS_RECURSIONS if shared else 0,
           "up_kernel": up_kernel}
    return Imported(net=net, state_dict=state, trained_scales=[2, 4, 8] if shared else [own_scale],
                    degradation={"source": "rgb_float", "border": "symmetric", "antialias": True},
                    source={"format": "lapsrn-mat", "file": path.name})
