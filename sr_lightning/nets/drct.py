"""DRCT: Hsu, Lee, Chou, "DRCT: Saving Image Super-Resolution away from Information
Bottleneck", CVPR Workshops 2024 (NTIRE).

SwinIR's frame (a 3x3 convolution, residual groups, LayerNorm, a 3x3 convolution with a
global skip, the classical pixel-shuffle upsampler; the DIV2K mean subtracted) with
residual dense groups (RDG) for SwinIR's groups: five Swin layers densely connected, the
k-th reading the group's input and the k-1 growths before it (``dim + (k-1) * gc``
channels, ``heads - (dim + (k-1) * gc) % heads`` heads, windows shifted on the 2nd and
4th, MLP ratio 1 on the 4th and 5th), each followed by a 1x1 convolution to ``gc``
channels (LeakyReLU 0.2) and the 5th by one back to ``dim``; the group's output is
``x + 0.2 * that``. Defaults: DRCT (180 features, 6 groups, 6 heads, 16x16 windows, MLP
ratio 2, growth 32); ``drct_l``: 12 groups. ``depths`` sets only the number of groups and
the stochastic depth schedule (every group has its five layers; the authors' configs
give 6 per group). Parameters on RGB at x4: DRCT 14,139,579, DRCT-L 27,580,719 (the
paper's 14.1M and 27.6M).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale
from sr_lightning.nets.swinir import SWIN_DERIVED, SWIN_KEYS, SWIN_UPSAMPLER_KEYS, SwinIR, SwinLayer

LAYERS = 5


class RDG(nn.Module):
    """Residual dense group of five Swin layers, (N, H*W, dim) tokens -> same shape."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, drop_path: float, gc: int) -> None:
        super().__init__()
        for k in range(LAYERS):
            width = dim + k * gc
            setattr(self, f"swin{k + 1}", SwinLayer(width, heads - width % heads, window, window // 2 * (k % 2),
                                                    mlp_ratio if k < 3 else 1.0, drop_path))
            setattr(self, f"adjust{k + 1}", nn.Conv2d(width, gc if k < LAYERS - 1 else dim, 1))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n = x.shape[0]
        feats = [x]
        for k in range(1, LAYERS + 1):
            y = getattr(self, f"swin{k}")(torch.cat(feats, dim=-1), size)
            y = getattr(self, f"adjust{k}")(y.transpose(1, 2).reshape(n, -1, *size)).flatten(2).transpose(1, 2)
            feats.append(F.leaky_relu(y, 0.2) if k < LAYERS else y)
        return x + 0.2 * feats[-1]


class DRCT(SwinIR):
    """DRCT (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "drct"
    paper = "Hsu et al., CVPRW 2024"

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/ming053l/DRCT): SwinIR's layer and upsampler names."""
        return ReleaseFormat(key_map=(*SWIN_KEYS, *SWIN_UPSAMPLER_KEYS), derived=SWIN_DERIVED)

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Ours and the authors' release."""
        return {"sr_lightning": ReleaseFormat(), "release": cls.release_format({})}

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, groups, heads and window (the first layers' bias tables), MLP ratio, growth,
        and the pixel-shuffle upsampler's width and scale; 6 layers per group for ``depths``."""
        first = shape(state, "conv_first.weight")
        table = shape(state, "layers.0.swin1.attn.relative_position_bias_table")
        mlp, gc, up = (shape(state, k) for k in ("layers.0.swin1.mlp.0.weight", "layers.0.adjust1.weight",
                                                 "upsample.0.weight"))
        steps = indices(state, r"^upsample\.2\.(\d+)\.weight")
        if first is None or table is None or mlp is None or gc is None or up is None or not steps:
            return None
        groups = indices(state, r"^layers\.(\d+)\.swin1\.")
        scale = shuffle_scale(shape(state, "upsample.2.0.weight")[0], up[0], len(steps))
        heads = [shape(state, f"layers.{g}.swin1.attn.relative_position_bias_table")[1] for g in groups]
        return None if scale is None else {
            "in_channels": first[1], "embed_dim": first[0], "depths": [6] * len(groups), "num_heads": heads,
            "window_size": (round(table[0] ** 0.5) + 1) // 2, "mlp_ratio": mlp[0] / first[0], "gc": gc[0],
            "num_features": up[0], "scale": scale}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 16, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1, gc: int = 32,
                 num_features: int = 64, rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        for h in num_heads:
            if any((embed_dim + k * gc) % (h - (embed_dim + k * gc) % h) for k in range(LAYERS)):
                raise UserError(f"drct: embed_dim={embed_dim} + k * gc={gc} must split into the heads each layer "
                                f"gets from num_heads={h} (the paper's 180, 32, 6 do)")
        self.gc = gc  # read by residual_group while SwinIR.__init__ builds the groups
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                         drop_path_rate=drop_path_rate, upsampler="pixelshuffle", num_features=num_features,
                         rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """One RDG; its layers share the group's first stochastic-depth rate (as the authors' do)."""
        return RDG(dim, heads, self.window, mlp_ratio, drop_paths[0] if drop_paths else 0.0, self.gc)
