"""Building blocks shared by several networks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError

# The mean RGB of DIV2K's training images (in [0, 1]), which EDSR and WDSR subtract.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def mean_shift(rgb_mean: Sequence[float] | None, in_channels: int) -> torch.Tensor:
    """(1, C, 1, 1) mean to subtract from the input and add to the output: ``rgb_mean`` for
    RGB, zeros for one channel or when None."""
    if rgb_mean is not None and in_channels == 3 and len(rgb_mean) != 3:
        raise UserError(f"rgb_mean={list(rgb_mean)} must have three values (R, G, B) or be null")
    mean = list(rgb_mean) if (rgb_mean is not None and in_channels == 3) else [0.0] * in_channels
    return torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)


def conv(cin: int, cout: int, kernel: int = 3) -> nn.Conv2d:
    """A ``kernel`` x ``kernel`` convolution with 'same' zero padding (odd kernels)."""
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation of channels, (N, F, H, W) -> same shape: a per-channel statistic
    over H, W, a 1x1 squeeze to F/``reduction`` channels, ReLU, 1x1, sigmoid, times the input.

    ``statistic``: ``mean`` (global average pooling: RCAN) or ``contrast`` (population
    standard deviation + mean: IMDN's contrast-aware attention).
    """

    def __init__(self, features: int, reduction: int = 16, statistic: str = "mean") -> None:
        super().__init__()
        if statistic not in ("mean", "contrast"):
            raise UserError(f"channel attention statistic={statistic!r} is not 'mean' or 'contrast'")
        self.statistic = statistic
        self.excite = nn.Sequential(conv(features, features // reduction, 1), nn.ReLU(inplace=True),
                                    conv(features // reduction, features, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        if self.statistic == "contrast":
            mean = mean + (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.excite(mean)


def shuffle_steps(scale: int) -> list[int]:
    """The pixel-shuffle factors for ``scale``: [3] for x3, [2, 2, ...] for powers of 2."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    raise UserError(f"a step-wise pixel-shuffle upsampler does x3 or powers of 2, not x{scale}")


class ScaledResidual(nn.Module):
    """``x + res_scale * body(x)``: the residual block of EDSR, WDSR and SRResNet (their
    ``body`` differs: plain, wide-activation with weight norm, batch-normed)."""

    def __init__(self, body: nn.Module, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body, self.res_scale = body, res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling by ``scale`` in x2 steps (or one x3 step), (N, F, h, w) ->
    (N, F, s*h, s*w): a 3x3 convolution to F*r^2 channels and a pixel shuffle per step,
    each followed by ``activation()`` when given (SRResNet: PReLU; EDSR: none). ``width``:
    the channels after the first shuffle when not F (RDN: its growth rate), (N, width, s*h, s*w)."""

    def __init__(self, features: int, scale: int, activation: Callable[[], nn.Module] | None = None,
                 width: int | None = None) -> None:
        layers: list[nn.Module] = []
        cin, width = features, width or features
        for r in shuffle_steps(scale):
            layers += [nn.Conv2d(cin, width * r * r, 3, padding=1), nn.PixelShuffle(r)]
            cin = width
            if activation is not None:
                layers.append(activation())
        super().__init__(*layers)


class NearestConvUpsampler(nn.Module):
    """Upsampling with fewer checkerboard artefacts than pixel shuffle ("nearest+conv", the
    real-world models'), (N, F, h, w) -> (N, F, s*h, s*w) for s in 2, 4: per x2 step a
    nearest-neighbour upscale and a 3x3 convolution (``conv_up1``, ``conv_up2``), then a
    3x3 convolution at HR (``conv_hr``), each followed by LeakyReLU 0.2."""

    def __init__(self, features: int, scale: int) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise UserError(f"the nearest+conv upsampler does x2 and x4, not x{scale}")
        self.conv_up1 = conv(features, features)
        if scale == 4:
            self.conv_up2 = conv(features, features)
        self.conv_hr = conv(features, features)

    def forward(self, x: Tensor) -> Tensor:
        for name in ("conv_up1", "conv_up2"):
            if hasattr(self, name):
                x = F.leaky_relu(getattr(self, name)(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
        return F.leaky_relu(self.conv_hr(x), 0.2)


class GatedFFN(nn.Module):
    """Gated depthwise FFN (Restormer's; CRAFT, DITN, Omni-SR): 1x1 to 2 x hidden (hidden =
    dim x expansion), depthwise 3x3, ``gelu(a) * b`` of the halves, 1x1 back; no biases;
    (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


MIN_ESA_SIDE = 15  # a 3x3 stride-2 convolution without padding, then a 7x7 max pool


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet's, as RFDN and RLFN use it), (N, F, H, W) -> same
    shape: a 1x1 squeeze to ``channels``, a strided 3x3 (no padding) and a 7x7 / 3 max pool,
    3x3 convolutions at that coarse size, a bilinear upscale back, plus a 1x1 of the squeezed
    features, a 1x1 expansion to F and a sigmoid mask times the input.

    ``full``: RFDN's three coarse convolutions (``conv_max``, ReLU, ``conv3``, ReLU,
    ``conv3_``); False: RLFN's and Omni-SR's one (``conv3``, no activation). Names are the
    authors'. A map under 15 pixels a side (the least the strided convolution and the pooling
    take; the authors' code stops there) is zero-padded to 15 for the mask, which is cropped.
    """

    def __init__(self, features: int, channels: int, full: bool = True) -> None:
        super().__init__()
        self.full = full
        self.conv1 = nn.Conv2d(features, channels, 1)
        self.conv_f = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2)
        if full:
            self.conv_max = conv(channels, channels)
        self.conv3 = conv(channels, channels)
        if full:
            self.conv3_ = conv(channels, channels)
        self.conv4 = nn.Conv2d(channels, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, max(0, MIN_ESA_SIDE - w), 0, max(0, MIN_ESA_SIDE - h)))
        squeezed = self.conv1(padded)
        coarse = F.max_pool2d(self.conv2(squeezed), kernel_size=7, stride=3)
        if self.full:
            coarse = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(coarse)))))
        else:
            coarse = self.conv3(coarse)
        coarse = F.interpolate(coarse, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(squeezed)))[..., :h, :w]
