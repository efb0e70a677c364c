"""MATLAB-exact bicubic ``imresize`` as per-axis weight matrices.

The resize of an ``(..., H, W)`` tensor is ``Wh @ x @ Ww^T`` where ``Wh`` (out_h x H) and
``Ww`` (out_w x W) hold MATLAB's bicubic contributions. That makes it exact (the same
weights MATLAB computes), batched, differentiable and device agnostic. The matrices are
banded, so each is applied as a chain of small dense blocks (:func:`bands`): the cost grows
linearly with the image side instead of quadratically.

MATLAB's algorithm (``imresize.m``, ``contributions``):

* Keys cubic kernel with ``a = -0.5``; when downscaling with antialiasing the kernel is
  stretched by ``1/scale`` (support ``4/scale`` input pixels).
* Output pixel ``x`` (1-based) samples input coordinate ``u = x/scale + 0.5*(1 - 1/scale)``;
  taps start at ``floor(u - width/2)`` and there are ``ceil(width) + 2`` of them; weights
  are normalised to sum 1 and all-zero tap columns are dropped.
* Out-of-range taps are clamped (older MATLAB, which made the standard benchmark LR
  files) or mirrored (newer MATLAB, ``border="symmetric"``).
* Separable, one axis at a time: the axis with the smaller scale first, height first
  when the scales are equal. ``uint8`` input is rounded half away from zero and
  saturated after each pass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from sr_lightning.ops.precision import full_precision

Border = Literal["clamp", "symmetric"]
BORDERS: tuple[str, ...] = ("clamp", "symmetric")


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=1024)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool,
                  border: str) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's bicubic contributions along one axis.

    Args:
        in_len: input length along the axis.
        out_len: output length along the axis.
        scale: the scale factor along the axis (out/in unless given explicitly).
        antialias: stretch the kernel when downscaling (MATLAB's ``Antialiasing``).
        border: ``"clamp"`` (replicate edge pixels) or ``"symmetric"`` (mirror).

    Returns:
        ``(weights, indices)``, both (out_len, taps): float64 weights whose rows sum to 1 and
        the 0-based input index of each tap (cached: do not modify them in place).
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * _cubic(scale * t)  # noqa: E731
        kernel_width = kernel_width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    idx = indices.astype(np.int64) - 1  # 0-based
    if border == "clamp":
        idx = np.clip(idx, 0, in_len - 1)
    elif border == "symmetric":
        period = 2 * in_len
        idx = np.mod(idx, period)
        idx = np.where(idx >= in_len, period - 1 - idx, idx)
    else:
        raise ValueError(f"imresize border={border!r} is not supported; use one of {BORDERS}")
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def weight_matrix(in_len: int, out_len: int, scale: float, antialias: bool, border: str) -> Tensor:
    """The dense (out_len, in_len) float64 matrix of :func:`contributions` (rows sum to 1)."""
    weights, idx = contributions(in_len, out_len, scale, antialias, border)
    return _dense(weights, idx, in_len)


def _dense(weights: np.ndarray, idx: np.ndarray, columns: int) -> Tensor:
    """The (rows, columns) float64 matrix with ``weights[r, k]`` added at ``(r, idx[r, k])``
    (clamped/mirrored taps may repeat an index)."""
    matrix = np.zeros((weights.shape[0], columns), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(weights.shape[0]), idx.shape[1]), idx.ravel()), weights.ravel())
    return torch.from_numpy(matrix)


# Input samples per band: a block of output samples reads about this many inputs.
_BAND_INPUTS = 64


@lru_cache(maxsize=256)  # about 1 MB per entry for a 2K image side
def bands(in_len: int, out_len: int, scale: float, antialias: bool, border: str) -> tuple[tuple[int, Tensor], ...]:
    """The weight matrix cut into bands: consecutive blocks of output samples, each with the
    one window of inputs that holds all their taps.

    Returns:
        ``((start, block), ...)`` in output order: ``block`` is the float64 (rows, window)
        part of :func:`weight_matrix` whose columns are inputs ``start .. start + window - 1``.
        A resize is then a few small dense products instead of one (out_len, in_len) one.
    """
    weights, idx = contributions(in_len, out_len, scale, antialias, border)
    rows = max(1, int(_BAND_INPUTS * scale))
    out = []
    for r0 in range(0, out_len, rows):
        w, i = weights[r0:r0 + rows], idx[r0:r0 + rows]
        start = int(i.min())
        out.append((start, _dense(w, i - start, int(i.max()) - start + 1)))
    return tuple(out)


def _resize_axis(x: Tensor, dim: int, blocks: tuple[tuple[int, Tensor], ...]) -> Tensor:
    """Resize ``x`` (..., H, W) along ``dim`` (-2 or -1) with :func:`bands`, in ``x``'s dtype."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    n_out = sum(block.shape[0] for _, block in blocks)
    if dim == -2:  # (N, H, W): each band is (rows, window) @ (N, window, W)
        src = x.reshape(-1, h, w)
        out = x.new_empty((src.shape[0], n_out, w))
    else:  # (N*H, W): each band is (N*H, window) @ (window, rows)
        src = x.reshape(-1, w)
        out = x.new_empty((src.shape[0], n_out))
    r0 = 0
    for start, block in blocks:
        block = block.to(device=x.device, dtype=x.dtype)
        rows, window = block.shape
        if dim == -2:
            out[:, r0:r0 + rows] = torch.matmul(block, src[:, start:start + window])
        else:
            out[:, r0:r0 + rows] = torch.matmul(src[:, start:start + window], block.T)
        r0 += rows
    return out.reshape(*lead, n_out, w) if dim == -2 else out.reshape(*lead, h, n_out)


