"""RGT: Chen, Zhang, Gu, Kong, Yang, "Recursive Generalization Transformer for Image
Super-Resolution", ICLR 2024.

DAT's frame and spatial-gate FFN, with blocks alternating local window attention (even
blocks: DAT's rectangular windows on the channel halves, shifted by DAT's rule, plus a
depthwise convolution of the values) and recursive-generalization self-attention (odd
blocks: the map is reduced by a shared strided 4x4 depthwise convolution applied t times
(t = max(log4(H/16), log4(W/16)), at least 2, in evaluation; log4 of H/4 in training), a
depthwise 3x3, a 1x1 to ``c_ratio`` of the channels, LayerNorm and GELU give the keys and
values all queries attend to; the values get a depthwise positional convolution), and a
layer scale (``x + gamma * input``, gamma from 1e-4) after each block. Defaults: RGT (180
features, 8 groups of 6 blocks, 6 heads, 8 x 32 windows, MLP ratio 2, c_ratio 0.5);
``rgt_s``: 6 groups. Inputs under 16 pixels a side (which the reduction cannot take; the
authors' code stops there) are mirror-padded to 16 and the output cropped. Parameters on RGB
at x4 as the authors' code builds them: RGT 13,365,543, RGT-S 10,198,767 (the paper's 13.37M
and 10.20M).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN
from sr_lightning.nets.dat import DAT, SGFN, RectWindowAttention, shifted
from sr_lightning.nets.release_format import indices, shape
from sr_lightning.nets.swinir import RSTB, DropPath

MIN_SIDE = 16  # the recursive reduction divides the map by 16 at least in evaluation


class LocalAttention(RectWindowAttention):
    """RGT's (and CRAFT's) local self-attention: the windows' output plus a depthwise 3x3 of the values."""

    def __init__(self, dim: int, heads: int, split: tuple[int, int], shifted: bool, qkv_bias: bool,
                 masked: bool = True) -> None:
        super().__init__(dim, heads, split, shifted, qkv_bias, masked)
        self.get_v = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def combine(self, attended: Tensor, v: Tensor) -> Tensor:
        return attended + self.get_v(v).flatten(2).transpose(1, 2)


class RecursiveAttention(nn.Module):
    """Recursive-generalization self-attention, (N, H*W, C) -> same shape."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, c_ratio: float) -> None:
        super().__init__()
        self.heads, self.cr = heads, int(dim * c_ratio)
        self.scale = (dim // heads * c_ratio) ** -0.5
        self.reduction1 = nn.Conv2d(dim, dim, 4, stride=4, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.conv = nn.Conv2d(dim, self.cr, 1)
        self.norm_act = nn.Sequential(nn.LayerNorm(self.cr), nn.GELU())
        self.q = nn.Linear(dim, self.cr, bias=qkv_bias)
        self.k = nn.Linear(self.cr, self.cr, bias=qkv_bias)
        self.v = nn.Linear(self.cr, dim, bias=qkv_bias)
        self.cpe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def reductions(self, h: int, w: int) -> int:
        """How many times the map is reduced by 4 (the authors' rule; sides under 4 (training)
        or 16 (evaluation) count as 1 where their logarithm would fail)."""
        side = 4 if self.training else 16
        times = max(int(math.log(max(h // side, 1), 4)), int(math.log(max(w // side, 1), 4)))
        return times if self.training else max(times, 2)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        n, length, c = x.shape
        reduced = x.transpose(1, 2).reshape(n, c, h, w)
        times = self.reductions(h, w)
        for _ in range(times):
            reduced = self.reduction1(reduced)
        reduced = self.norm_act(self.conv(self.dwconv(reduced)).flatten(2).transpose(1, 2))  # (N, N', C')
        d = self.cr // self.heads
        q = self.q(x).reshape(n, length, self.heads, d).transpose(1, 2)
        k = self.k(reduced).reshape(n, -1, self.heads, d).transpose(1, 2)
        v = self.v(reduced).reshape(n, -1, self.heads, c // self.heads).transpose(1, 2)  # (N, heads, N', C/heads)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        rh, rw = h // 4 ** times, w // 4 ** times
        v_map = v.transpose(1, 2).reshape(n, -1, c).transpose(1, 2).reshape(n, c, rh, rw)
        v = v + self.cpe(v_map).reshape(n, self.heads, c // self.heads, -1).transpose(-1, -2)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, length, c))


class RGTBlock(nn.Module):
    """Pre-normed attention and SGFN with skips, plus the layer-scaled input; (N, H*W, C) -> same."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim), attn, nn.LayerNorm(dim)
        self.mlp = SGFN(dim, int(dim * mlp_ratio))
        self.gamma = nn.Parameter(torch.full((dim,), 1e-4))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        y = x + self.drop_path(self.attn(self.norm1(x), size))
        y = y + self.drop_path(self.mlp(self.norm2(y), size))
        return y + x * self.gamma


