"""FSRCNN: Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural
Network", ECCV 2016.

Defaults: FSRCNN(d=56, s=12, m=4) on the LR image: 5x5 feature extraction (d), 1x1
shrinking (s), m 3x3 mapping layers (s), 1x1 expanding (d), PReLU after each, and a 9x9
transposed convolution with stride = scale as the upsampler; 12,464 convolution weights
for one channel, as the paper counts them. FSRCNN-s: ``d=32, s=5, m=1`` (3,937).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.release_format import indices, shape


class FSRCNN(SRNet):
    """FSRCNN (N, C, h, w) -> (N, C, s*h, s*w): all layers at LR resolution, deconvolution last."""

    name = "fsrcnn"
    upsampling = "transposed conv (9x9, stride s)"
    paper = "Dong et al., ECCV 2016"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Feature extraction to ``d``, shrinking to ``s``, ``m`` 3x3 mappings, expanding, each
        with a PReLU, and the deconvolution; its stride (the scale) is not in the weights."""
        first, deconv = shape(state, "body.0.weight"), shape(state, "upsample.weight")
        if first is None or deconv is None or "body.1.weight" not in state:
            return None
        convs = [i for i in indices(state, r"^body\.(\d+)\.weight") if len(shape(state, f"body.{i}.weight")) == 4]
        s = shape(state, "body.2.weight")[0] if "body.2.weight" in state else None
        return None if s is None else {"in_channels": first[1], "d": first[0], "s": s, "m": len(convs) - 3}

    def __init__(self, *, scale: int = 2, in_channels: int = 1, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if min(d, s) < 1 or m < 0:
            raise UserError(f"fsrcnn: d={d}, s={s}, m={m} must be d, s >= 1 and m >= 0")

        def conv(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU(cout)]

        layers = conv(in_channels, d, 5) + conv(d, s, 1)
        for _ in range(m):
            layers += conv(s, s, 3)
        layers += conv(s, d, 1)
        self.body = nn.Sequential(*layers)
        # (h - 1) * r - 2 * 4 + 9 + (r - 1) = r * h
        self.upsample = nn.ConvTranspose2d(d, in_channels, 9, stride=scale, padding=4, output_padding=scale - 1)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):  # He init for PReLU nets, as the paper
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.upsample.weight, std=0.001)
        nn.init.zeros_(self.upsample.bias)

    def forward(self, lr: Tensor) -> Tensor:
        return self.upsample(self.body(lr))
