"""Bicubic interpolation (MATLAB ``imresize``) as a parameter-free network: the baseline."""

from __future__ import annotations

from torch import Tensor

from sr_lightning.nets.base import PreUpsampleNet


class Bicubic(PreUpsampleNet):
    """MATLAB bicubic upscaling, (N, C, h, w) -> (N, C, s*h, s*w); no parameters."""

    name = "bicubic"
    upsampling = "MATLAB bicubic"
    paper = "MATLAB imresize (Keys 1981)"

    def __init__(self, *, scale: int = 2, in_channels: int = 1, upsample_border: str = "clamp") -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)

    def forward(self, lr: Tensor) -> Tensor:
        return self.upsample(lr)
