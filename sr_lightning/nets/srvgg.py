"""SRVGGNetCompact: the compact network of Real-ESRGAN's releases (Wang, Xie, Dong, Shan,
"Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCV
Workshops 2021; the compact model is the repository's, github.com/xinntao/Real-ESRGAN).

Defaults: ``realesr-general-x4v3``: a 3x3 convolution to 64 features, 32 more 3x3
convolutions, each convolution followed by a per-channel PReLU, a 3x3 convolution to
C*s^2 channels and one pixel shuffle, plus the nearest-neighbour upscale of the input
(the network learns the residual over it); nothing at HR resolution. ``num_convs=16`` is
``realesr-animevideov3``. Key names follow the release: ``body.<i>``, convolutions at even
indices, PReLUs at odd ones. 1,212,795 parameters at x4 on RGB with 32 convolutions
(``realesr-general-x4v3``), 621,424 with 16 (``realesr-animevideov3``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import indices, shape, shuffle_scale


class SRVGGNetCompact(SRNet):
    """SRVGGNetCompact (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "srvggnet"
    upsampling = "pixel shuffle (one step) + nearest"
    paper = "Wang et al., ICCVW 2021 (Real-ESRGAN, compact)"
    published_on_rgb = True

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width and channels from the first convolution, the depth from the count of
        ``body`` layers, the scale from the last convolution's C*s^2 outputs."""
        layers = indices(state, r"^body\.(\d+)\.")
        first, act = shape(state, "body.0.weight"), shape(state, "body.1.weight")
        if not layers or first is None or act is None or len(act) != 1 or layers != list(range(len(layers))):
            return None
        last = shape(state, f"body.{layers[-1]}.weight")
        scale = shuffle_scale(last[0], first[1]) if last is not None and len(last) == 4 else None
        return None if scale is None else {"in_channels": first[1], "num_features": first[0],
                                           "num_convs": len(layers) // 2 - 1, "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_convs: int = 32) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        layers: list[nn.Module] = []
        for cin in (in_channels, *([num_features] * num_convs)):
            layers += [conv(cin, num_features), nn.PReLU(num_features)]
        self.body = nn.Sequential(*layers, conv(num_features, in_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(lr) + F.interpolate(lr, scale_factor=self.scale, mode="nearest")
