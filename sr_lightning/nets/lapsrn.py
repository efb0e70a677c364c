"""LapSRN: Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate
Super-Resolution", CVPR 2017; MS-LapSRN: Lai et al., "Fast and Accurate Image
Super-Resolution with Deep Laplacian Pyramid Networks", TPAMI 2018.

Progressive: log2(s) pyramid levels, each doubling the size. A level's feature branch: ``depth``
3x3 convolutions of 64 features (each followed by LeakyReLU 0.2), a 3x3 transposed
convolution doubling the size (LeakyReLU 0.2), and a 3x3 convolution to the level's residual
image; its image branch: a learned 4x4 transposed convolution of the previous level's image
(initialised bilinear). The level's output is the sum, and every level's output is
supervised (:meth:`LapSRN.training_loss`: the Charbonnier loss of the paper, summed over the
levels, each against the HR image downscaled to its size). Input the LR Y channel in [0, 1]
(the authors'); x2, x4, x8.

Defaults: the authors' released LapSRN (MatConvNet, ``weights/lapsrn_official``): depth 10,
3x3 transposed convolutions (cropped by one pixel at the bottom and right, as MatConvNet's
``crop [0 1 0 1]``). Parameters on Y: 407,441 / 814,242 / 1,221,043 at x2 / x4 / x8, of which
812,768 weights at x4: the paper's 812K.

``recursions > 0``: MS-LapSRN, one level's weights shared by every level, its feature branch
``recursions`` times a block of ``depth`` pre-activated convolutions (LeakyReLU 0.2, then the
convolution), each recursion's output added to the level's input (the shared-source local
skip), then LeakyReLU and the transposed convolution. The weights are the same at every
scale, so a file does not say its scale (give ``data.scale``), nor how many recursions
(default 8: D5R8, the paper's 222K weights with ``depth=5``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import indices, shape
from sr_lightning.ops.resize import imresize


def bilinear_kernel(size: int) -> Tensor:
    """(size, size) bilinear interpolation weights of a x2 transposed convolution (size 4)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return (ramp[:, None] * ramp[None, :]).float()


class DoubleSize(nn.ConvTranspose2d):
    """A stride-2 transposed convolution of an odd or even kernel that exactly doubles the
    size, (N, F, h, w) -> (N, F', 2h, 2w): odd kernels cropped one more at the bottom and right
    (MatConvNet's ``crop [p, p+1, p, p+1]``), even ones symmetrically."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True) -> None:
        super().__init__(cin, cout, kernel, stride=2, padding=(kernel - 2) // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return super().forward(x)[..., : 2 * h, : 2 * w]


def leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class LapFeatures(nn.Module):
    """LapSRN's feature branch of one level, (N, F, h, w) -> (N, F, 2h, 2w)."""

    def __init__(self, features: int, depth: int, up_kernel: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(m for _ in range(depth) for m in (conv(features, features), leaky())))
        self.up = DoubleSize(features, features, up_kernel)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.leaky_relu(self.up(self.body(x)), 0.2)


class RecursiveFeatures(nn.Module):
    """MS-LapSRN's feature branch, (N, F, h, w) -> (N, F, 2h, 2w): ``recursions`` passes of one
    pre-activated block, each added to the input, then LeakyReLU and the transposed convolution."""

    def __init__(self, features: int, depth: int, recursions: int, up_kernel: int) -> None:
        super().__init__()
        self.recursions = recursions
        self.body = nn.Sequential(*(m for _ in range(depth) for m in (leaky(), conv(features, features))))
        self.up = DoubleSize(features, features, up_kernel)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for _ in range(self.recursions):
            h = self.body(h) + x
        return self.up(torch.nn.functional.leaky_relu(h, 0.2))


class Level(nn.Module):
    """One pyramid level's weights: its feature branch, the residual convolution (F -> C) and
    the image's x2 transposed convolution (C -> C, 4x4, no bias)."""

    def __init__(self, features: nn.Module, num_features: int, channels: int) -> None:
        super().__init__()
        self.features = features
        self.residual = conv(num_features, channels)
        self.image_up = DoubleSize(channels, channels, 4, bias=False)


class LapSRN(SRNet):
    """LapSRN / MS-LapSRN (N, C, h, w) -> (N, C, s*h, s*w), s in 2, 4, 8."""

    name = "lapsrn"
    scales = (2, 4, 8)
    upsampling = "Laplacian pyramid (transposed convolutions)"
    paper = "Lai et al., CVPR 2017 / TPAMI 2018"

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The head, the levels (one: shared, MS-LapSRN), the depth of a level's body and its
        transposed convolution's kernel."""
        head, up = shape(state, "head.weight"), shape(state, "levels.0.features.up.weight")
        if head is None or up is None:
            return None
        recursive = "levels.0.features.body.1.weight" in state
        convs = indices(state, r"^levels\.0\.features\.body\.(\d+)\.weight$")
        found = {"in_channels": head[1], "num_features": head[0], "depth": len(convs), "up_kernel": up[-1]}
        if recursive:  # MS-LapSRN: the scale and the recursions are not in the weights
            return {**found, "recursions": 8}
        levels = len(indices(state, r"^levels\.(\d+)\."))
        return {**found, "scale": 2 ** levels}

    def __init__(self, *, scale: int = 4, in_channels: int = 1, num_features: int = 64, depth: int = 10,
                 recursions: int = 0, up_kernel: int = 3) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if recursions < 0 or depth < 1 or up_kernel not in (3, 4, 5):
            raise UserError(f"lapsrn: depth={depth} must be >= 1, recursions={recursions} >= 0 (0: LapSRN) and "
                            f"up_kernel={up_kernel} one of 3, 4, 5")
        self.num_levels = int(math.log2(scale))
        self.recursions = recursions
        self.head = conv(in_channels, num_features)

        def level() -> Level:
            features = (RecursiveFeatures(num_features, depth, recursions, up_kernel) if recursions
                        else LapFeatures(num_features, depth, up_kernel))
            return Level(features, num_features, in_channels)

        self.levels = nn.ModuleList(level() for _ in range(1 if recursions else self.num_levels))
        for module in self.levels.modules():
            if isinstance(module, DoubleSize) and module.bias is None:
                with torch.no_grad():
                    module.weight.copy_(torch.eye(in_channels)[:, :, None, None] * bilinear_kernel(4))

    def pyramid(self, lr: Tensor) -> list[Tensor]:
        """Every level's output, (N, C, 2^l h, 2^l w) for l = 1 .. log2(s); the last is the answer."""
        features = self.head(lr)
        if not self.recursions:  # LapSRN activates the first features; MS-LapSRN's blocks do
            features = torch.nn.functional.leaky_relu(features, 0.2)
        image, outputs = lr, []
        for step in range(self.num_levels):
            level = self.levels[0 if self.recursions else step]
            features = level.features(features)
            image = level.image_up(image) + level.residual(features)
            outputs.append(image)
        return outputs

    def forward(self, lr: Tensor) -> Tensor:
        return self.pyramid(lr)[-1]

    def training_loss(self, lr: Tensor, hr: Tensor, criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """The sum over the levels of ``criterion`` between each level's output and the HR image
        downscaled to its size (MATLAB bicubic, as the authors made their targets)."""
        outputs = self.pyramid(lr)
        return sum((criterion(out.float(), hr if out.shape[-2:] == hr.shape[-2:] else
                              imresize(hr, 2 ** (step + 1) / 2 ** self.num_levels))
                    for step, out in enumerate(outputs)), torch.zeros((), device=hr.device))
