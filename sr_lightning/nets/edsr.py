"""EDSR: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017.

Defaults: the baseline (16 residual blocks without batch norm, 64 features, residual
scaling 1; 1.37 M parameters at x2 on RGB), a global skip over the body, and a
sub-pixel (pixel shuffle) upsampler: x2/x3 in one step, x4 as two x2 steps. RGB inputs
have the DIV2K mean subtracted and added back (``rgb_mean``), as in the paper. The full
EDSR is ``num_features=256, num_blocks=32, res_scale=0.1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, PixelShuffleUpsampler, ScaledResidual, mean_shift
from sr_lightning.nets.release_format import indices, shape, shuffle_scale


def _res_block(features: int, res_scale: float) -> ScaledResidual:
    return ScaledResidual(nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                        nn.Conv2d(features, features, 3, padding=1)), res_scale)


class EDSR(SRNet):
    """EDSR (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4, 8."""

    name = "edsr"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Lim et al., CVPRW 2017"
    published_on_rgb = True
    scales = (2, 3, 4, 8)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Head, ``num_blocks`` residual blocks of two convolutions, the pixel-shuffle tail."""
        head, last = shape(state, "head.weight"), shape(state, "tail.1.weight")
        if head is None or last is None or "body.0.body.0.weight" not in state:
            return None
        ups = indices(state, r"^tail\.0\.(\d+)\.weight")
        scale = shuffle_scale(shape(state, "tail.0.0.weight")[0], head[0], len(ups)) if ups else None
        blocks = [i for i in indices(state, r"^body\.(\d+)\.body\.")]
        return None if scale is None else {"in_channels": head[1], "num_features": head[0],
                                           "num_blocks": len(blocks), "scale": scale}

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 16,
        res_scale: float = 1.0,
        rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.head = nn.Conv2d(in_channels, num_features, 3, padding=1)
        self.body = nn.Sequential(*(_res_block(num_features, res_scale) for _ in range(num_blocks)),
                                  nn.Conv2d(num_features, num_features, 3, padding=1))
        self.tail = nn.Sequential(PixelShuffleUpsampler(num_features, scale),
                                  nn.Conv2d(num_features, in_channels, 3, padding=1))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr - self.mean)
        return self.tail(x + self.body(x)) + self.mean
