"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016.

Defaults: the paper's (5x5, 64) - (3x3, 32) - (3x3, C*r^2) network on the LR image with
tanh activations, then the sub-pixel convolution (pixel shuffle by r). ``activation:
relu`` is the common variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.release_format import indices, shape, shuffle_scale

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ESPCN(SRNet):
    """ESPCN (N, C, h, w) -> (N, C, s*h, s*w): convolutions at LR resolution, pixel shuffle last."""

    name = "espcn"
    upsampling = "pixel shuffle"
    paper = "Shi et al., CVPR 2016"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Three convolutions, the last to ``C * s^2`` channels (the pixel shuffle's)."""
        if indices(state, r"^body\.(\d+)\.") != [0, 2, 4] or len(state) != 6:
            return None
        (f1, c, _, _), (f2, _, _, _), (out, _, _, _) = (shape(state, f"body.{i}.weight") for i in (0, 2, 4))
        scale = shuffle_scale(out, c)
        return None if scale is None else {"in_channels": c, "scale": scale, "num_features": [f1, f2]}

    def __init__(self, *, scale: int = 2, in_channels: int = 1, num_features: tuple[int, int] = (64, 32),
                 activation: str = "tanh") -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if activation not in ACTIVATIONS:
            raise UserError(f"espcn: activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        if len(num_features) != 2:
            raise UserError(f"espcn: num_features={list(num_features)} must be two widths, e.g. [64, 32]")
        f1, f2 = num_features
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, f1, 5, padding=2), act(),
            nn.Conv2d(f1, f2, 3, padding=1), act(),
            nn.Conv2d(f2, in_channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lr: Tensor) -> Tensor:
        return self.shuffle(self.body(lr))
