"""RRDBNet, ESRGAN's generator: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks", ECCV Workshops 2018.

Defaults: the paper's generator: a 3x3 convolution to 64 features, 23 residual-in-residual
dense blocks (RRDB: three residual dense blocks of five 3x3 convolutions, growth 32,
LeakyReLU 0.2, each dense block's output scaled by 0.2 before its skip, and the RRDB's by
0.2 again), a 3x3 convolution and a global skip, then two x2 steps of nearest-neighbour
upsampling + 3x3 convolution (LeakyReLU 0.2), a 3x3 convolution (LeakyReLU 0.2) and one to
C channels; no batch norm. 16,697,987 parameters at x4 on RGB (the paper's 16.7M).
x2 (Real-ESRGAN's layout): the input is pixel-unshuffled by 2 first (C*4 channels into the
first convolution), so the same x4 body serves. Key names follow the authors' release
(``conv_first``, ``body.<i>.rdb<j>.conv<k>``, ``conv_body``, ``conv_up1``, ``conv_up2``,
``conv_hr``, ``conv_last``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions, (N, F, H, W) -> same shape, ``x + 0.2 * dense(x)``."""

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.conv1 = conv(features, growth)
        self.conv2 = conv(features + growth, growth)
        self.conv3 = conv(features + 2 * growth, growth)
        self.conv4 = conv(features + 3 * growth, growth)
        self.conv5 = conv(features + 4 * growth, features)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        parts = [x]
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4):
            parts.append(self.act(layer(torch.cat(parts, dim=1))))
        return x + 0.2 * self.conv5(torch.cat(parts, dim=1))


class RRDB(nn.Module):
    """Residual in residual dense block, (N, F, H, W) -> same shape, ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(SRNet):
    """RRDBNet (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 4."""

    name = "rrdbnet"
    upsampling = "nearest + conv (x2 steps)"
    paper = "Wang et al., ECCVW 2018 (ESRGAN)"
    published_on_rgb = True
    scales = (2, 4)

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """ESRGAN's release (github.com/xinntao/ESRGAN; BSRGAN and RealSR files too); BasicSR /
        Real-ESRGAN files use our names."""
        return ReleaseFormat(key_map=((r"^RRDB_trunk\.", "body."), (r"\.RDB(\d)\.", r".rdb\1."),
                                      (r"^trunk_conv\.", "conv_body."), (r"^upconv(\d)\.", r"conv_up\1."),
                                      (r"^HRconv\.", "conv_hr.")))

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Ours (BasicSR's, Real-ESRGAN's), ESRGAN's release, and ESRGAN's first ("old arch")
        layout, one flat ``model`` Sequential most community files still come in: ``model.0``
        the first convolution, ``model.1.sub.<i>`` the blocks then the body's convolution,
        ``model.3`` / ``model.6`` the upsampling convolutions, ``model.8`` / ``model.10`` the last two."""
        old = ReleaseFormat(key_map=((r"^model\.0\.", "conv_first."),
                                     (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
                                     (r"^model\.1\.sub\.\d+\.(weight|bias)$", r"conv_body.\1"),
                                     (r"^model\.3\.", "conv_up1."), (r"^model\.6\.", "conv_up2."),
                                     (r"^model\.8\.", "conv_hr."), (r"^model\.10\.", "conv_last.")))
        return {"sr_lightning": ReleaseFormat(), "release": cls.release_format({}), "release (ESRGAN old arch)": old}

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """``conv_first``, ``num_blocks`` RRDBs (``growth`` channels per dense layer), two
        nearest-neighbour x2 steps; x2 files (Real-ESRGAN's) take the input pixel-unshuffled by 2,
        so ``conv_first`` reads 4x the channels ``conv_last`` writes."""
        first, growth, last = (shape(state, k) for k in ("conv_first.weight", "body.0.rdb1.conv1.weight",
                                                         "conv_last.weight"))
        if first is None or growth is None or last is None or "conv_up2.weight" not in state:
            return None
        c = last[0]
        scale = {c: 4, 4 * c: 2}.get(first[1])
        return None if scale is None else {"in_channels": c, "num_features": first[0], "growth": growth[0],
                                           "num_blocks": len(indices(state, r"^body\.(\d+)\.")), "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_blocks: int = 23,
                 growth: int = 32) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.unshuffle = 4 // scale  # x2: the input is pixel-unshuffled by 2, the body works at x4
        self.conv_first = conv(in_channels * self.unshuffle ** 2, num_features)
        self.body = nn.Sequential(*(RRDB(num_features, growth) for _ in range(num_blocks)))
        self.conv_body = conv(num_features, num_features)
        self.conv_up1 = conv(num_features, num_features)
        self.conv_up2 = conv(num_features, num_features)
        self.conv_hr = conv(num_features, num_features)
        self.conv_last = conv(num_features, in_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, lr: Tensor) -> Tensor:
        if self.unshuffle > 1:
            h, w = lr.shape[-2:]
            pad = (0, (-w) % self.unshuffle, 0, (-h) % self.unshuffle)  # odd sizes: pad, crop the output
            lr = F.pixel_unshuffle(F.pad(lr, pad, mode="reflect") if any(pad) else lr, self.unshuffle)
        feat = self.conv_first(lr)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.act(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.act(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.act(self.conv_hr(feat)))
        if self.unshuffle > 1:
            out = out[..., : self.scale * h, : self.scale * w]
        return out
