"""WDSR-A: Yu et al., "Wide Activation for Efficient and Accurate Image Super-Resolution",
arXiv 1808.08718 (NTIRE 2018 winner).

Defaults: WDSR-A baseline: 16 residual blocks with wide activation (3x3 conv to 4x the
32 features, ReLU, 3x3 conv back), weight normalisation on every convolution, a 3x3
body tail to C*r^2 channels and a 5x5 global skip branch from the input to C*r^2
channels, both pixel-shuffled by r and added; the DIV2K mean is subtracted for RGB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, ScaledResidual, mean_shift
from sr_lightning.nets.release_format import indices, shape, shuffle_scale


def _wn_conv(cin: int, cout: int, k: int) -> nn.Module:
    return weight_norm(nn.Conv2d(cin, cout, k, padding=k // 2))


def _wide_block(features: int, expansion: int, res_scale: float) -> ScaledResidual:
    return ScaledResidual(nn.Sequential(_wn_conv(features, features * expansion, 3), nn.ReLU(inplace=True),
                                        _wn_conv(features * expansion, features, 3)), res_scale)


class WDSR(SRNet):
    """WDSR-A (N, C, h, w) -> (N, C, s*h, s*w): wide-activation blocks, one pixel shuffle."""

    name = "wdsr"
    upsampling = "pixel shuffle"
    paper = "Yu et al., arXiv 2018"
    published_on_rgb = True

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Weight-normed head, ``num_blocks`` wide-activation blocks (``expansion`` x the width),
        body and skip branches ending in ``C * s^2`` channels."""
        head = shape(state, "head.parametrizations.weight.original1")
        if head is None:
            return None
        blocks = indices(state, r"^body\.(\d+)\.body\.")
        wide = shape(state, "body.0.body.0.parametrizations.weight.original1")
        last = shape(state, f"body.{len(blocks)}.parametrizations.weight.original1")
        if not blocks or wide is None or last is None:
            return None
        scale = shuffle_scale(last[0], head[1])
        return None if scale is None else {"in_channels": head[1], "num_features": head[0], "num_blocks": len(blocks),
                                           "expansion": wide[0] // head[0], "scale": scale}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, num_features: int = 32, num_blocks: int = 16,
                 expansion: int = 4, res_scale: float = 1.0,
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if expansion < 1:
            raise UserError(f"wdsr: expansion={expansion} must be >= 1")
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        out = in_channels * scale * scale
        self.head = _wn_conv(in_channels, num_features, 3)
        self.body = nn.Sequential(*(_wide_block(num_features, expansion, res_scale) for _ in range(num_blocks)),
                                  _wn_conv(num_features, out, 3))
        self.skip = _wn_conv(in_channels, out, 5)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lr: Tensor) -> Tensor:
        x = lr - self.mean
        return self.shuffle(self.body(self.head(x)) + self.skip(x)) + self.mean
