"""PSNR/SSIM as functions (per image) and as torchmetrics ``Metric`` twins (mean over images)."""

from sr_lightning.metrics.functional import psnr, quantize, ssim
from sr_lightning.metrics.modules import PSNR, SSIM

__all__ = ["PSNR", "SSIM", "psnr", "quantize", "ssim"]
