"""Swin2SR: Conde, Choi, Burchi, Timofte, "Swin2SR: SwinV2 Transformer for Compressed Image
Super-Resolution and Restoration", ECCV Workshops 2022.

SwinIR with Swin Transformer V2 layers: scaled cosine attention (queries and keys
L2-normalised, times a learned per-head temperature ``exp(min(logit_scale, log 100))``), a
continuous relative position bias (a 2 -> 512 -> heads MLP over log-spaced window offsets,
``16 * sigmoid`` of it), residual post-normalisation (``x + norm(attn(x))``, ``x +
norm(mlp(x))``), query and value biases apart from a bias-free ``qkv``, and a learned 1x1
convolution after the patch embedding and after each residual group's convolution.
Defaults: the classical SR network (180 features, 6 groups of 6 layers, 6 heads, 8x8
windows, MLP ratio 2, pixel-shuffle upsampler from 64 features); ``swin2sr_light``: 60
features, 4 groups, one convolution + pixel shuffle; ``swin2sr_real``: nearest + conv
upsampling. 12,091,571 / 12,276,211 / 12,239,283 parameters at x2 / x3 / x4 on RGB
(classical; the paper's ~12M), 1,005,348 at x2 (lightweight; ~1M), 12,054,643 real-world
x4. Left: the compressed-input model (``pixelshuffle_aux``, with its auxiliary bicubic branch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.blocks import DIV2K_RGB_MEAN
from sr_lightning.nets.release_format import ReleaseFormat, shape
from sr_lightning.nets.swinir import (
    RSTB,
    SWIN_DERIVED,
    SWIN_KEYS,
    SwinIR,
    SwinLayer,
    swin_kwargs,
    upsampler_keys,
    window_position_index,
)


@functools.cache
def log_offsets(window: int) -> Tensor:
    """(1, 2w-1, 2w-1, 2) window offsets (dy, dx), scaled to [-8, 8] and log-spaced:
    ``sign(t) * log2(1 + |t|) / 3`` (the continuous position bias MLP's input). Made once per
    window, on the CPU (layers take copies)."""
    with torch.device("cpu"):
        span = torch.arange(-(window - 1), window, dtype=torch.float32) / (window - 1) * 8
        table = torch.stack(torch.meshgrid(span, span, indexing="ij"), dim=-1).unsqueeze(0)
        return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


class CosineWindowAttention(nn.Module):
    """Swin V2 window attention, (B, w*w, C) -> same shape; ``mask`` as in SwinIR's."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False))
        self.register_buffer("relative_coords_table", log_offsets(window).clone(), persistent=False)
        self.register_buffer("relative_position_index", window_position_index(window).clone(), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.heads)
        position = table[self.relative_position_index.reshape(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(position).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(b, self.heads, n, n)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


class SwinV2Layer(SwinLayer):
    """A Swin V2 layer: cosine window attention, residual post-normalisation."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__(dim, heads, window, shift, mlp_ratio, drop_path)
        self.attn = CosineWindowAttention(dim, window, heads)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.norm1(self.attend(x, size)))
        return x + self.drop_path(self.norm2(self.mlp(x)))


class ProjectedRSTB(RSTB):
    """SwinIR's residual group with a 1x1 convolution after its closing convolution."""

    def __init__(self, dim: int, layers: list[nn.Module], resi_connection: str) -> None:
        super().__init__(dim, layers, resi_connection)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n, _, c = x.shape
        y = self.proj(self.conv(self.mix(x, size).transpose(1, 2).reshape(n, c, *size)))
        return x + y.flatten(2).transpose(1, 2)


class Swin2SR(SwinIR):
    """Swin2SR (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "swin2sr"
    paper = "Conde et al., ECCVW 2022"

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/mv-lab/swin2sr): SwinIR's layout, the patch
        embeddings' 1x1 convolutions; the offset tables, index tables and masks derived."""
        upsampler = upsampler_keys(config)
        return ReleaseFormat(key_map=(*SWIN_KEYS, (r"^patch_embed\.proj\.", "patch_proj."),
                                      (r"\.patch_embed\.proj\.", ".proj."), *upsampler),
                             derived=(*SWIN_DERIVED, r"relative_coords_table$"))


    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """SwinIR's arguments, with the window read off a release's offset table (2w - 1
        rows) where it has one: Swin V2 weights do not depend on the window."""
        if "layers.0.layers.0.attn.logit_scale" not in state or "patch_proj.weight" not in state:
            return None
        kwargs, table = swin_kwargs(state), shape(state, "layers.0.layers.0.attn.relative_coords_table")
        return kwargs if kwargs is None or table is None else {**kwargs, "window_size": (table[1] + 1) // 2}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 8, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 upsampler: str = "pixelshuffle", num_features: int = 64, resi_connection: str = "1conv",
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                         drop_path_rate=drop_path_rate, upsampler=upsampler, num_features=num_features,
                         resi_connection=resi_connection, rgb_mean=rgb_mean)
        self.patch_proj = nn.Conv2d(embed_dim, embed_dim, 1)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """A residual group of Swin V2 layers, every second one shifted, and its 1x1 convolution."""
        return ProjectedRSTB(dim, [SwinV2Layer(dim, heads, self.window, 0 if i % 2 == 0 else self.window // 2,
                                               mlp_ratio, rate) for i, rate in enumerate(drop_paths)],
                             self.resi_connection)

    def embed(self, x: Tensor) -> Tensor:
        return super().embed(self.patch_proj(x))
