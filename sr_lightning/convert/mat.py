"""Reading MATLAB .mat files safely (scipy.io; no pickle), with errors that name the file."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sr_lightning.errors import WeightFormatError


def read_mat(path: str | Path) -> dict[str, Any]:
    """The variables of a MATLAB v4-v7.2 .mat file (``__header__`` etc. dropped).

    Raises:
        FileNotFoundError: no such file.
        WeightFormatError: not a MAT file, or a v7.3 (HDF5) one.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    with open(path, "rb") as f:
        head = f.read(128)
    if zipfile.is_zipfile(path):
        raise WeightFormatError(f"'{path}' is a zip archive (a PyTorch torch.save file?), not a MATLAB .mat file; "
                                f"for a PyTorch state dict use --format pth --net NAME")
    if head[:1] == b"\x80":
        raise WeightFormatError(f"'{path}' is a Python pickle, not a MATLAB .mat file; sr_lightning never unpickles "
                                f"files (for a PyTorch state dict use --format pth --net NAME)")
    try:
        data = loadmat(str(path))
    except NotImplementedError:  # scipy's answer to v7.3 files
        raise WeightFormatError(f"'{path}' is a MATLAB v7.3 (HDF5) file, which is not supported; re-save it in "
                                f"MATLAB with save(name, '-struct', ..., '-v7')") from None
    except (MatReadError, ValueError, TypeError, OSError, IndexError, KeyError, EOFError) as err:  # garbage
        raise WeightFormatError(f"'{path}' is not a readable MATLAB .mat file ({err})") from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


def describe(variables: dict[str, Any]) -> str:
    """``name (shape), ...`` of a file's variables, for error messages."""
    items = [f"{k} {tuple(np.shape(v))}" for k, v in sorted(variables.items())]
    return ", ".join(items) or "no variables"


def scale_in_name(path: str | Path) -> int | None:
    """The scale a file's name states (``x3.mat``, ``srcnn_x3.mat``, ``.../x3/model.mat``), or None."""
    hits = re.findall(r"(?:^|[^a-z0-9])x(\d+)(?:$|[^0-9])", str(Path(path)).lower())
    return int(hits[-1]) if hits else None
