"""Loading tensors from a user's file without unpickling code, with errors that name the option."""

from __future__ import annotations

import re
import warnings
import zipfile
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
    if path.stat().st_size == 0:
        raise UserError(f"{key}='{path}' is empty (0 bytes: an interrupted copy or save?); give {expected}")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols says nothing to the user
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a non-checkpoint file
        raise UserError(f"{key}='{path}' is not a readable checkpoint ({why_unreadable(path, err)}); "
                         f"give {expected}") from None


def why_unreadable(path: Path, err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in a few words."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        return "not a PyTorch file: neither a torch.save zip archive nor a pickle"
    text = str(err)
    if "Weights only load failed" in text:
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({unsupported.group(1)})" if unsupported else ""
        return (f"it holds Python objects{what} besides tensors and plain containers, which sr_lightning never "
                f"unpickles (they can run code); a damaged file reads so too")
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else 'no message'}"
