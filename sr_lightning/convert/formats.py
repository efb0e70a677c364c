"""The registry of importable weight formats: ``--format`` name -> reader.

MATLAB releases imply their network (``load(path, scale)``); a PyTorch release is read for
the model config ``--net`` names (``load(path, scale, net)``: :data:`NEEDS_NET`).
"""

from __future__ import annotations

from collections.abc import Callable

from sr_lightning.convert import lapsrn_mat, release, srcnn_mat, vdsr_mat
from sr_lightning.convert.imported import Imported

FORMATS: dict[str, Callable[..., Imported]] = {
    "srcnn-mat": srcnn_mat.load,
    "vdsr-mat": vdsr_mat.load,
    "lapsrn-mat": lapsrn_mat.load,
    "pth": release.load,
}
NEEDS_NET = ("pth",)
