"""SRCNN's released MATLAB models (Dong et al.): ``weights_conv{1,2,3}``, ``biases_conv{1,2,3}``.

Layout (the authors' ``SRCNN.m`` reads it so): ``weights_conv1`` (f1*f1, n1),
``weights_conv2`` (n1, f2*f2, n2) (or (n1, n2) for f2 = 1), ``weights_conv3`` (n2, f3*f3),
each filter a column-major (MATLAB) f x f block applied by ``imfilter`` (correlation,
'same' size, replicated borders). Any kernel sizes and widths (9-5-5, 9-3-5, 9-1-5, ...)
are read from the shapes. The models are per scale and for one channel (Y).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sr_lightning.convert.imported import Imported
from sr_lightning.convert.mat import describe, read_mat, scale_in_name
from sr_lightning.errors import UserError, WeightFormatError

KEYS = ("weights_conv1", "biases_conv1", "weights_conv2", "biases_conv2", "weights_conv3", "biases_conv3")
EXPECTED = ("weights_conv1 (f1*f1, n1), biases_conv1 (n1, 1), weights_conv2 (n1, f2*f2, n2), biases_conv2 (n2, 1), "
            "weights_conv3 (n2, f3*f3), biases_conv3 (1, 1)")


def _side(n: int, what: str, path: Path, found: str) -> int:
    f = int(round(np.sqrt(n)))
    if f * f != n or f % 2 == 0:
        raise WeightFormatError(f"'{path}': {what} has {n} taps per filter, not the square of an odd kernel size; "
                                f"found {found}; expected {EXPECTED}")
    return f


def _filters(blocks: np.ndarray, f: int) -> torch.Tensor:
    """(..., f*f) column-major filters -> (..., f, f) row-major, float32."""
    return torch.from_numpy(np.ascontiguousarray(np.swapaxes(blocks.reshape(*blocks.shape[:-1], f, f), -1, -2)))\
        .float()


def load(path: str | Path, scale: int | None) -> Imported:
    """Read a released SRCNN .mat; ``scale`` must agree with the file name when it states one."""
    path = Path(path).expanduser()
    v = read_mat(path)
    found = describe(v)
    missing = [k for k in KEYS if k not in v]
    if missing:
        raise WeightFormatError(f"'{path}' is not an SRCNN MATLAB model: {', '.join(missing)} missing; "
                                f"found {found}; expected {EXPECTED}")
    w1, w2, w3 = (np.asarray(v[k], dtype=np.float64) for k in ("weights_conv1", "weights_conv2", "weights_conv3"))
    b1, b2, b3 = (np.asarray(v[k], dtype=np.float64).reshape(-1) for k in ("biases_conv1", "biases_conv2",
                                                                             "biases_conv3"))
    if w2.ndim == 2:  # a 1x1 middle layer saved as (n1, n2)
        w2 = w2[:, None, :]
    if w1.ndim != 2 or w2.ndim != 3 or w3.ndim != 2:
        raise WeightFormatError(f"'{path}': unexpected weight ranks; found {found}; expected {EXPECTED}")
    (t1, n1), (n1b, t2, n2), (n2b, t3) = w1.shape, w2.shape, w3.shape
    f1, f2, f3 = _side(t1, "weights_conv1", path, found), _side(t2, "weights_conv2", path, found), \
        _side(t3, "weights_conv3", path, found)
    if n1b != n1 or n2b != n2 or b1.size != n1 or b2.size != n2 or b3.size != 1:
        raise WeightFormatError(f"'{path}': the layer shapes do not chain (n1={n1}, n2={n2}); found {found}; "
                                f"expected {EXPECTED}")
    stated = scale_in_name(path)
    if scale is None and stated is None:
        raise UserError(f"'{path}' does not say its scale (SRCNN models are per scale): pass --scale")
    if scale is not None and stated is not None and scale != stated:
        raise UserError(f"--scale {scale}: '{path.name}' is the x{stated} SRCNN model (SRCNN weights are trained per "
                         f"scale); convert the x{scale} file, or use --scale {stated}")
    scale = stated if scale is None else scale
    weights = [
        (_filters(w1.T, f1)[:, None], torch.from_numpy(b1).float()),          # (n1, 1, f1, f1)
        (_filters(np.transpose(w2, (2, 0, 1)), f2), torch.from_numpy(b2).float()),  # (n2, n1, f2, f2)
        (_filters(w3, f3)[None], torch.from_numpy(b3).float()),               # (1, n2, f3, f3)
    ]
    net = {"_target_": "sr_lightning.nets.srcnn.SRCNN", "scale": int(scale), "in_channels": 1,
           "kernel_sizes": [f1, f2, f3], "num_features": [n1, n2], "padding_mode": "replicate",
           "upsample_border": "symmetric"}
    return Imported(net=net, weights=weights, trained_scales=[int(scale)] if stated else None,
                    source={"format": "srcnn-mat", "file": path.name, "variant": f"{f1}-{f2}-{f3}"})
