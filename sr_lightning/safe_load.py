"""Loading tensors from a user's file without unpickling code, with errors that name the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sr_lightning.errors import UserError


def load_tensors(path: str | Path, key: str, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU.

    Args:
        path: the file.
        key: the config option it came from, named in errors (``ckpt_path``).
        expected: what the file should be, for the messages ("a .ckpt written by ...").

    Raises:
        FileNotFoundError: no such file.
        ValueError: torch cannot read it as tensors (not a checkpoint, or it needs pickled code).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}='{path}' does not exist; give {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a non-checkpoint file
        raise UserError(f"{key}='{path}' is not a readable checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''}); give {expected}") from None
