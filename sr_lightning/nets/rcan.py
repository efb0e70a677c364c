"""RCAN: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018.

Defaults: the paper's network: a 3x3 convolution to 64 features, 10 residual groups of 20
residual channel-attention blocks (RCAB: 3x3 conv, ReLU, 3x3 conv, channel attention by
global average pooling, a 1x1 squeeze to 64/16 = 4 channels, ReLU, 1x1, sigmoid; plus the
block's input), each group closed by a 3x3 convolution and a skip, a 3x3 convolution and a
global skip over the body, then a pixel-shuffle upsampler (x2 steps, or one x3) and a 3x3
convolution to C channels; the DIV2K mean is subtracted and added back on RGB (as EDSR).
Parameters (RGB): 15,444,643 / 15,629,283 / 15,592,355 at x2 / x3 / x4 (the x3 upsampler
is one 9x step, heavier than x4's two 4x steps); the x4 count is the 15,592K later papers'
tables give RCAN (e.g. SwinIR's Table 2; the paper itself plots "about 16M"). The authors'
fixed mean-shift convolutions are a buffer here (no parameters). ``img_range``: the network
sees ``(x - mean) * img_range`` and its output is divided by it; 1 here (values in [0, 1]),
255 in the authors' code (``rgb_range``), which is what their released weights expect.

The channel attention pools over the whole image, so tiled inference is close to one pass
but not equal to it.
"""

from __future__ import annotations

from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, ChannelAttention, PixelShuffleUpsampler, conv, mean_shift


class RCAB(nn.Module):
    """Residual channel-attention block, (N, F, H, W) -> same shape."""

    def __init__(self, features: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(features, features), nn.ReLU(inplace=True), conv(features, features),
                                  ChannelAttention(features, reduction))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``num_blocks`` RCABs and a 3x3 convolution, with a skip over them."""

    def __init__(self, features: int, num_blocks: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(RCAB(features, reduction) for _ in range(num_blocks)), conv(features, features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class RCAN(SRNet):
    """RCAN (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4, 8."""

    name = "rcan"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Zhang et al., ECCV 2018"
    published_on_rgb = True
    scales = (2, 3, 4, 8)
    tiles_exactly = False

    def __init__(self, *, scale: int = 2, in_channels: int = 3, num_features: int = 64, num_groups: int = 10,
                 num_blocks: int = 20, reduction: int = 16, img_range: float = 1.0,
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.img_range = img_range
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.head = conv(in_channels, num_features)
        self.body = nn.Sequential(*(ResidualGroup(num_features, num_blocks, reduction) for _ in range(num_groups)),
                                  conv(num_features, num_features))
        self.tail = nn.Sequential(PixelShuffleUpsampler(num_features, scale), conv(num_features, in_channels))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head((lr - self.mean) * self.img_range)
        return self.tail(x + self.body(x)) / self.img_range + self.mean
