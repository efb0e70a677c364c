"""``torchmetrics.Metric`` twins of the functional PSNR/SSIM.

Each accumulates the sum of per-image values and the image count (float64 states,
summed across DDP processes), so ``compute()`` is the mean over images as in the papers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from sr_lightning.metrics.functional import gmsd, psnr, ssim


class _PerImageMean(Metric):
    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, fn: Callable[..., Tensor], *, crop_border: int, y_channel: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self._fn, self.crop_border, self.y_channel = fn, crop_border, y_channel
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, sr: Tensor, hr: Tensor, gray: Tensor | None = None) -> None:
        """Add the per-image values of a batch: (N, C, H, W) float in [0, 1]; ``gray`` (N,)
        bool flags grayscale source images (see :func:`sr_lightning.metrics.psnr`)."""
        values = self._fn(sr, hr, crop_border=self.crop_border, y_channel=self.y_channel, gray=gray)
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        """Mean over all images seen (float64 scalar)."""
        return self.total / self.count


class PSNR(_PerImageMean):
    """Mean per-image PSNR (dB); see :func:`sr_lightning.metrics.psnr`."""

    def __init__(self, *, crop_border: int, y_channel: bool = True, **kwargs) -> None:
        super().__init__(psnr, crop_border=crop_border, y_channel=y_channel, **kwargs)


class SSIM(_PerImageMean):
    """Mean per-image SSIM; see :func:`sr_lightning.metrics.ssim`."""

    def __init__(self, *, crop_border: int, y_channel: bool = True, **kwargs) -> None:
        super().__init__(ssim, crop_border=crop_border, y_channel=y_channel, **kwargs)


class GMSD(_PerImageMean):
    """Mean per-image GMSD (lower is better); see :func:`sr_lightning.metrics.gmsd`."""

    higher_is_better = False

    def __init__(self, *, crop_border: int, y_channel: bool = True, **kwargs) -> None:
        super().__init__(gmsd, crop_border=crop_border, y_channel=y_channel, **kwargs)
