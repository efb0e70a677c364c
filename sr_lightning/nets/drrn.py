"""DRRN: Tai, Yang, Liu, "Image Super-Resolution via Deep Recursive Residual Network", CVPR 2017.

A residual to the MATLAB-bicubic upscale of the input (Y). ``num_blocks`` recursive blocks: an
entry convolution to 128 features, then ``num_units`` residual units that share one pair of 3x3
convolutions (the recursion), each unit's output added to the block's entry features. Every
convolution is pre-activated: batch normalisation (its own per unit, as in the authors' Caffe
model, where only the convolutions are shared), ReLU, convolution; the first one normalises the
input image itself. A last pre-activated convolution makes the residual image.

Defaults: DRRN B1U25 (52 convolution layers), the paper's best: 297,216 convolution weights,
the paper's 297K (biases and the normalisations' affine parameters, 13,443 more, not counted
there). One model serves every scale (trained on x2, x3 and x4 together, as VDSR).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.release_format import indices, shape


class PreActivated(nn.Module):
    """Batch normalisation, ReLU, then ``conv`` (shared between units when given one)."""

    def __init__(self, channels: int, conv: nn.Conv2d) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.relu(self.norm(x)))


class RecursiveBlock(nn.Module):
    """An entry convolution and ``units`` residual units of one shared convolution pair,
    (N, C_in, H, W) -> (N, F, H, W)."""

    def __init__(self, cin: int, features: int, units: int) -> None:
        super().__init__()
        self.entry = PreActivated(cin, nn.Conv2d(cin, features, 3, padding=1))
        self.conv_a = nn.Conv2d(features, features, 3, padding=1)
        self.conv_b = nn.Conv2d(features, features, 3, padding=1)
        self.norms_a = nn.ModuleList(nn.BatchNorm2d(features) for _ in range(units))
        self.norms_b = nn.ModuleList(nn.BatchNorm2d(features) for _ in range(units))

    def forward(self, x: Tensor) -> Tensor:
        entry = h = self.entry(x)
        for norm_a, norm_b in zip(self.norms_a, self.norms_b, strict=True):
            h = self.conv_b(F.relu(norm_b(self.conv_a(F.relu(norm_a(h)))))) + entry
        return h


class DRRN(PreUpsampleNet):
    """DRRN (N, C, h, w) -> (N, C, s*h, s*w): bicubic upscale + a recursive residual."""

    name = "drrn"
    paper = "Tai et al., CVPR 2017"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The blocks, the units of the first (its normalisations) and the width; the scale is
        not in the weights."""
        entry, tail = shape(state, "blocks.0.entry.conv.weight"), shape(state, "tail.conv.weight")
        if entry is None or tail is None:
            return None
        return {"in_channels": entry[1], "num_features": entry[0],
                "num_blocks": len(indices(state, r"^blocks\.(\d+)\.")),
                "num_units": len(indices(state, r"^blocks\.0\.norms_a\.(\d+)\."))}

    def __init__(self, *, scale: int = 2, in_channels: int = 1, num_features: int = 128, num_blocks: int = 1,
                 num_units: int = 25, upsample_border: str = "clamp") -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if num_blocks < 1 or num_units < 1:
            raise UserError(f"drrn: num_blocks={num_blocks} and num_units={num_units} must be >= 1")
        self.blocks = nn.Sequential(*(RecursiveBlock(in_channels if b == 0 else num_features, num_features, num_units)
                                      for b in range(num_blocks)))
        self.tail = PreActivated(num_features, nn.Conv2d(num_features, in_channels, 3, padding=1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # MSRA initialisation, zero biases (the authors' solver)
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        up = self.upsample(lr)
        return up + self.tail(self.blocks(up))
