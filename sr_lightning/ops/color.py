"""MATLAB ``rgb2ycbcr``/``ycbcr2rgb`` (ITU-R BT.601, studio swing) for float images,
and BT.601 full-range luma for grayscale comparisons.

All functions take and return float tensors of shape (..., 3, H, W) (or (..., 1, H, W)
for :func:`rgb_to_y`) with values in [0, 1]: Y in [16/255, 235/255], Cb/Cr in
[16/255, 240/255], as MATLAB returns for double input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sr_lightning.ops.resize import Border, imresize

# Rows: Y, Cb, Cr; columns: R, G, B (for R, G, B in [0, 1], output in [0, 255]).
_RGB_TO_YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
_OFFSET = (16.0, 128.0, 128.0)


def _check_rgb(x: Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} expects shape (..., 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a float tensor in [0, 1], got {x.dtype}")


def _matrix(x: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    m = torch.tensor(_RGB_TO_YCBCR, dtype=dtype, device=x.device) / 255.0
    off = torch.tensor(_OFFSET, dtype=dtype, device=x.device) / 255.0
    return m, off


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> YCbCr (..., 3, H, W) in [0, 1] (MATLAB ``rgb2ycbcr``).

    White and black land on the studio-range ends (235 and 16 of 255); chroma of gray is 128:

    >>> (rgb_to_ycbcr(torch.ones(3, 1, 1)).flatten() * 255).round(decimals=3).tolist()
    [235.0, 128.0, 128.0]
    >>> (rgb_to_ycbcr(torch.zeros(3, 1, 1)).flatten() * 255).round(decimals=3).tolist()
    [16.0, 128.0, 128.0]"""
    _check_rgb(rgb, "rgb_to_ycbcr")
    m, off = _matrix(rgb)
    out = torch.einsum("ij,...jhw->...ihw", m, rgb.to(m.dtype)) + off[:, None, None]
    return out.to(rgb.dtype)


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """YCbCr (..., 3, H, W) in [0, 1] -> RGB (..., 3, H, W) (MATLAB ``ycbcr2rgb``), unclamped.

    >>> x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    >>> bool(torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x))
    True"""
    _check_rgb(ycbcr, "ycbcr_to_rgb")
    m, off = _matrix(ycbcr)
    inv = torch.linalg.inv(m)
    out = torch.einsum("ij,...jhw->...ihw", inv, ycbcr.to(m.dtype) - off[:, None, None])
    return out.to(ycbcr.dtype)


def colour_of(y: Tensor, lr_rgb: Tensor, border: Border = "clamp") -> Tensor:
    """An upscaled Y (..., 1, sH, sW) in [0, 1] as RGB (..., 3, sH, sW), unclamped: with the
    chroma (Cb, Cr) of the LR colour image (..., 3, H, W) upscaled by MATLAB bicubic, as the
    Y networks' authors show (and LapSRN's test code scores) their results.

    >>> lr = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    >>> colour_of(rgb_to_y(lr), lr).sub(lr).abs().max() < 1e-12  # at scale 1, the image itself
    tensor(True)"""
    scale = y.shape[-1] / lr_rgb.shape[-1]
    chroma = imresize(rgb_to_ycbcr(lr_rgb)[..., 1:, :, :], scale, border=border)
    return ycbcr_to_rgb(torch.cat([y.to(chroma.dtype), chroma], dim=-3))


def rgb_to_y(rgb: Tensor) -> Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> Y (..., 1, H, W) in [16/255, 235/255].

    >>> y = rgb_to_y(torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1))  # pure red: 16 + 65.481
    >>> y.shape, round(float(y) * 255, 3)
    (torch.Size([1, 1, 1]), 81.481)"""
    _check_rgb(rgb, "rgb_to_y")
    m, off = _matrix(rgb)
    y = torch.einsum("j,...jhw->...hw", m[0], rgb.to(m.dtype)) + off[0]
    return y.unsqueeze(-3).to(rgb.dtype)


# BT.601 luma weights (sum 1): MATLAB ``rgb2gray`` up to its 4-digit rounding.
_LUMA = (0.299, 0.587, 0.114)


def rgb_to_luma(rgb: Tensor) -> Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> full-range luma (..., 1, H, W) in [0, 1].

    An image with three equal channels maps to that channel (to rounding error): this is
    how a colour network's output for a grayscale image is compared with its gray values.

    >>> round(float(rgb_to_luma(torch.full((3, 1, 1), 0.25))), 6)
    0.25
    """
    _check_rgb(rgb, "rgb_to_luma")
    w = torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("j,...jhw->...hw", w, rgb).unsqueeze(-3)
