"""VDSR's released model converted to MatConvNet (Kim et al.): a struct ``model`` with cell
arrays ``weight{1..L}`` (3, 3, C_in, C_out) and ``bias{1..L}`` (C_out, 1).

MatConvNet filters are (H, W, C_in, C_out) and applied by correlation with zero padding;
the network adds its output to the bicubic-upscaled Y input. One model serves x2, x3 and
x4 (trained on all three, as the paper describes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sr_lightning.convert.imported import Imported
from sr_lightning.convert.mat import describe, read_mat
from sr_lightning.errors import UserError, WeightFormatError

TRAINED_SCALES = [2, 3, 4]
EXPECTED = "a struct `model` with cells weight{1..L} (3, 3, C_in, C_out) and bias{1..L} (C_out, 1), C_in = 1 first"


def _cells(model: np.ndarray, name: str, path: Path) -> list[np.ndarray]:
    try:
        cells = model[name][0, 0]
    except (KeyError, ValueError, IndexError, TypeError):
        raise WeightFormatError(f"'{path}': `model` has no `{name}` cell array; expected {EXPECTED}") from None
    return [np.asarray(c, dtype=np.float64) for c in np.asarray(cells).reshape(-1)]


def load(path: str | Path, scale: int | None) -> Imported:
    """Read the MatConvNet VDSR model; ``scale`` must be one of x2/x3/x4."""
    path = Path(path).expanduser()
    v = read_mat(path)
    model = v.get("model")
    if not isinstance(model, np.ndarray) or model.dtype.names is None:
        raise WeightFormatError(f"'{path}' is not a VDSR MatConvNet model: found {describe(v)}; expected {EXPECTED}")
    ws, bs = _cells(model, "weight", path), _cells(model, "bias", path)
    if len(ws) != len(bs) or len(ws) < 2:
        raise WeightFormatError(f"'{path}': {len(ws)} weight and {len(bs)} bias cells; expected {EXPECTED}")
    ws = [w[..., None] if w.ndim == 3 else w for w in ws]  # MATLAB drops the last layer's C_out = 1
    width = ws[0].shape[-1]
    for i, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        c_in = 1 if i == 1 else width
        c_out = 1 if i == len(ws) else width
        if w.shape != (3, 3, c_in, c_out) or b.size != c_out:
            raise WeightFormatError(f"'{path}': layer {i} has weight {w.shape} and bias {b.shape}; expected weight "
                                    f"{(3, 3, c_in, c_out)} and bias ({c_out}, 1) ({EXPECTED})")
    if scale is None:
        raise UserError(f"--scale is required for vdsr-mat (the model serves {TRAINED_SCALES}): it sets the scale "
                         f"the checkpoint evaluates at by default")
    if scale not in TRAINED_SCALES:
        raise UserError(f"--scale {scale}: the VDSR model was trained for x2, x3 and x4 only; use one of them")
    weights = [(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).float(),
                torch.from_numpy(b.reshape(-1)).float()) for w, b in zip(ws, bs, strict=True)]
    net = {"_target_": "sr_lightning.nets.vdsr.VDSR", "scale": int(scale), "in_channels": 1,
           "num_features": int(width), "num_layers": len(ws), "upsample_border": "symmetric"}
    return Imported(net=net, weights=weights, trained_scales=list(TRAINED_SCALES),
                    source={"format": "vdsr-mat", "file": path.name})
