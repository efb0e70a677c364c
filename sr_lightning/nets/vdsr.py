"""VDSR: Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016.

Defaults: 20 3x3 convolutions with 64 features and ReLU (665 k parameters for one
channel), zero padding, learning the residual to the bicubic upscale of the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.release_format import indices, shape


class VDSR(PreUpsampleNet):
    """VDSR (N, C, h, w) -> (N, C, s*h, s*w): bicubic upscale + a deep residual."""

    name = "vdsr"
    paper = "Kim et al., CVPR 2016"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``num_layers`` 3x3 convolutions (``body.0, 2, ...``), the last back to the input's
        channels; the scale is not in the weights."""
        convs = indices(state, r"^body\.(\d+)\.")
        if len(convs) < 3 or convs != list(range(0, 2 * len(convs), 2)) or len(state) != 2 * len(convs):
            return None
        first, last = shape(state, "body.0.weight"), shape(state, f"body.{convs[-1]}.weight")
        if first is None or last is None or len(first) != 4 or first[2:] != (3, 3) or last[0] != first[1]:
            return None
        return {"in_channels": first[1], "num_features": first[0], "num_layers": len(convs)}

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        num_features: int = 64,
        num_layers: int = 20,
        upsample_border: str = "clamp",
    ) -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if num_layers < 2:
            raise UserError(f"vdsr: num_layers={num_layers} must be >= 2")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_features, num_features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_features, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # He initialisation, as in the paper
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        up = self.upsample(lr)
        return up + self.body(up)