class RGT(DAT):
    """RGT (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "rgt"
    paper = "Chen et al., ICLR 2024"
    ffn = "mlp"

    @classmethod
    def release_formats(cls) -> dict[str, Any]:
        """Ours and the authors' release (DAT's layout: github.com/zhengchen1999/RGT)."""
        return {"sr_lightning": DAT.release_formats()["sr_lightning"], "release": cls.release_format({})}

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, each group's blocks and heads, MLP ratio and c_ratio (the reduction's
        width); the windows from a release's index table (as DAT's), else the config's."""
        first, gamma = shape(state, "conv_first.weight"), shape(state, "layers.0.layers.0.gamma")
        cr, up = shape(state, "layers.0.layers.1.attn.conv.weight"), shape(state, "upsample.0.weight")
        steps = indices(state, r"^upsample\.2\.(\d+)\.weight")
        if first is None or gamma is None or up is None or not steps:
            return None
        kwargs = super().detect(state)
        if kwargs is None or kwargs.get("upsampler") != "pixelshuffle":
            return None
        kwargs["mlp_ratio"] = kwargs.pop("expansion_factor")
        del kwargs["upsampler"]
        if cr is not None:
            kwargs["c_ratio"] = cr[0] / first[0]
        return kwargs

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6,) * 8,
                 split_size: tuple[int, int] = (8, 32), mlp_ratio: float = 2.0, c_ratio: float = 0.5,
                 qkv_bias: bool = True, drop_path_rate: float = 0.1, num_features: int = 64,
                 resi_connection: str = "1conv", rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        if int(embed_dim * c_ratio) % max(num_heads) or any(int(embed_dim * c_ratio) % h for h in num_heads):
            raise UserError(f"rgt: embed_dim * c_ratio ({embed_dim} x {c_ratio}) must split into num_heads="
                            f"{list(num_heads)}")
        self.c_ratio = c_ratio
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, split_size=split_size, expansion_factor=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path_rate=drop_path_rate, upsampler="pixelshuffle", num_features=num_features,
                         resi_connection=resi_connection, rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """A residual group of blocks alternating local (even) and recursive (odd) attention."""
        def attn(b: int) -> nn.Module:
            if b % 2:
                return RecursiveAttention(dim, heads, self.qkv_bias, self.c_ratio)
            return LocalAttention(dim, heads, self.split, shifted(group, b), self.qkv_bias)

        return RSTB(dim, [RGTBlock(dim, attn(b), self.expansion, rate) for b, rate in enumerate(drop_paths)],
                    self.resi_connection)

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        pad = (0, max(MIN_SIDE - w, 0), 0, max(MIN_SIDE - h, 0))
        if any(pad):  # mirrored; an image smaller than the padding repeats its edge
            lr = F.pad(lr, pad, mode="reflect" if pad[1] < w and pad[3] < h else "replicate")
        return super().forward(lr)[..., : self.scale * h, : self.scale * w]
