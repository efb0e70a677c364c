"""Per-image PSNR and SSIM following the SR literature's protocol.

Both take SR and HR as float tensors of shape (N, C, H, W) with values in [0, 1] and C = 1
or 3, and return a float64 tensor of shape (N,), one value per image:

* ``y_channel=True``: RGB is converted to MATLAB's BT.601 Y; C = 1 is taken as Y already.
  Images flagged in ``gray`` (grayscale sources, "their own Y") are compared on BT.601
  full-range luma instead, which is the gray value itself for the HR's equal channels.
  ``y_channel=False`` uses all channels as given.
* Values are scaled to [0, 255]; ``crop_border`` pixels are shaved from every side.
* PSNR = 10 log10(255^2 / MSE) in float64.
* SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  L = 255, 'valid' filtering (no padding), mean of the SSIM map, channels averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sr_lightning.ops.color import rgb_to_luma, rgb_to_y


def _to_y(x: Tensor, gray: Tensor | None) -> Tensor:
    """Y of (N, 3, H, W) RGB, luma for the images flagged ``gray`` (no host sync: GPU-friendly)."""
    y = rgb_to_y(x)
    return y if gray is None else torch.where(gray.view(-1, 1, 1, 1), rgb_to_luma(x), y)


def _prepare(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool,
             gray: Tensor | None) -> tuple[Tensor, Tensor]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() != 4 or sr.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, C, H, W) with C = 1 or 3, got {tuple(sr.shape)}")
    if crop_border < 0 or 2 * crop_border >= min(sr.shape[-2:]):
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {tuple(sr.shape[-2:])} image")
    sr, hr = sr.to(torch.float64), hr.to(torch.float64)
    if gray is not None:
        gray = torch.as_tensor(gray, dtype=torch.bool, device=sr.device).reshape(-1)
        if gray.numel() != sr.shape[0]:
            raise ValueError(f"gray has {gray.numel()} flags for {sr.shape[0]} images")
    if y_channel and sr.shape[1] == 3:
        sr, hr = _to_y(sr, gray), _to_y(hr, gray)
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    return sr * 255.0, hr * 255.0


def psnr(sr: Tensor, hr: Tensor, *, crop_border: int, y_channel: bool = True,
         gray: Tensor | None = None) -> Tensor:
    """Per-image PSNR in dB (float64, shape (N,)); identical images give ``inf``.

    Args:
        sr: super-resolved images, (N, C, H, W) float in [0, 1].
        hr: ground truth, same shape.
        crop_border: pixels shaved from each border before the metric (usually the scale).
        y_channel: evaluate on BT.601 Y (C = 1 is taken as Y already).
        gray: (N,) bool, True for images whose source is grayscale (compared on luma).

    An error of one grey level everywhere is 20 log10(255) dB; the shaved border is not scored:

    >>> hr = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    >>> sr = hr + 1 / 255
    >>> round(float(psnr(sr, hr, crop_border=2)), 4)
    48.1308
    >>> sr[..., 0, :] = 0.0  # damage the first row only
    >>> round(float(psnr(sr, hr, crop_border=2)), 4)
    48.1308
    """
    sr, hr = _prepare(sr, hr, crop_border, y_channel, gray)
    mse = (sr - hr).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(sr: Tensor, hr: Tensor, *, crop_border: int, y_channel: bool = True,
         gray: Tensor | None = None) -> Tensor:
    """Per-image SSIM (Wang et al.), float64, shape (N,).

    Args:
        sr: super-resolved images, (N, C, H, W) float in [0, 1].
        hr: ground truth, same shape.
        crop_border: pixels shaved from each border before the metric.
        y_channel: evaluate on BT.601 Y (C = 1 is taken as Y already).
        gray: (N,) bool, True for images whose source is grayscale (compared on luma).

    >>> hr = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> ssim(hr, hr, crop_border=2).tolist()
    [1.0]
    >>> bool(ssim(1 - hr, hr, crop_border=2) < -0.9)  # the negative: same contrast, structure reversed
    True
    """
    sr, hr = _prepare(sr, hr, crop_border, y_channel, gray)
    if min(sr.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the crop, got {tuple(sr.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n, c, h, w = sr.shape
    g = _gaussian_window().to(sr.device)

    def filt(t: Tensor) -> Tensor:  # separable 'valid' Gaussian filtering per channel
        t = t.reshape(n * c, 1, t.shape[-2], t.shape[-1])
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    mu1, mu2 = filt(sr), filt(hr)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(sr * sr) - mu1_sq
    s2 = filt(hr * hr) - mu2_sq
    s12 = filt(sr * hr) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return ssim_map.reshape(n, c, -1).mean(dim=(1, 2))


def gmsd(sr: Tensor, hr: Tensor, *, crop_border: int, y_channel: bool = True,
         gray: Tensor | None = None) -> Tensor:
    """Per-image gradient magnitude similarity deviation (Xue et al., TIP 2014), float64,
    shape (N,); 0 for identical images, higher is worse.

    A full-reference perceptual-quality proxy with no learned weights (nothing to
    download): both images (on [0, 255]) are 2x2-averaged and halved, Prewitt gradient
    magnitudes m ('valid' filtering; the authors' code pads with zeros) are compared by
    ``(2 m1 m2 + c) / (m1^2 + m2^2 + c)`` with c = 170, and the standard deviation of that
    map is returned (channels averaged). Blur and ringing raise it; the authors report it
    tracks human quality ratings better than PSNR/SSIM.

    >>> hr = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> gmsd(hr, hr, crop_border=0).tolist()
    [0.0]
    >>> blurred = (hr + hr.roll(1, -1) + hr.roll(-1, -1)) / 3
    >>> bool(gmsd(blurred, hr, crop_border=0) > 0.05)
    True
    """
    sr, hr = _prepare(sr, hr, crop_border, y_channel, gray)
    n, c, h, w = sr.shape
    if min(h, w) < 6:
        raise ValueError(f"GMSD needs at least 6x6 pixels after the crop, got {(h, w)}")
    prewitt = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=torch.float64, device=sr.device) / 3.0
    kernels = torch.stack([prewitt, prewitt.T]).unsqueeze(1)  # (2, 1, 3, 3): x and y

    def magnitude(t: Tensor) -> Tensor:
        t = F.avg_pool2d(t.reshape(n * c, 1, h, w), 2)
        g = F.conv2d(t, kernels)
        return g.pow(2).sum(dim=1).sqrt()

    m1, m2 = magnitude(sr), magnitude(hr)
    gms = (2 * m1 * m2 + 170.0) / (m1 * m1 + m2 * m2 + 170.0)
    return gms.reshape(n, c, -1).std(dim=-1, unbiased=False).mean(dim=1)


def quantize(x: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the uint8 grid, half away from zero like MATLAB's
    ``uint8()`` (``torch.round`` would round half to even); same dtype.

    >>> (quantize(torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, -0.2, 1.3])) * 255).round().tolist()
    [1.0, 2.0, 3.0, 0.0, 255.0]
    """
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


__all__ = ["gmsd", "psnr", "quantize", "ssim"]
