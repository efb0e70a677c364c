"""The registry of importable weight formats: ``--format`` name -> ``load(path, scale)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sr_lightning.convert import srcnn_mat, vdsr_mat
from sr_lightning.convert.imported import Imported

FORMATS: dict[str, Callable[[str | Path, int | None], Imported]] = {
    "srcnn-mat": srcnn_mat.load,
    "vdsr-mat": vdsr_mat.load,
}
