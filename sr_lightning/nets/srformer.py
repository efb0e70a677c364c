"""SRFormer: Zhou, Li, Guo, Cheng, Hou, "SRFormer: Permuted Self-Attention for Single Image
Super-Resolution", ICCV 2023.

SwinIR's frame with permuted self-attention (PSA) layers: in each w x w window the queries
are the w*w tokens (a C -> C projection) and the keys and values w/2 x w/2 tokens, each
gathering a 2 x 2 neighbourhood (a C -> C/2 projection, the four neighbours' quarters
concatenated: C channels each for keys and values); the relative position bias is over the
w/2 x w/2 grid, a query reading the entry of its 2 x 2 cell's offset. Shifted layers (every
second) mask the regions the cyclic shift joins, for the keys on the half-size map (the
authors cut its bands at floor(-shift / 2): -6 for the 22-window's shift of 11). The MLP
is a ConvFFN: Linear, GELU, ``x + GELU(depthwise 5x5 conv(x))``, Linear. Defaults: SRFormer
(180 features, 6 groups of 6 layers, 6 heads, 22 x 22 windows, MLP ratio 2, pixel-shuffle
upsampler); ``srformer_light``: 60 features, 4 groups, 16 x 16 windows, one convolution +
pixel shuffle. Parameters on RGB, as the authors' code builds them: SRFormer 10,376,783 /
10,561,423 / 10,524,495 at x2 / x3 / x4, SRFormer-light 853,272 / 861,387 / 872,748 (the
paper's 853K / 861K / 873K).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN
from sr_lightning.nets.release_format import ReleaseFormat
from sr_lightning.nets.swinir import (
    RSTB,
    SWIN_DERIVED,
    SWIN_GROUP_KEYS,
    SwinIR,
    SwinLayer,
    shift_regions,
    swin_kwargs,
    upsampler_keys,
)


@functools.cache
def permuted_position_index(window: int) -> Tensor:
    """(w*w, (w/2)^2) indices into the (w - 1)^2-entry bias table: query (r, c) of the window
    and key (i, j) of the half-size grid read the entry of the offset (r//2 - i, c//2 - j).
    Made once per window, on the CPU (layers take copies)."""
    p = window // 2
    with torch.device("cpu"):
        rows = torch.arange(window) // 2
        q = torch.stack(torch.meshgrid(rows, rows, indexing="ij")).flatten(1)  # (2, w*w): each query's cell
        k = torch.stack(torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")).flatten(1)  # (2, p*p)
        rel = (q[:, :, None] - k[:, None, :]) + (p - 1)
        return rel[0] * (2 * p - 1) + rel[1]


class PermutedAttention(nn.Module):
    """Permuted self-attention in w x w windows, (B, w*w, C) -> same shape; ``mask``
    (windows, w*w, (w/2)^2) keeps shifted regions apart."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads, self.half, self.scale = heads, window // 2, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("aligned_relative_position_index", permuted_position_index(window).clone(),
                             persistent=False)
        self.kv = nn.Linear(dim, dim // 2)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        p, d = self.half, c // self.heads
        # Each token's C/2 projection is (key, value) x C/4; a 2 x 2 neighbourhood's four make one key and one value.
        kv = self.kv(x).reshape(b, p, 2, p, 2, 2, c // 4).permute(0, 1, 3, 5, 2, 4, 6)
        k, v = kv.reshape(b, n // 4, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        q = self.q(x).reshape(b, n, self.heads, d).transpose(1, 2) * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.aligned_relative_position_index.reshape(-1)]
        attn = attn + bias.view(n, n // 4, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n // 4) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(b, self.heads, n, n // 4)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


class ConvFFN(nn.Module):
    """Linear, GELU, ``x + GELU(depthwise k x k conv(x))`` on the token map (k = 5 unless
    given), Linear; (N, H*W, C) -> same shape."""

    def __init__(self, dim: int, hidden: int, kernel: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = F.gelu(self.fc1(x))
        n, _, c = x.shape
        local = F.gelu(self.dwconv(x.transpose(1, 2).reshape(n, c, *size))).flatten(2).transpose(1, 2)
        return self.fc2(x + local)


class PSALayer(SwinLayer):
    """A Swin layer with permuted self-attention and a ConvFFN."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__(dim, heads, window, shift, mlp_ratio, drop_path)
        self.attn = PermutedAttention(dim, window, heads)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))

    def attention_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        """(windows, w*w, (w/2)^2): -100 between a query and a key (on the half-size map) of
        regions the cyclic shift brought together, else 0."""
        if self.shift == 0:
            return None
        queries = shift_regions(h, w, self.window, -self.shift, device)
        keys = shift_regions(h // 2, w // 2, self.window // 2, (-self.shift) // 2, device)
        mask = queries.unsqueeze(2) - keys.unsqueeze(1)
        return mask.masked_fill(mask != 0, -100.0)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attend(self.norm1(x), size))
        return x + self.drop_path(self.mlp(self.norm2(x), size))


class SRFormer(SwinIR):
    """SRFormer (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "srformer"
    paper = "Zhou et al., ICCV 2023"

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/HVision-NKU/SRFormer): SwinIR's group and upsampler
        names, the ConvFFN's depthwise convolution inside a Sequential; masks and index tables derived."""
        upsampler = upsampler_keys(config)
        return ReleaseFormat(key_map=(*SWIN_GROUP_KEYS, (r"\.mlp\.dwconv\.depthwise_conv\.0\.", ".mlp.dwconv."),
                                      *upsampler), derived=SWIN_DERIVED)


    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """SwinIR's arguments, the window read off the bias table over the half-size grid
        ((w - 1)^2 rows) and the MLP ratio off the ConvFFN."""
        if "layers.0.layers.0.attn.kv.weight" not in state or "layers.0.layers.0.mlp.fc1.weight" not in state:
            return None
        ffn = state["layers.0.layers.0.mlp.fc1.weight"]
        kwargs = swin_kwargs({**state, "layers.0.layers.0.mlp.0.weight": ffn})
        if kwargs is None:
            return None
        return {**kwargs, "window_size": round(state["layers.0.layers.0.attn.relative_position_bias_table"].shape[0]
                                               ** 0.5) + 1}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 22, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 upsampler: str = "pixelshuffle", num_features: int = 64, resi_connection: str = "1conv",
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        if window_size % 2 or embed_dim % 4:
            raise UserError(f"srformer: window_size={window_size} must be even and embed_dim={embed_dim} divisible "
                            f"by 4 (keys and values gather 2 x 2 neighbourhoods)")
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                         drop_path_rate=drop_path_rate, upsampler=upsampler, num_features=num_features,
                         resi_connection=resi_connection, rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """One residual group of PSA layers, every second one shifted by half a window."""
        return RSTB(dim, [PSALayer(dim, heads, self.window, 0 if i % 2 == 0 else self.window // 2, mlp_ratio, rate)
                          for i, rate in enumerate(drop_paths)], self.resi_connection)
