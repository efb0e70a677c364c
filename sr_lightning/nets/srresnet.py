"""SRResNet: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017 (the SRGAN generator).

Defaults: 9x9 head with PReLU, 16 residual blocks (conv-BN-PReLU-conv-BN + skip), a 3x3
conv-BN after them with a skip from the head, pixel-shuffle upsampling in x2 steps with
PReLU (one x3 step for x3), and a 9x9 output convolution; 64 features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import PixelShuffleUpsampler, ScaledResidual
from sr_lightning.nets.release_format import indices, shape, shuffle_scale


def _res_block(features: int) -> ScaledResidual:
    return ScaledResidual(nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.BatchNorm2d(features),
                                        nn.PReLU(features), nn.Conv2d(features, features, 3, padding=1),
                                        nn.BatchNorm2d(features)))


class SRResNet(SRNet):
    """SRResNet (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4, 8."""

    name = "srresnet"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Ledig et al., CVPR 2017"
    published_on_rgb = True
    scales = (2, 3, 4, 8)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """A 9x9 head with PReLU, ``num_blocks`` batch-normed residual blocks, the tail's x2 steps."""
        head = shape(state, "head.0.weight")
        if head is None or head[2:] != (9, 9) or "body.0.body.1.running_mean" not in state:
            return None
        ups = [i for i in indices(state, r"^tail\.0\.(\d+)\.weight") if len(shape(state, f"tail.0.{i}.weight")) == 4]
        scale = shuffle_scale(shape(state, "tail.0.0.weight")[0], head[0], len(ups)) if ups else None
        return None if scale is None else {"in_channels": head[1], "num_features": head[0],
                                           "num_blocks": len(indices(state, r"^body\.(\d+)\.body\.")), "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_blocks: int = 16) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.head = nn.Sequential(nn.Conv2d(in_channels, num_features, 9, padding=4), nn.PReLU(num_features))
        self.body = nn.Sequential(*(_res_block(num_features) for _ in range(num_blocks)),
                                  nn.Conv2d(num_features, num_features, 3, padding=1), nn.BatchNorm2d(num_features))
        self.tail = nn.Sequential(PixelShuffleUpsampler(num_features, scale, lambda: nn.PReLU(num_features)),
                                  nn.Conv2d(num_features, in_channels, 9, padding=4))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr)
        return self.tail(x + self.body(x))
