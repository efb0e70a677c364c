"""PSNR/SSIM/GMSD as functions (per image) and as torchmetrics ``Metric`` twins (mean over images)."""

from sr_lightning.metrics.functional import gmsd, psnr, quantize, ssim
from sr_lightning.metrics.modules import GMSD, PSNR, SSIM

__all__ = ["GMSD", "PSNR", "SSIM", "gmsd", "psnr", "quantize", "ssim"]
