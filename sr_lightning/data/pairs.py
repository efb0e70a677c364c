"""Making LR/HR pairs from HR images: modcrop, MATLAB-bicubic downscale, channel choice,
and an optional on-disk cache of the LR images."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sr_lightning.ops.color import rgb_to_y
from sr_lightning.ops.resize import BORDERS, imresize


@dataclass(frozen=True)
class Degradation:
    """How LR is made from HR (defaults: the standard benchmark LR files).

    Attributes:
        uint8: downscale the uint8 HR with MATLAB's uint8 semantics (rounding after each
            pass; LR is uint8), else a float pipeline (LR unrounded).
        border: ``"clamp"`` (older MATLAB, the benchmark files) or ``"symmetric"``.
        antialias: MATLAB's antialiasing when downscaling.
    """

    uint8: bool = True
    border: str = "clamp"
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.border not in BORDERS:
            raise ValueError(f"data.degradation.border={self.border!r} is not one of {BORDERS}")


def modcrop(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so H and W are multiples of ``scale``; (H, W, C) -> (H', W', C)."""
    h, w = pixels.shape[:2]
    return pixels[: h - h % scale, : w - w % scale]


def downscale(hr: Tensor, scale: int, degradation: Degradation) -> Tensor:
    """(C, H, W) uint8 HR -> (C, H/s, W/s) LR: uint8 if ``degradation.uint8``, else float in [0, 1]."""
    x = hr if degradation.uint8 else hr.to(torch.float64) / 255.0
    return imresize(x, 1.0 / scale, antialias=degradation.antialias, border=degradation.border)


def _cache_key(hr: np.ndarray, scale: int, degradation: Degradation) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(hr).tobytes())
    h.update(json.dumps({"shape": hr.shape, "scale": scale, **asdict(degradation)}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def make_lr(hr: np.ndarray, scale: int, degradation: Degradation, cache_dir: str | Path | None = None) -> Tensor:
    """LR for a modcropped uint8 (H, W, C) HR, read from/written to ``cache_dir`` when given.

    The cache key hashes the HR pixels, the scale and the degradation, so a change to any
    of them makes a new entry.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{_cache_key(hr, scale, degradation)}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
    lr = downscale(torch.from_numpy(np.array(hr)).permute(2, 0, 1).contiguous(), scale, degradation)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(lr, tmp)
        tmp.replace(path)
    return lr


def to_channels(x: Tensor, channels: int) -> Tensor:
    """(C, H, W) uint8 or float -> float32 (channels, H, W) in [0, 1].

    ``channels=1`` takes BT.601 Y of RGB (a grayscale image is its own Y); ``channels=3``
    repeats a grayscale image into RGB.
    """
    x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    if channels == 1:
        return rgb_to_y(x) if x.shape[0] == 3 else x
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x
