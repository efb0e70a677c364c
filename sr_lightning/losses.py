"""Pixel losses beyond torch's own (L1 and MSE come from ``torch.nn``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CharbonnierLoss(nn.Module):
    """Charbonnier (smooth L1): mean of sqrt((sr - hr)^2 + eps^2) (Lai et al. 2017, LapSRN)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return torch.sqrt((sr - hr).pow(2) + self.eps**2).mean()
