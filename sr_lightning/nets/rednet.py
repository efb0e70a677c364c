"""RED-Net: Mao, Shen, Yang, "Image Restoration Using Very Deep Convolutional
Encoder-Decoder Networks with Symmetric Skip Connections", NIPS 2016.

Defaults: RED30 on the MATLAB-bicubic upscale of the input: 15 3x3 convolutions then 15
3x3 transposed convolutions, 64 features, ReLU, a skip connection from every second
convolution to its mirrored deconvolution (added, then ReLU), and the input added to the
output. Layers keep the image size ('same' padding) so any input size works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.release_format import indices, shape


class REDNet(PreUpsampleNet):
    """RED-Net (N, C, h, w) -> (N, C, s*h, s*w): conv/deconv encoder-decoder on the bicubic upscale."""

    name = "rednet"
    paper = "Mao et al., NIPS 2016"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``num_layers / 2`` convolutions (``encoder.*``) and as many deconvolutions
        (``decoder.*``); the scale is not in the weights."""
        enc, dec = indices(state, r"^encoder\.(\d+)\."), indices(state, r"^decoder\.(\d+)\.")
        first = shape(state, "encoder.0.weight")
        if not enc or len(enc) != len(dec) or first is None:
            return None
        return {"in_channels": first[1], "num_features": first[0], "num_layers": 2 * len(enc)}

    def __init__(self, *, scale: int = 2, in_channels: int = 1, num_features: int = 64, num_layers: int = 30,
                 skip_every: int = 2, upsample_border: str = "symmetric") -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if num_layers < 2 or num_layers % 2:
            raise UserError(f"rednet: num_layers={num_layers} must be an even number >= 2 (half conv, half deconv)")
        if skip_every < 1:
            raise UserError(f"rednet: skip_every={skip_every} must be >= 1")
        half = num_layers // 2
        self.skip_every = skip_every
        self.encoder = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else num_features, num_features, 3, padding=1) for i in range(half)
        )
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(num_features, in_channels if i == half - 1 else num_features, 3, padding=1)
            for i in range(half)
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, lr: Tensor) -> Tensor:
        up = self.upsample(lr)
        x, skips = up, []
        for i, conv in enumerate(self.encoder):
            x = self.relu(conv(x))
            if (i + 1) % self.skip_every == 0:
                skips.append(x)
        half = len(self.decoder)
        for j, deconv in enumerate(self.decoder):
            x = deconv(x)
            mirror = half - 1 - j  # the encoder layer at the same depth
            if 0 < mirror < half and mirror % self.skip_every == 0:
                x = x + skips[mirror // self.skip_every - 1]
            if j < half - 1:
                x = self.relu(x)
        return up + x
