"""Making LR/HR pairs from HR images: modcrop, the colour space the degradation runs in,
MATLAB-bicubic downscaling, and an optional on-disk cache of the LR images."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sr_lightning.errors import UserError
from sr_lightning.files import UnreadableFileError, read_data, write_bytes_atomically
from sr_lightning.ops.color import rgb_to_y
from sr_lightning.ops.resize import BORDERS, imresize

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("y", "rgb_uint8", "rgb_float")


@dataclass(frozen=True)
class Degradation:
    """How LR is made from a uint8 HR image.

    Attributes:
        source: what is downscaled, and how.
            ``"y"``: the HR's BT.601 Y rounded to uint8 (MATLAB ``rgb2ycbcr`` of the uint8
            image; a grayscale image is its own Y), downscaled in float64. The SRCNN/VDSR
            test code; Y networks only. The HR target is that uint8 Y.
            ``"rgb_uint8"``: the uint8 RGB HR with MATLAB's uint8 semantics (rounding after
            each pass): the standard benchmark LR files, bit-exactly with ``border="clamp"``.
            ``"rgb_float"``: the RGB HR in float64, LR unrounded.
        border: ``"clamp"`` (older MATLAB, the benchmark LR files) or ``"symmetric"``
            (newer MATLAB; the published Y-channel tables).
        antialias: MATLAB's antialiasing when downscaling.
    """

    source: str = "y"
    border: str = "symmetric"
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"data.degradation.source={self.source!r} is not one of {SOURCES}")
        if self.border not in BORDERS:
            raise UserError(f"data.degradation.border={self.border!r} is not one of {BORDERS}")


# data/degradation=benchmark_lr: the standard benchmark LR files, bit-exactly (RGB networks' setting).
BENCHMARK_LR = Degradation(source="rgb_uint8", border="clamp")


def modcrop(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so H and W are multiples of ``scale``; (H, W, C) -> (H', W', C)."""
    h, w = pixels.shape[:2]
    return pixels[: h - h % scale, : w - w % scale]


def degradation_input(hr: np.ndarray, degradation: Degradation) -> Tensor:
    """The image the degradation downscales, which is also the HR target's source.

    Args:
        hr: uint8 (H, W, C), C = 1 (grayscale) or 3.

    Returns:
        uint8 (C', H, W): the RGB/gray image, or for ``source="y"`` its uint8 Y (C' = 1).
    """
    x = torch.from_numpy(np.array(hr)).permute(2, 0, 1).contiguous()
    if degradation.source == "y" and x.shape[0] == 3:
        y = rgb_to_y(x.to(torch.float64) / 255.0)
        x = torch.floor(y * 255.0 + 0.5).to(torch.uint8)  # MATLAB rounds half away from zero
    return x


def downscale(x: Tensor, scale: int, degradation: Degradation) -> Tensor:
    """uint8 (C, H, W) -> (C, H/s, W/s) LR: uint8 for ``source="rgb_uint8"``, else float64 in [0, 1]."""
    if degradation.source != "rgb_uint8":
        x = x.to(torch.float64) / 255.0
    return imresize(x, 1.0 / scale, antialias=degradation.antialias, border=degradation.border)


def _cache_key(x: Tensor, scale: int, degradation: Degradation) -> str:
    h = hashlib.sha256()
    h.update(x.numpy().tobytes())
    h.update(json.dumps({"shape": list(x.shape), "scale": scale, **asdict(degradation)}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _read_cached(path: Path, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """A cache entry as data (``weights_only``: nothing is unpickled), or None (with a warning)
    when it is unreadable or not the tensor this image makes, so it is made again."""
    try:
        lr = read_data(path)
    except UnreadableFileError as err:
        log.warning("LR cache entry %s is unreadable (%s); making it again", path, err)
        return None
    if not isinstance(lr, Tensor) or tuple(lr.shape) != shape or lr.dtype != dtype:
        log.warning("LR cache entry %s is not a %s %s tensor; making it again", path, dtype, shape)
        return None
    return lr


def make_lr(x: Tensor, scale: int, degradation: Degradation, cache_dir: str | Path | None = None) -> Tensor:
    """:func:`downscale` of a modcropped uint8 (C, H, W) image (float LR as float32), read
    from/written to ``cache_dir`` when given.

    The cache key hashes the pixels, the scale and the degradation, so a change to any
    of them makes a new entry. Entries are read as data (``weights_only``) and checked;
    a damaged or foreign one is made again and replaced.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{_cache_key(x, scale, degradation)}.pt"
        if path.is_file():
            cached = _read_cached(path, (x.shape[0], x.shape[1] // scale, x.shape[2] // scale),
                                  torch.uint8 if degradation.source == "rgb_uint8" else torch.float32)
            if cached is not None:
                return cached
    lr = downscale(x, scale, degradation)
    if lr.is_floating_point():  # what the datasets keep; half the disk and memory of float64
        lr = lr.to(torch.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Each writer has a temporary file of its own: DDP ranks and data workers may make the
        # same entry at once; a full disk leaves none.
        buffer = io.BytesIO()
        torch.save(lr, buffer)
        write_bytes_atomically(path, buffer.getbuffer())
    return lr


def to_channels(x: Tensor, channels: int) -> Tensor:
    """(C, H, W) uint8 or float -> float32 (channels, H, W) in [0, 1].

    ``channels=1`` takes BT.601 Y of RGB (a grayscale image is its own Y); ``channels=3``
    repeats a grayscale image into RGB.
    """
    x = x.to(torch.float64) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float64)
    if channels == 1 and x.shape[0] == 3:
        x = rgb_to_y(x)
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.to(torch.float32).contiguous()