def _output_size(in_hw: tuple[int, int], scale: float | tuple[float, float] | None,
                 size: tuple[int, int] | None) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of `scale` or `size`")
    if size is not None:
        out_h, out_w = (int(s) for s in size)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize size={tuple(size)} must be positive")
        return (out_h, out_w), (out_h / in_hw[0], out_w / in_hw[1])
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
    if sh <= 0 or sw <= 0:
        raise ValueError(f"imresize scale={scale} must be positive")
    # MATLAB: output size is ceil(input * scale); the given scale (not out/in) is used.
    return (math.ceil(in_hw[0] * sh), math.ceil(in_hw[1] * sw)), (float(sh), float(sw))


def _round_half_away(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def imresize(x: Tensor, scale: float | tuple[float, float] | None = None, *,
             size: tuple[int, int] | None = None, antialias: bool = True,
             border: Border = "clamp") -> Tensor:
    """Resize like MATLAB ``imresize(x, scale, 'bicubic')``.

    Args:
        x: tensor of shape (..., H, W): float (any range, typically [0, 1]) or uint8
            (values 0..255, rounded and saturated after each 1-D pass like MATLAB).
        scale: scale factor (or (scale_h, scale_w)); output size is ``ceil(H * scale)``.
        size: output (height, width) instead of ``scale``.
        antialias: antialias when downscaling (MATLAB's default).
        border: ``"clamp"`` (older MATLAB, the standard benchmark LR files) or
            ``"symmetric"`` (MATLAB R2017+).

    Returns:
        Tensor of shape (..., out_h, out_w), same dtype as ``x``. Float results are not
        clamped or rounded; uint8 results are.

    Example:
        >>> imresize(torch.rand(1, 3, 8, 8), 0.5).shape
        torch.Size([1, 3, 4, 4])
    """
    if x.dim() < 2:
        raise ValueError(f"imresize expects a tensor of shape (..., H, W), got shape {tuple(x.shape)}")
    if border not in BORDERS:
        raise ValueError(f"imresize border={border!r} is not supported; use one of {BORDERS}")
    is_uint8 = x.dtype == torch.uint8
    if not (is_uint8 or x.is_floating_point()):
        raise TypeError(f"imresize supports float and uint8 tensors, got {x.dtype}")
    in_hw = (x.shape[-2], x.shape[-1])
    (out_h, out_w), (sh, sw) = _output_size(in_hw, scale, size)
    # Exact arithmetic: uint8 and float64 in float64, other floats in at least float32.
    work = torch.float64 if is_uint8 or x.dtype == torch.float64 else torch.float32
    # While torch.compile/torch.export trace, tensors made here are the tracer's: never cache them.
    make_bands = bands.__wrapped__ if torch.compiler.is_compiling() else bands
    bh = make_bands(in_hw[0], out_h, sh, antialias, border)
    bw = make_bands(in_hw[1], out_w, sw, antialias, border)
    passes = [lambda t: _resize_axis(t, -2, bh), lambda t: _resize_axis(t, -1, bw)]
    if sw < sh:  # MATLAB: the dimension with the smaller scale first, height first on ties
        passes.reverse()
    with full_precision(x.device):
        out = x.to(work)
        for resize_axis in passes:
            out = resize_axis(out)
            if is_uint8:
                out = _round_half_away(out).clamp_(0, 255)
    return out.to(x.dtype)


class Imresize(nn.Module):
    """Module twin of :func:`imresize`: (..., H, W) -> (..., ceil(H*scale), ceil(W*scale))."""

    def __init__(self, scale: float, *, antialias: bool = True, border: Border = "clamp") -> None:
        super().__init__()
        self.scale, self.antialias, self.border = scale, antialias, border

    def forward(self, x: Tensor) -> Tensor:
        return imresize(x, self.scale, antialias=self.antialias, border=self.border)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, antialias={self.antialias}, border={self.border!r}"
