"""SRResNet: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017 (the SRGAN generator).

Defaults: 9x9 head with PReLU, 16 residual blocks (conv-BN-PReLU-conv-BN + skip), a 3x3
conv-BN after them with a skip from the head, pixel-shuffle upsampling in x2 steps with
PReLU (one x3 step for x3), and a 9x9 output convolution; 64 features.
"""

from __future__ import annotations

from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import PixelShuffleUpsampler, ScaledResidual


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
