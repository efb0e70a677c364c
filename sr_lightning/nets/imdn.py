"""IMDN: Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation
Network", ACM Multimedia 2019.

Defaults: the paper's network: a 3x3 convolution to 64 features, 6 information
multi-distillation blocks (IMDB), their outputs concatenated and fused by a 1x1
convolution (+ LeakyReLU 0.05) and a 3x3 convolution, a global residual to the first
features, and a 3x3 convolution to C*s^2 channels with one pixel shuffle. In an IMDB, each of
three 3x3 convolutions (LeakyReLU 0.05) keeps a quarter of its features (16 of 64, the
distillation rate 0.25) and passes the rest on; a fourth (no activation) makes 16 more; the four 16-channel
parts are concatenated, reweighted by contrast-aware channel attention (per-channel
standard deviation + mean, a 1x1 squeeze to 64/16 = 4 channels, ReLU, 1x1, sigmoid), fused
by a 1x1 convolution and added to the block's input.
Parameters (RGB): 694,404 / 703,059 / 715,176 at x2 / x3 / x4, the paper's 694K / 703K /
715K. Input and output in [0, 1], no mean shift (the authors' test code).

The channel attention pools over the whole image, so tiled inference is close to one
pass but not equal to it (``tiles_exactly = False``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import ChannelAttention, conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale


class IMDB(nn.Module):
    """Information multi-distillation block, (N, F, H, W) -> same shape."""

    def __init__(self, features: int = 64, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(features * distillation_rate)
        self.remaining = features - self.distilled
        self.c1 = conv(features, features, 3)
        self.c2 = conv(self.remaining, features, 3)
        self.c3 = conv(self.remaining, features, 3)
        self.c4 = conv(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.cca = ChannelAttention(self.distilled * 4, statistic="contrast")
        self.c5 = conv(self.distilled * 4, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        kept = []
        h = x
        for layer in (self.c1, self.c2, self.c3):
            d, h = torch.split(self.act(layer(h)), (self.distilled, self.remaining), dim=1)
            kept.append(d)
        kept.append(self.c4(h))  # no activation on the last part
        return self.c5(self.cca(torch.cat(kept, dim=1))) + x


class FusedDistillationNet(SRNet):
    """The IMDN family's skeleton, (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR
    resolution: a 3x3 head, ``blocks`` in sequence whose outputs are concatenated and fused by
    a 1x1 convolution (+ LeakyReLU 0.05) and a 3x3 one, a residual to the head's features, and a
    3x3 convolution to C*s^2 channels with one pixel shuffle (IMDN; RFDN with its own blocks)."""

    def __init__(self, *, scale: int, in_channels: int, num_features: int, blocks: Iterable[nn.Module]) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.head = conv(in_channels, num_features, 3)
        self.blocks = nn.ModuleList(blocks)
        self.fuse = nn.Sequential(conv(num_features * len(self.blocks), num_features, 1),
                                  nn.LeakyReLU(0.05, inplace=True))
        self.body_tail = conv(num_features, num_features, 3)
        self.upsample = nn.Sequential(conv(num_features, in_channels * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        features = self.head(lr)
        h, outs = features, []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.upsample(self.body_tail(self.fuse(torch.cat(outs, dim=1))) + features)


class IMDN(FusedDistillationNet):
    """IMDN (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR resolution."""

    name = "imdn"
    upsampling = "pixel shuffle"
    paper = "Hui et al., ACM MM 2019"
    published_on_rgb = True
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/Zheng222/IMDN, models/architecture.py): fea_conv,
        IMDB1..6, c, LR_conv, upsampler."""
        return ReleaseFormat(key_map=((r"^fea_conv\.", "head."),
                                      (r"^IMDB(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),
                                      (r"\.cca\.conv_du\.", ".cca.excite."), (r"^c\.0\.", "fuse.0."),
                                      (r"^LR_conv\.", "body_tail."), (r"^upsampler\.0\.", "upsample.0.")))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Head, ``num_blocks`` distillation blocks (the distilled share read off ``c2``), fusion,
        and one pixel-shuffle convolution to ``C * s^2``."""
        head, c2 = shape(state, "head.weight"), shape(state, "blocks.0.c2.weight")
        up = shape(state, "upsample.0.weight")
        if head is None or c2 is None or up is None:
            return None
        scale = shuffle_scale(up[0], head[1])
        return None if scale is None else {"in_channels": head[1], "num_features": head[0],
                                           "num_blocks": len(indices(state, r"^blocks\.(\d+)\.")),
                                           "distillation_rate": (head[0] - c2[1]) / head[0], "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_blocks: int = 6,
                 distillation_rate: float = 0.25) -> None:
        super().__init__(scale=scale, in_channels=in_channels, num_features=num_features,
                         blocks=(IMDB(num_features, distillation_rate) for _ in range(num_blocks)))
