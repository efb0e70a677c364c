"""RFDN: Liu et al., "Residual Feature Distillation Network for Lightweight Image
Super-Resolution", ECCV Workshops (AIM 2020).

Defaults: the paper's RFDN: a 3x3 convolution to 48 features, 6 residual feature
distillation blocks, their outputs concatenated and fused by a 1x1 convolution (+ LeakyReLU
0.05), a 3x3 convolution with a residual to the first features, and a 3x3 convolution to
C*s^2 channels with one pixel shuffle. A block: three steps, each distilling half the features
by a 1x1 convolution and refining all of them by a shallow residual block (a 3x3 convolution
plus its input; LeakyReLU 0.05 on both), a last 3x3 convolution to half the features, the
four halves concatenated, a 1x1 convolution back to the width, and enhanced spatial attention
(a quarter of the width, three coarse convolutions: :class:`~sr_lightning.nets.blocks.ESA`).
The AIM 2020 winner E-RFDN: 50 features, 4 blocks (``conf/model/rfdn_aim.yaml``).

Parameters (RGB): 566,364 / 572,859 / 581,952 at x2 / x3 / x4, as the authors' code builds
that configuration; the paper's table says 534K / 541K / 550K (32K fewer: unexplained; the
authors' repository holds only E-RFDN). E-RFDN: 433,448 at x4, the challenge report's 0.433M.
Input and output in [0, 1] (the authors' test code). The attention's coarse map is
image-wide, so tiled inference is close to one pass but not equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.nets.blocks import ESA, conv
from sr_lightning.nets.imdn import FusedDistillationNet
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale


class RFDB(nn.Module):
    """Residual feature distillation block, (N, F, H, W) -> same shape (the authors' layer names)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        half = features // 2
        for step in (1, 2, 3):
            setattr(self, f"c{step}_d", conv(features, half, 1))
            setattr(self, f"c{step}_r", conv(features, features, 3))
        self.c4 = conv(features, half, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv(half * 4, features, 1)
        self.esa = ESA(features, features // 4, full=True)

    def forward(self, x: Tensor) -> Tensor:
        distilled = []
        for step in (1, 2, 3):
            distilled.append(self.act(getattr(self, f"c{step}_d")(x)))
            x = self.act(getattr(self, f"c{step}_r")(x) + x)
        distilled.append(self.act(self.c4(x)))
        return self.esa(self.c5(torch.cat(distilled, dim=1)))


class RFDN(FusedDistillationNet):
    """RFDN (N, C, h, w) -> (N, C, s*h, s*w): IMDN's skeleton with residual feature distillation blocks."""

    name = "rfdn"
    upsampling = "pixel shuffle"
    paper = "Liu et al., ECCVW 2020"
    published_on_rgb = True
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/njulj/RFDN, RFDN.py): fea_conv, B1..BN, c, LR_conv,
        upsampler."""
        return ReleaseFormat(key_map=((r"^fea_conv\.", "head."),
                                      (r"^B(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),
                                      (r"^c\.0\.", "fuse.0."), (r"^LR_conv\.", "body_tail."),
                                      (r"^upsampler\.0\.", "upsample.0.")))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Head, ``num_blocks`` blocks, the fusion and one pixel-shuffle convolution to ``C * s^2``."""
        head, up = shape(state, "head.weight"), shape(state, "upsample.0.weight")
        if head is None or up is None or "blocks.0.c1_d.weight" not in state:
            return None
        scale = shuffle_scale(up[0], head[1])
        return None if scale is None else {"in_channels": head[1], "num_features": head[0], "scale": scale,
                                           "num_blocks": len(indices(state, r"^blocks\.(\d+)\."))}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 48, num_blocks: int = 6) -> None:
        super().__init__(scale=scale, in_channels=in_channels, num_features=num_features,
                         blocks=(RFDB(num_features) for _ in range(num_blocks)))
