"""RLFN: Kong et al., "Residual Local Feature Network for Efficient Super-Resolution",
CVPR Workshops (NTIRE 2022).

Defaults: the paper's RLFN: a 3x3 convolution to 52 features, 6 residual local feature
blocks, a 3x3 convolution with a residual to the first features, and a 3x3 convolution to
C*s^2 channels with one pixel shuffle. A block: three 3x3 convolutions (each followed by
LeakyReLU 0.05) with a residual over the three, a 1x1 convolution, and RLFN's reduced
enhanced spatial attention (16 channels, one coarse convolution: :class:`~sr_lightning.nets.blocks.ESA`).
RLFN-S: 48 features (``conf/model/rlfn_s.yaml``); the NTIRE challenge model: 46 features,
48 inside the blocks (``mid_features``), 4 blocks.

Parameters (RGB): 526,856 / 533,891 / 543,740 at x2 / x3 / x4, the paper's 527K at x2 and
543K at x4; RLFN-S 454,620 / 461,115 / 470,208; the challenge model 317,218 at x4 (0.317M).
``img_range``: the network sees ``x * img_range`` and its output is divided by it; the
authors' released weights were trained on 0..255 (EDSR's framework), which their release
format states. The attention's coarse map is image-wide, so tiled inference is close to
one pass but not equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import ESA, conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale


class RLFB(nn.Module):
    """Residual local feature block, (N, F, H, W) -> same shape."""

    def __init__(self, features: int, mid_features: int, esa_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv(features, mid_features), nn.LeakyReLU(0.05, inplace=True),
                                   conv(mid_features, mid_features), nn.LeakyReLU(0.05, inplace=True),
                                   conv(mid_features, features), nn.LeakyReLU(0.05, inplace=True))
        self.fuse = conv(features, features, 1)
        self.esa = ESA(features, esa_channels, full=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.esa(self.fuse(self.convs(x) + x))


class RLFN(SRNet):
    """RLFN (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR resolution."""

    name = "rlfn"
    upsampling = "pixel shuffle"
    paper = "Kong et al., CVPRW 2022"
    published_on_rgb = True
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/bytedance/RLFN, model/rlfn.py): conv_1, block_1..N
        (c1_r, c2_r, c3_r, c5, esa), conv_2, upsampler; trained on 0..255."""
        return ReleaseFormat(key_map=((r"^conv_1\.", "head."),
                                      (r"^block_(\d+)\.", lambda m: f"blocks.{int(m[1]) - 1}."),
                                      (r"\.c(\d)_r\.", lambda m: f".convs.{2 * (int(m[1]) - 1)}."),
                                      (r"\.c5\.", ".fuse."), (r"^conv_2\.", "body_tail."),
                                      (r"^upsampler\.0\.", "upsample.0.")),
                             options={"img_range": 255.0})

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Head, ``num_blocks`` blocks (their inner width and attention channels read off the
        first), the body's tail and one pixel-shuffle convolution to ``C * s^2``."""
        head, inner = shape(state, "head.weight"), shape(state, "blocks.0.convs.0.weight")
        esa, up = shape(state, "blocks.0.esa.conv1.weight"), shape(state, "upsample.0.weight")
        if head is None or inner is None or esa is None or up is None:
            return None
        scale = shuffle_scale(up[0], head[1])
        if scale is None:
            return None
        found = {"in_channels": head[1], "num_features": head[0], "esa_channels": esa[0], "scale": scale,
                 "num_blocks": len(indices(state, r"^blocks\.(\d+)\."))}
        return found if inner[0] == head[0] else {**found, "mid_features": inner[0]}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 52, mid_features: int | None = None,
                 num_blocks: int = 6, esa_channels: int = 16, img_range: float = 1.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.img_range = img_range
        self.head = conv(in_channels, num_features)
        self.blocks = nn.Sequential(*(RLFB(num_features, mid_features or num_features, esa_channels)
                                      for _ in range(num_blocks)))
        self.body_tail = conv(num_features, num_features)
        self.upsample = nn.Sequential(conv(num_features, in_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        features = self.head(lr * self.img_range)
        return self.upsample(self.body_tail(self.blocks(features)) + features) / self.img_range
