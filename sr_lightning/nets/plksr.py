"""PLKSR and RealPLKSR: Lee, Yoon, Kim, Kim, Lee, "Partial Large Kernel CNNs for Efficient
Super-Resolution", arXiv 2404.11848, 2024 (PLKSR); RealPLKSR is the community's real-world
variant of it (neosr, github.com/muslll/neosr), in which many OpenModelDB models come.

PLKSR defaults (the paper's): a 3x3 convolution to 64 features, 28 PLK blocks, a 3x3
convolution to C*s^2 channels plus the input repeated s^2 times (after the pixel shuffle:
the nearest-neighbour upscale), one pixel shuffle. A PLK block: a channel mixer (DCCM: 3x3
to 2x the channels, GELU, 3x3 back; CCM: 3x3 then 1x1; ICCM: 1x1 then 3x3), a 17x17
convolution of the first quarter of the channels (the others pass), element-wise
attention (``x * sigmoid(conv3x3(x))``), a 1x1 refinement and a skip. PLKSR-tiny: 12
blocks, 13x13 kernels, no attention. RealPLKSR: Mish in the DCCM, a GroupNorm (4 groups)
after the refinement, and a dropout (2D, off in evaluation) before the last convolution.
Parameters on RGB at x2 / x3 / x4, as the authors' code counts them: PLKSR 7,365,324 /
7,373,979 / 7,386,096, PLKSR-tiny 2,349,772 / 2,358,427 / 2,370,544, RealPLKSR 7,368,908 /
7,377,563 / 7,389,680. Left: RealPLKSR's DySample upsampler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale

# Channel mixers: the kernel sizes of their two convolutions (to 2x the channels and back).
MIXERS = {"DCCM": (3, 3), "CCM": (3, 1), "ICCM": (1, 3)}


class PartialConv(nn.Module):
    """A large-kernel convolution of the first ``channels`` channels; the rest pass unchanged;
    (N, F, H, W) -> same shape."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = conv(channels, channels, kernel)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((self.conv(x[:, : self.channels]), x[:, self.channels:]), dim=1)


class ElementAttention(nn.Module):
    """``x * sigmoid(conv3x3(x))``, (N, F, H, W) -> same shape."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f = nn.Sequential(conv(dim, dim), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.f(x)


class PLKBlock(nn.Module):
    """Channel mixer, partial large-kernel convolution, element-wise attention (optional),
    1x1 refinement, GroupNorm (RealPLKSR) and a skip; (N, F, H, W) -> same shape."""

    def __init__(self, dim: int, mixer: str, kernel: int, split_ratio: float, use_ea: bool,
                 activation: type[nn.Module], norm_groups: int | None) -> None:
        super().__init__()
        first, second = MIXERS[mixer]
        self.channel_mixer = nn.Sequential(conv(dim, 2 * dim, first), activation(), conv(2 * dim, dim, second))
        self.lk = PartialConv(int(dim * split_ratio), kernel)
        self.attn = ElementAttention(dim) if use_ea else nn.Identity()
        self.refine = conv(dim, dim, 1)
        self.norm = nn.GroupNorm(norm_groups, dim) if norm_groups else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm(self.refine(self.attn(self.lk(self.channel_mixer(x)))))


class PLKSR(SRNet):
    """PLKSR (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "plksr"
    upsampling = "pixel shuffle (one step) + nearest"
    paper = "Lee et al., arXiv 2024"
    published_on_rgb = True
    # RealPLKSR: Mish, GroupNorm, a dropout before the last convolution.
    real = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/dslisleedh/PLKSR) spells the mixer ``channe_mixer``."""
        return ReleaseFormat(key_map=((r"\.channe_mixer\.", ".channel_mixer."),))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, depth, kernel, split, mixer and attention from the blocks' shapes; the scale
        from the last convolution's C*s^2 outputs; GroupNorm weights mark RealPLKSR."""
        blocks = indices(state, r"^feats\.(\d+)\.refine\.weight$")
        first, lk = shape(state, "feats.0.weight"), shape(state, "feats.1.lk.conv.weight")
        mix = (shape(state, "feats.1.channel_mixer.0.weight"), shape(state, "feats.1.channel_mixer.2.weight"))
        if not blocks or first is None or lk is None or None in mix or ("feats.1.norm.weight" in state) != cls.real:
            return None
        last = shape(state, f"feats.{blocks[-1] + (2 if cls.real else 1)}.weight")
        mixer = next((m for m, k in MIXERS.items() if k == (mix[0][-1], mix[1][-1])), None)
        scale = shuffle_scale(last[0], first[1]) if last is not None else None
        if scale is None or mixer is None:
            return None
        return {"in_channels": first[1], "num_features": first[0], "num_blocks": len(blocks), "scale": scale,
                "kernel_size": lk[-1], "split_ratio": lk[0] / first[0], "use_ea": "feats.1.attn.f.0.weight" in state,
                **({} if cls.real else {"mixer": mixer})}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_blocks: int = 28,
                 kernel_size: int = 17, split_ratio: float = 0.25, mixer: str = "DCCM", use_ea: bool = True,
                 norm_groups: int = 4, dropout: float = 0.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if mixer not in MIXERS or kernel_size % 2 == 0 or not 0 < int(num_features * split_ratio) <= num_features:
            raise UserError(f"{self.name}: mixer={mixer!r} must be one of {', '.join(MIXERS)}, kernel_size="
                            f"{kernel_size} odd, and num_features * split_ratio ({num_features} x {split_ratio}) "
                            f"between 1 and num_features")
        if self.real and num_features % norm_groups:
            raise UserError(f"{self.name}: num_features={num_features} must be divisible by norm_groups={norm_groups}")
        activation, groups = (nn.Mish, norm_groups) if self.real else (nn.GELU, None)
        blocks = [PLKBlock(num_features, mixer, kernel_size, split_ratio, use_ea, activation, groups)
                  for _ in range(num_blocks)]
        tail = [nn.Dropout2d(dropout)] if self.real else []
        self.feats = nn.Sequential(conv(in_channels, num_features), *blocks, *tail,
                                   conv(num_features, in_channels * scale * scale))

    def forward(self, lr: Tensor) -> Tensor:
        return F.pixel_shuffle(self.feats(lr) + lr.repeat_interleave(self.scale ** 2, dim=1), self.scale)


class RealPLKSR(PLKSR):
    """RealPLKSR (N, C, h, w) -> (N, C, s*h, s*w): PLKSR with Mish, GroupNorm and dropout."""

    name = "realplksr"
    paper = "neosr (after Lee et al., arXiv 2024)"
    real = True
    tiles_exactly = False  # GroupNorm normalises over the whole image

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """neosr's layout is ours."""
        return ReleaseFormat()

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_blocks: int = 28,
                 kernel_size: int = 17, split_ratio: float = 0.25, use_ea: bool = True, norm_groups: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels, num_features=num_features, num_blocks=num_blocks,
                         kernel_size=kernel_size, split_ratio=split_ratio, mixer="DCCM", use_ea=use_ea,
                         norm_groups=norm_groups, dropout=dropout)
