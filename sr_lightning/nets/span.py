"""SPAN: Wan, Yu, Li, Chen, Zou, Liu, Yin, Zuo, "Swift Parameter-free Attention Network
for Efficient Super-Resolution", CVPR Workshops 2024 (NTIRE 2024 efficient SR winner).

Defaults: the paper's network with 48 features. Every 3x3 convolution is re-parameterisable
(``Conv3XC``): in training, a 1x1 convolution to 2x the channels, a 3x3 convolution, a 1x1
back, plus a 1x1 skip; in evaluation the four fold into one 3x3 convolution (exactly:
the input is zero-padded before the first 1x1, as the folded convolution pads it). The
input is ``(x - mean) * 255``; a first convolution, 6 parameter-free attention blocks
(SPAB: three convolutions with SiLU between them, then ``(h + x) * (sigmoid(h) - 0.5)``),
a convolution after the last block, a 1x1 fusion of [first features, last block,
first block, the last block's first convolution after its SiLU (the authors' code
activates it in place)], a 3x3 convolution to C*s^2 channels and
one pixel shuffle give the output in [0, 1] (the authors' code: no mean is added back).

Parameters (RGB): the paper counts the network it runs, the folded one: 410,700 / 417,195 /
426,288 at x2 / x3 / x4 (``deployed_parameter_count``; the paper's 426K at x4, the repository
figure's "<= 450K" bubble). Training holds the unfolded branches: 1,824,900 / 1,831,395 /
1,840,488.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv, mean_shift
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale

SPAN_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class Conv3XC(nn.Module):
    """A 3x3 convolution trained as 1x1 -> 3x3 -> 1x1 (``gain`` x wider inside) + a 1x1
    skip, run folded in evaluation; (N, Cin, H, W) -> (N, Cout, H, W)."""

    def __init__(self, cin: int, cout: int, gain: int = 2) -> None:
        super().__init__()
        self.sk = nn.Conv2d(cin, cout, 1)
        self.conv = nn.Sequential(nn.Conv2d(cin, cin * gain, 1), nn.Conv2d(cin * gain, cout * gain, 3),
                                  nn.Conv2d(cout * gain, cout, 1))

    def folded(self) -> tuple[Tensor, Tensor]:
        """The one 3x3 convolution the branches equal: weight (Cout, Cin, 3, 3), bias (Cout,)."""
        first, middle, last = self.conv
        w1, w2, w3 = first.weight[:, :, 0, 0], middle.weight, last.weight[:, :, 0, 0]
        weight = torch.einsum("ok,kjuv,ji->oiuv", w3, w2, w1)
        bias = w3 @ (middle.bias + torch.einsum("kjuv,j->k", w2, first.bias)) + last.bias
        weight = weight + F.pad(self.sk.weight, (1, 1, 1, 1))
        return weight, bias + self.sk.bias

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self.folded()
        return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), padding=1)


class SPAB(nn.Module):
    """Swift parameter-free attention block, (N, F, H, W) -> the block's output and its
    first convolution's activated output, both (N, F, H, W)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r = (Conv3XC(features, features) for _ in range(3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first = F.silu(self.c1_r(x))
        h = self.c3_r(F.silu(self.c2_r(first)))
        return (h + x) * (torch.sigmoid(h) - 0.5), first


class SPAN(SRNet):
    """SPAN (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR resolution."""

    name = "span"
    upsampling = "pixel shuffle"
    paper = "Wan et al., CVPRW 2024"
    published_on_rgb = True

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/hongyuanyu/SPAN): block_1..6, and each Conv3XC's
        folded ``eval_conv`` (checked against the branches, then dropped)."""
        return ReleaseFormat(key_map=((r"^block_(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),),
                             derived=(r"\.eval_conv\.",))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``conv_1`` to the width, ``num_blocks`` SPABs, one pixel-shuffle convolution to ``C * s^2``."""
        first, up = shape(state, "conv_1.sk.weight"), shape(state, "upsampler.0.weight")
        if first is None or up is None:
            return None
        scale = shuffle_scale(up[0], first[1])
        return None if scale is None else {"in_channels": first[1], "num_features": first[0], "scale": scale,
                                           "num_blocks": len(indices(state, r"^blocks\.(\d+)\."))}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 48, num_blocks: int = 6,
                 img_range: float = 255.0, rgb_mean: tuple[float, float, float] | None = SPAN_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.img_range = img_range
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.conv_1 = Conv3XC(in_channels, num_features)
        self.blocks = nn.ModuleList(SPAB(num_features) for _ in range(num_blocks))
        self.conv_2 = Conv3XC(num_features, num_features)
        self.conv_cat = conv(num_features * 4, num_features, 1)
        self.upsampler = nn.Sequential(conv(num_features, in_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        features = self.conv_1((lr - self.mean) * self.img_range)
        first_block, inner = self.blocks[0](features)
        x = first_block
        for block in self.blocks[1:]:
            x, inner = block(x)
        out = self.conv_cat(torch.cat([features, self.conv_2(x), first_block, inner], dim=1))
        return self.upsampler(out)

    def deployed_parameter_count(self) -> int:
        """The parameters of the folded network (each Conv3XC one 3x3 convolution)."""
        folded = [m for m in self.modules() if isinstance(m, Conv3XC)]
        inside = {id(p) for m in folded for p in m.parameters()}
        plain = sum(p.numel() for p in self.parameters() if id(p) not in inside)
        return plain + sum(w.numel() + b.numel() for w, b in (m.folded() for m in folded))
