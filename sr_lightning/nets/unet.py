"""A deconvolution U-Net for SR: an encoder-decoder on the LR image with skip connections
and transposed-convolution upsampling (after Ronneberger et al. 2015, U-Net, and Mao et al.
2016, RED-Net), ending in an s x transposed convolution, plus the bicubic upscale as a
global residual.

Defaults: 64 base features, 2 down/up levels (features double per level), 2 convolutions
per block. Any input size works: the input is mirror-padded to a multiple of 2**depth and
the output cropped back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.release_format import indices, shape


def _block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class UNet(PreUpsampleNet):
    """Deconvolution U-Net (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4."""

    name = "unet"
    upsampling = "transposed conv (s x), bicubic residual"
    paper = "Ronneberger et al. 2015; Mao et al. 2016"
    scales = (2, 3, 4)
    scale_agnostic = False  # its transposed convolution upsamples by the scale

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``depth`` strided convolutions down (``down.*``) and up, ``convs_per_block`` 3x3
        convolutions per block; the scale is not in the weights."""
        head, down = shape(state, "head.0.weight"), indices(state, r"^down\.(\d+)\.")
        if head is None or not down or "upscale.weight" not in state:
            return None
        return {"in_channels": head[1], "num_features": head[0], "depth": len(down),
                "convs_per_block": len(indices(state, r"^head\.(\d+)\.weight"))}

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        num_features: int = 64,
        depth: int = 2,
        convs_per_block: int = 2,
        global_residual: bool = True,
        upsample_border: str = "clamp",
    ) -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if depth < 1:
            raise UserError(f"unet: depth={depth} must be >= 1")
        widths = [num_features * 2**i for i in range(depth + 1)]
        self.depth, self.global_residual = depth, global_residual
        self.head = _block(in_channels, widths[0], convs_per_block)
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1) for i in range(depth))
        self.enc = nn.ModuleList(_block(widths[i + 1], widths[i + 1], convs_per_block) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1) for i in range(depth)
        )
        self.dec = nn.ModuleList(_block(2 * widths[i], widths[i], convs_per_block) for i in range(depth))
        # (h - 1) * s - 2p + k = s * h with p = s // 2 and k = s + 2p.
        pad = scale // 2
        self.upscale = nn.ConvTranspose2d(widths[0], widths[0], scale + 2 * pad, stride=scale, padding=pad)
        self.tail = nn.Sequential(nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(widths[0], in_channels, 3, padding=1))

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        multiple = 2**self.depth
        ph, pw = (-h) % multiple, (-w) % multiple
        x = F.pad(lr, (0, pw, 0, ph), mode="replicate") if ph or pw else lr
        x = self.head(x)
        skips = [x]
        for down, enc in zip(self.down, self.enc, strict=True):
            x = enc(down(x))
            skips.append(x)
        skips.pop()
        for i in reversed(range(self.depth)):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        out = self.tail(self.upscale(x))[..., : self.scale * h, : self.scale * w]
        return out + self.upsample(lr) if self.global_residual else out
