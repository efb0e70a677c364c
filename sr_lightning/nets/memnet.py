"""MemNet: Tai, Yang, Liu, Xu, "MemNet: A Persistent Memory Network for Image Restoration",
ICCV 2017.

Defaults: the paper's SR network M6R6 (80 convolutional layers) on the bicubic upscale
of the input, every convolution pre-activated (BatchNorm, ReLU, conv), 64 features:

- a feature extraction convolution (3x3) gives B0;
- 6 memory blocks: block m applies one recursive unit 6 times, x_r = x_{r-1} +
  conv(conv(x_{r-1})) from x_0 = B_{m-1} (the two 3x3 convolutions are shared by the 6
  recursions, each recursion has its own BatchNorms: the authors' Caffe model), and a gate
  unit, a 1x1 convolution of the long-term memory [B0, ..., B_{m-1}] and the short-term
  memory [x_1, ..., x_6] concatenated ((m + 6) x 64 channels), gives B_m;
- multi-supervision: one shared reconstruction convolution (3x3, own BatchNorm per block)
  turns each B_m into a residual to the upscale, y_m = bicubic + rec(B_m), and the output
  is sum_m w_m y_m with learned w_m (initialised to 1/6: the average).

Parameters (one channel): the paper's "677K" counts the convolutions: 676,992 weights
(678,209 with their biases); the BatchNorm scale/shift values (17,282) and the 6 output
weights come on top, 695,497 in all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import indices, shape


def pre_activation(channels: int) -> nn.Sequential:
    """BatchNorm + ReLU before a convolution, (N, F, H, W) -> same shape."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))


class MemoryBlock(nn.Module):
    """A recursive unit run ``recursions`` times (shared convolutions, own BatchNorms) and
    a gate unit; (N, F, H, W) and the earlier blocks' outputs -> (N, F, H, W)."""

    def __init__(self, features: int, recursions: int, memories: int) -> None:
        super().__init__()
        self.conv_a, self.conv_b = conv(features, features), conv(features, features)
        self.norms_a = nn.ModuleList(pre_activation(features) for _ in range(recursions))
        self.norms_b = nn.ModuleList(pre_activation(features) for _ in range(recursions))
        channels = (memories + recursions) * features
        self.gate = nn.Sequential(pre_activation(channels), conv(channels, features, 1))

    def forward(self, x: Tensor, long_term: list[Tensor]) -> Tensor:
        short_term = []
        for norm_a, norm_b in zip(self.norms_a, self.norms_b, strict=True):
            x = x + self.conv_b(norm_b(self.conv_a(norm_a(x))))
            short_term.append(x)
        return self.gate(torch.cat(long_term + short_term, dim=1))


class MemNet(PreUpsampleNet):
    """MemNet (N, C, h, w) -> (N, C, s*h, s*w): bicubic upscale + the weighted average of
    one reconstruction per memory block."""

    name = "memnet"
    paper = "Tai et al., ICCV 2017"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The feature extractor, ``num_blocks`` memory blocks of ``num_recursions`` recursive
        units each; the scale is not in the weights."""
        first = shape(state, "extract.1.weight")
        blocks = indices(state, r"^blocks\.(\d+)\.")
        if first is None or not blocks or "output_weights" not in state:
            return None
        return {"in_channels": first[1], "num_features": first[0], "num_blocks": len(blocks),
                "num_recursions": len(indices(state, r"^blocks\.0\.norms_a\.(\d+)\."))}

    def __init__(self, *, scale: int = 2, in_channels: int = 1, num_features: int = 64, num_blocks: int = 6,
                 num_recursions: int = 6, upsample_border: str = "clamp") -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if num_blocks < 1 or num_recursions < 1:
            raise UserError(f"memnet: num_blocks={num_blocks} and num_recursions={num_recursions} must be >= 1")
        self.extract = nn.Sequential(pre_activation(in_channels), conv(in_channels, num_features))
        self.blocks = nn.ModuleList(MemoryBlock(num_features, num_recursions, m) for m in range(1, num_blocks + 1))
        self.reconstruct_norms = nn.ModuleList(pre_activation(num_features) for _ in range(num_blocks))
        self.reconstruct = conv(num_features, in_channels)
        self.output_weights = nn.Parameter(torch.full((num_blocks,), 1.0 / num_blocks))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # MSRA (He) initialisation, zero bias: the authors' fillers
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        up = self.upsample(lr)
        memory = [self.extract(up)]
        out = torch.zeros_like(up)
        for block, norm, weight in zip(self.blocks, self.reconstruct_norms, self.output_weights, strict=True):
            memory.append(block(memory[-1], memory))
            out = out + weight * (up + self.reconstruct(norm(memory[-1])))
        return out
