"""SAFMN: Sun, Pan, Tang, "Spatially-Adaptive Feature Modulation for Efficient Image
Super-Resolution", ICCV 2023.

Defaults: the paper's network: a 3x3 convolution to 36 features, 8 blocks and a skip over
them, then a 3x3 convolution to C*s^2 channels and one pixel shuffle. A block is
``x + SAFM(LN(x))`` then ``x + CCM(LN(x))``, LN a LayerNorm over the channels (eps 1e-6):

- SAFM (spatially-adaptive feature modulation): the features split into 4 groups of 9
  channels; group 0 goes through a depthwise 3x3 convolution, group i > 0 is max-pooled
  to (H / 2^i, W / 2^i) (adaptive pooling), depthwise-convolved and upsampled back
  (nearest); a 1x1 convolution of the 4 groups, GELU, multiplies the block's input;
- CCM (convolutional channel mixer): 3x3 convolution to 72 features, GELU, 1x1 back to 36.

Parameters (RGB): 227,820 / 232,695 / 239,520 at x2 / x3 / x4, the paper's 228K / 233K /
240K. Input and output in [0, 1], no mean shift (the authors' code).

The pooling cells depend on the image size (H / 2^i): tiled inference equals one pass
only when the image sides, the tile and the overlap are multiples of 8 (the cells are then
the image's) and the overlap covers the receptive field; otherwise a tile pools other
pixels than one pass does (``tiles_exactly = False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of (N, F, H, W) at every pixel, -> same shape."""

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation over ``levels`` scales, (N, F, H, W) -> same shape."""

    def __init__(self, features: int, levels: int = 4) -> None:
        super().__init__()
        if features % levels:
            raise UserError(f"safmn: dim={features} must be divisible by the {levels} SAFM levels")
        group = features // levels
        self.levels = levels
        self.mfr = nn.ModuleList(nn.Conv2d(group, group, 3, padding=1, groups=group) for _ in range(levels))
        self.aggr = conv(features, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        parts = []
        for i, (part, layer) in enumerate(zip(x.chunk(self.levels, dim=1), self.mfr, strict=True)):
            if i == 0:
                parts.append(layer(part))
                continue
            pooled = F.adaptive_max_pool2d(part, (max(h >> i, 1), max(w >> i, 1)))
            parts.append(F.interpolate(layer(pooled), size=(h, w), mode="nearest"))
        return F.gelu(self.aggr(torch.cat(parts, dim=1))) * x


class SAFMBlock(nn.Module):
    """``x + SAFM(LN(x))``, then ``x + CCM(LN(x))``; (N, F, H, W) -> same shape."""

    def __init__(self, features: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = int(features * ffn_scale)
        self.norm1, self.norm2 = ChannelLayerNorm(features), ChannelLayerNorm(features)
        self.safm = SAFM(features)
        self.ccm = nn.Sequential(conv(features, hidden), nn.GELU(), conv(hidden, features, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.safm(self.norm1(x))
        return x + self.ccm(self.norm2(x))


class SAFMN(SRNet):
    """SAFMN (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR resolution."""

    name = "safmn"
    upsampling = "pixel shuffle"
    paper = "Sun et al., ICCV 2023"
    published_on_rgb = True
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/sunny2109/SAFMN): the channel mixer's inner Sequential."""
        return ReleaseFormat(key_map=((r"\.ccm\.ccm\.", ".ccm."),))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``to_feat`` to ``dim``, ``num_blocks`` SAFM blocks (``ffn_scale`` read off the channel
        mixer), one pixel-shuffle convolution to ``C * s^2``."""
        feat, ccm = shape(state, "to_feat.weight"), shape(state, "feats.0.ccm.0.weight")
        out = shape(state, "to_img.0.weight")
        if feat is None or ccm is None or out is None:
            return None
        scale = shuffle_scale(out[0], feat[1])
        return None if scale is None else {"in_channels": feat[1], "dim": feat[0], "scale": scale,
                                           "num_blocks": len(indices(state, r"^feats\.(\d+)\.")),
                                           "ffn_scale": ccm[0] / feat[0]}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, dim: int = 36, num_blocks: int = 8,
                 ffn_scale: float = 2.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.to_feat = conv(in_channels, dim)
        self.feats = nn.Sequential(*(SAFMBlock(dim, ffn_scale) for _ in range(num_blocks)))
        self.to_img = nn.Sequential(conv(dim, in_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.to_feat(lr)
        return self.to_img(self.feats(x) + x)
