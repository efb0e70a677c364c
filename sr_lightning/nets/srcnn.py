"""SRCNN: Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks",
TPAMI 2016 (ECCV 2014).

Defaults: the 9-5-5 network with 64 and 32 features (57 k parameters for one channel),
ReLU after the first two layers, on the bicubic upscale of the input. The authors' test
code filters with 'same' size and replicated borders, hence ``padding_mode="replicate"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import PreUpsampleNet
from sr_lightning.nets.release_format import indices, shape

PADDING_MODES = ("zeros", "replicate")


class SRCNN(PreUpsampleNet):
    """SRCNN (N, C, h, w) -> (N, C, s*h, s*w): three convolutions on the bicubic upscale."""

    name = "srcnn"
    paper = "Dong et al., TPAMI 2016"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Three convolutions (``body.0/2/4``), the last back to the input's channels; the
        scale is not in the weights (they refine a bicubic upscale)."""
        if indices(state, r"^body\.(\d+)\.") != [0, 2, 4] or len(state) != 6:
            return None
        (f1, c, k1, _), (f2, _, k2, _), (c_out, _, k3, _) = (shape(state, f"body.{i}.weight") for i in (0, 2, 4))
        if c_out != c:
            return None
        return {"in_channels": c, "kernel_sizes": [k1, k2, k3], "num_features": [f1, f2]}

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        kernel_sizes: tuple[int, int, int] = (9, 5, 5),
        num_features: tuple[int, int] = (64, 32),
        padding_mode: str = "replicate",
        upsample_border: str = "clamp",
    ) -> None:
        super().__init__(scale=scale, in_channels=in_channels, upsample_border=upsample_border)
        if len(kernel_sizes) != 3 or any(k % 2 == 0 or k < 1 for k in kernel_sizes):
            raise UserError(f"srcnn: kernel_sizes={list(kernel_sizes)} must be three odd sizes, e.g. [9, 5, 5]")
        if len(num_features) != 2:
            raise UserError(f"srcnn: num_features={list(num_features)} must be two widths, e.g. [64, 32]")
        if padding_mode not in PADDING_MODES:
            raise UserError(f"srcnn: padding_mode={padding_mode!r} is not one of {PADDING_MODES}")
        widths = [in_channels, *num_features, in_channels]
        layers: list[nn.Module] = []
        for i, k in enumerate(kernel_sizes):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2, padding_mode=padding_mode))
            if i < 2:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(self.upsample(lr))
