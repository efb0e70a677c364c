"""CARN and CARN-M: Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with
Cascading Residual Network", ECCV 2018.

Defaults: the paper's CARN: the DIV2K mean subtracted, a 3x3 convolution to 64 features,
three cascading blocks, each output concatenated with everything before it and fused by a
1x1 convolution (+ ReLU) after every block (global cascading), pixel-shuffle upsampling
(3x3 convolution + ReLU + shuffle per x2 step, one x3 step) and a 3x3 convolution to RGB,
the mean added back. A cascading block does the same inside with three residual blocks
(3x3, ReLU, 3x3, plus the input, ReLU; local cascading).

CARN-M (``efficient=True``, ``groups=4``): each block's three residual units are one
efficient residual block used three times (its weights shared): a 3x3 group convolution,
ReLU, another, ReLU, a 1x1, plus the input, ReLU; the upsampler's convolutions are grouped too.

``multi_scale``: the released models carry x2, x3 and x4 upsamplers (``upsample.up2`` ...)
beside one body, trained together; the network runs the one of its ``scale``, so a file does
not say which (give ``data.scale``). Parameters (RGB, multi-scale, as the authors' code builds
them without its frozen mean shifts): CARN 1,591,939, the paper's 1,592K; CARN-M 414,787, the
paper's 412K (2.8K fewer: unexplained). The names
are the authors' (nmhkahn/CARN-pytorch), their frozen mean-shift convolutions derived.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, conv, mean_shift, shuffle_steps
from sr_lightning.nets.release_format import ReleaseFormat, shape

MULTI_SCALES = (2, 3, 4)


class Fusion(nn.Module):
    """A 1x1 convolution + ReLU under the authors' name ``body``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ResidualUnit(nn.Module):
    """CARN's residual block (``efficient=False``) or CARN-M's efficient one, (N, F, H, W) -> same."""

    def __init__(self, features: int, efficient: bool, groups: int) -> None:
        super().__init__()
        if efficient:
            self.body = nn.Sequential(nn.Conv2d(features, features, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                                      nn.Conv2d(features, features, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                                      nn.Conv2d(features, features, 1))
        else:
            self.body = nn.Sequential(conv(features, features), nn.ReLU(inplace=True), conv(features, features))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + x)


def cascade(x: Tensor, units: list[nn.Module], fusions: list[nn.Module]) -> Tensor:
    """The cascading connection: after each unit, everything so far concatenated and fused."""
    cat, out = x, x
    for unit, fuse in zip(units, fusions, strict=True):
        cat = torch.cat([cat, unit(out)], dim=1)
        out = fuse(cat)
    return out


class CascadingBlock(nn.Module):
    """Three residual units (one shared, CARN-M) in a local cascade, (N, F, H, W) -> same."""

    def __init__(self, features: int, efficient: bool, groups: int) -> None:
        super().__init__()
        self.efficient = efficient
        for i in (1, 2, 3) if not efficient else (1,):
            setattr(self, f"b{i}", ResidualUnit(features, efficient, groups))
        for i in (1, 2, 3):
            setattr(self, f"c{i}", Fusion(features * (i + 1), features))

    def forward(self, x: Tensor) -> Tensor:
        units = [self.b1] * 3 if self.efficient else [self.b1, self.b2, self.b3]
        return cascade(x, units, [self.c1, self.c2, self.c3])


class Upsampler(nn.Module):
    """Pixel-shuffle steps (a 3x3 convolution to F*r^2, ReLU, shuffle each), under ``body``."""

    def __init__(self, features: int, scale: int, groups: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for r in shuffle_steps(scale):
            layers += [nn.Conv2d(features, features * r * r, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                       nn.PixelShuffle(r)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CARN(SRNet):
    """CARN / CARN-M (N, 3, h, w) -> (N, 3, s*h, s*w), s in 2, 3, 4 (and 8 single-scale)."""

    name = "carn"
    upsampling = "pixel shuffle"
    paper = "Ahn et al., ECCV 2018"
    published_on_rgb = True

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (nmhkahn/CARN-pytorch): our names, plus their frozen mean-shift
        convolutions (``sub_mean.shifter``, ``add_mean.shifter``), which this network computes."""
        return ReleaseFormat(derived=(r"^(sub|add)_mean\.shifter\.",))

    def release_derived(self, key: str) -> Tensor | None:
        sign = {"sub_mean": -1.0, "add_mean": 1.0}.get(key.split(".")[0])
        if sign is None:
            return None
        if key.endswith(".weight"):
            return torch.eye(3).view(3, 3, 1, 1)
        return sign * self.mean.reshape(3)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The entry convolution, whether the blocks' units are efficient (one shared, grouped)
        and the upsampler(s): x2/x3/x4 branches (multi-scale: the scale is not in the weights)
        or one, its scale read off its steps."""
        entry = shape(state, "entry.weight")
        if entry is None or "b1.c1.body.0.weight" not in state:
            return None
        efficient = "b1.b2.body.0.weight" not in state
        unit = shape(state, "b1.b1.body.0.weight")
        groups = entry[0] // unit[1] if unit else 1
        found = {"in_channels": entry[1], "num_features": entry[0], "efficient": efficient, "groups": groups}
        if "upsample.up2.body.0.weight" in state:
            return {**found, "multi_scale": True}
        steps = [k for k in state if k.startswith("upsample.up.body.") and k.endswith(".weight")]
        first = shape(state, "upsample.up.body.0.weight")
        if not steps or first is None:
            return None
        scale = 3 if first[0] == 9 * entry[0] else 2 ** len(steps)
        return {**found, "multi_scale": False, "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, efficient: bool = False,
                 groups: int = 1, multi_scale: bool = True, rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN
                 ) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if multi_scale and scale not in MULTI_SCALES:
            raise UserError(f"carn: multi_scale=true carries x2, x3 and x4 upsamplers, not x{scale}: set "
                            f"model.multi_scale=false for x{scale}")
        if num_features % groups:
            raise UserError(f"carn: groups={groups} must divide num_features={num_features}")
        self.multi_scale = multi_scale
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.entry = conv(in_channels, num_features)
        for i in (1, 2, 3):
            setattr(self, f"b{i}", CascadingBlock(num_features, efficient, groups))
            setattr(self, f"c{i}", Fusion(num_features * (i + 1), num_features))
        self.upsample = nn.Module()
        for s in MULTI_SCALES if multi_scale else (scale,):
            setattr(self.upsample, f"up{s}" if multi_scale else "up", Upsampler(num_features, s, groups))
        self.exit = conv(num_features, in_channels)

    @contextmanager
    def at_scale(self, scale: int) -> Iterator[None]:
        """A multi-scale CARN runs at x2, x3 and x4 (one upsampler each: the authors' training
        picks a scale per batch, ``data.train_scales=[2,3,4]``); a single-scale one at its own."""
        if not self.multi_scale or scale == self.scale:
            with super().at_scale(scale):
                yield
            return
        if scale not in MULTI_SCALES:
            raise UserError(f"carn: a multi-scale CARN runs at x2, x3 and x4, not x{scale}")
        saved, self.scale = self.scale, int(scale)
        try:
            yield
        finally:
            self.scale = saved

    def forward(self, lr: Tensor) -> Tensor:
        x = self.entry(lr - self.mean)
        x = cascade(x, [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])
        up = getattr(self.upsample, f"up{self.scale}" if self.multi_scale else "up")
        return self.exit(up(x)) + self.mean
