"""Omni-SR: Wang, Sun, Chen, Yang, Gao, Liang, "Omni Aggregation Networks for Lightweight Image
Super-Resolution", CVPR 2023.

Defaults: the paper's network: a 3x3 convolution to 64 features, 5 omni self-attention
groups (OSAG: one OSA block, a 1x1 convolution and a skip, then an enhanced spatial
attention), a 3x3 convolution with a global skip, and one 3x3 convolution to C*s^2 channels
+ pixel shuffle; no mean shift; the input zero-padded to a multiple of the 8x8 window, and
to at least 16 pixels a side (the ESA's pooling needs 15), the output cropped. An OSA block:
an MBConv (1x1, GELU, depthwise 3x3, GELU, squeeze-excitation, 1x1; a skip), then twice
(block-wise, then grid-wise): window self-attention (4 heads, a learned relative position
bias; pre-LayerNorm, a skip), a gated depthwise FFN, channel self-attention (L2-normalised,
a temperature per head) within the windows, and another gated FFN (each pre-normed with a
channel LayerNorm, eps 1e-6, and a skip). The grid-wise attention gathers pixels H/8 (W/8)
apart; the grid channel attention pixels 8 apart. Parameters on RGB as the authors' code
builds them: 784,604 / 793,259 / 805,376 at x2 / x3 / x4 (the paper reports about 0.79M; its
count is some 13K lower at each scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import ESA, GatedFFN, conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale
from sr_lightning.nets.swinir import window_position_index

# OSA block: the authors' Sequential indices (the parameter-free reshapes between them dropped) -> our names.
BLOCK_PARTS = {0: "mbconv", 2: "window_attn", 4: "ffn1", 5: "channel_attn", 6: "ffn2", 8: "grid_attn", 10: "ffn3",
               11: "grid_channel_attn", 12: "ffn4"}


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of (N, C, H, W), eps 1e-6 (the authors' LayerNorm2d)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return self.weight.view(1, -1, 1, 1) * ((x - mu) / (var + 1e-6).sqrt()) + self.bias.view(1, -1, 1, 1)


class PreNorm(nn.Module):
    """``x + fn(norm(x))``: ``norm`` a LayerNorm over the last axis or a :class:`ChannelNorm`."""

    def __init__(self, norm: nn.Module, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = norm, fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(self.norm(x))


class SqueezeExcitation(nn.Module):
    """``x * sigmoid(W2 silu(W1 mean(x)))`` over channels, (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, shrinkage: float = 0.25) -> None:
        super().__init__()
        self.squeeze = nn.Linear(dim, int(dim * shrinkage), bias=False)
        self.excite = nn.Linear(int(dim * shrinkage), dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.excite(F.silu(self.squeeze(x.mean(dim=(2, 3)))))).unsqueeze(-1).unsqueeze(-1)


class MBConv(nn.Sequential):
    """1x1, GELU, depthwise 3x3, GELU, squeeze-excitation, 1x1, and a skip; (N, C, H, W) -> same."""

    def __init__(self, dim: int) -> None:
        super().__init__(conv(dim, dim, 1), nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.GELU(),
                         SqueezeExcitation(dim), conv(dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


class WindowAttention(nn.Module):
    """Self-attention over (B, w*w, C) tokens of w x w windows (or grids) with a learned
    relative position bias (an embedding of the offsets) -> same shape."""

    def __init__(self, dim: int, window: int, heads: int, position_bias: bool) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        if position_bias:
            self.rel_pos_bias = nn.Embedding((2 * window - 1) ** 2, heads)
            self.register_buffer("rel_pos_indices", window_position_index(window).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if hasattr(self, "rel_pos_bias"):
            attn = attn + self.rel_pos_bias(self.rel_pos_indices).permute(2, 0, 1)
        return self.to_out((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


def to_groups(x: Tensor, w: int, grid: bool) -> Tensor:
    """(N, C, H, W) -> (N * H/w * W/w, w*w, C): w x w windows, or (``grid``) w x w pixels
    H/w (W/w) apart."""
    n, c, h, wd = x.shape
    if grid:  # row = i * (H/w) + y: i the position in the group
        return x.view(n, c, w, h // w, w, wd // w).permute(0, 3, 5, 2, 4, 1).reshape(-1, w * w, c)
    return x.view(n, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1).reshape(-1, w * w, c)


def from_groups(x: Tensor, w: int, grid: bool, shape: torch.Size) -> Tensor:
    """The inverse of :func:`to_groups`."""
    n, c, h, wd = shape
    if grid:
        return x.view(n, h // w, wd // w, w, w, c).permute(0, 5, 3, 1, 4, 2).reshape(shape)
    return x.view(n, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4).reshape(shape)


class GroupAttention(nn.Module):
    """Pre-normed window (or grid) self-attention with a skip, (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, window: int, grid: bool, position_bias: bool) -> None:
        super().__init__()
        self.window, self.grid = window, grid
        self.norm = nn.LayerNorm(dim)
        self.fn = WindowAttention(dim, window, 4, position_bias)

    def forward(self, x: Tensor) -> Tensor:
        tokens = to_groups(x, self.window, self.grid)
        return from_groups(tokens + self.fn(self.norm(tokens)), self.window, self.grid, x.shape)


class ChannelAttention(nn.Module):
    """Channel self-attention of 4 heads within each w x w window (or, ``grid``, across the
    pixels w apart), L2-normalised with a temperature per head; (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, window: int, grid: bool, heads: int = 4) -> None:
        super().__init__()
        self.window, self.grid, self.heads = window, grid, heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        p, d = self.window, c // self.heads
        # (N, heads, d, H/p, p, W/p, p) -> (N, groups, heads, d, members): windows hold the p x p
        # pixels of one window; grids the H/p x W/p pixels at one place within the windows.
        order = (0, 4, 6, 1, 2, 3, 5) if self.grid else (0, 3, 5, 1, 2, 4, 6)
        members = (h // p) * (w // p) if self.grid else p * p

        def split(t: Tensor) -> Tensor:
            return t.reshape(n, self.heads, d, h // p, p, w // p, p).permute(*order).reshape(n, -1, self.heads, d,
                                                                                              members)

        q, k, v = (split(t) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v  # (N, groups, heads, d, members)
        if self.grid:
            out = out.reshape(n, p, p, self.heads, d, h // p, w // p).permute(0, 3, 4, 5, 1, 6, 2)
        else:
            out = out.reshape(n, h // p, w // p, self.heads, d, p, p).permute(0, 3, 4, 1, 5, 2, 6)
        return self.project_out(out.reshape(n, c, h, w))


class OSABlock(nn.Module):
    """MBConv, then block-wise and grid-wise: attention, FFN, channel attention, FFN; (N, C, H, W) -> same."""

    def __init__(self, dim: int, window: int, position_bias: bool) -> None:
        super().__init__()
        self.mbconv = MBConv(dim)
        self.window_attn = GroupAttention(dim, window, False, position_bias)
        self.ffn1 = PreNorm(ChannelNorm(dim), GatedFFN(dim, 1.0))
        self.channel_attn = PreNorm(ChannelNorm(dim), ChannelAttention(dim, window, False))
        self.ffn2 = PreNorm(ChannelNorm(dim), GatedFFN(dim, 1.0))
        self.grid_attn = GroupAttention(dim, window, True, position_bias)
        self.ffn3 = PreNorm(ChannelNorm(dim), GatedFFN(dim, 1.0))
        self.grid_channel_attn = PreNorm(ChannelNorm(dim), ChannelAttention(dim, window, True))
        self.ffn4 = PreNorm(ChannelNorm(dim), GatedFFN(dim, 1.0))

    def forward(self, x: Tensor) -> Tensor:
        for part in BLOCK_PARTS.values():
            x = getattr(self, part)(x)
        return x


class OSAG(nn.Module):
    """OSA blocks, a 1x1 convolution and a skip, then ESA; (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, blocks: int, window: int, position_bias: bool, bias: bool) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(OSABlock(dim, window, position_bias) for _ in range(blocks)))
        self.conv = nn.Conv2d(dim, dim, 1, bias=bias)
        self.esa = ESA(dim, max(dim // 4, 16), full=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.esa(x + self.conv(self.blocks(x)))


class OmniSR(SRNet):
    """Omni-SR (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "omnisr"
    upsampling = "pixel shuffle"
    paper = "Wang et al., CVPR 2023"
    published_on_rgb = True
    tiles_exactly = False  # the grid attentions span the whole image

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/Francis0625/Omni-SR): each group's Sequential of
        blocks and its 1x1 convolution, each block's Sequential of parts (reshapes between
        them), Sequential wrappers inside the MBConv's squeeze-excitation and the attention."""
        parts = tuple((rf"\.layer\.{i}\.", f".{name}.") for i, name in BLOCK_PARTS.items())
        return ReleaseFormat(key_map=(
            (r"^residual_layer\.(\d+)\.residual_layer\.(\d+)\.(weight|bias)$", r"groups.\1.conv.\3"),
            (r"^residual_layer\.(\d+)\.residual_layer\.(\d+)\.layer\.", r"groups.\1.blocks.\2.layer."),
            (r"^residual_layer\.(\d+)\.esa\.", r"groups.\1.esa."), *parts, (r"\.mbconv\.fn\.", ".mbconv."),
            (r"\.gate\.1\.", ".squeeze."), (r"\.gate\.3\.", ".excite."), (r"\.to_out\.0\.", ".to_out.")))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, groups, blocks, the window (off the position bias table) and the scale (the
        last convolution's C*s^2 outputs)."""
        first, up = shape(state, "input.weight"), shape(state, "up.0.weight")
        if first is None or up is None or "groups.0.esa.conv1.weight" not in state:
            return None
        table = shape(state, "groups.0.blocks.0.window_attn.fn.rel_pos_bias.weight")
        scale = shuffle_scale(up[0], first[1])
        kwargs: dict[str, Any] = {
            "in_channels": first[1], "num_features": first[0], "num_groups": len(indices(state, r"^groups\.(\d+)\.")),
            "num_blocks": len(indices(state, r"^groups\.0\.blocks\.(\d+)\.")), "position_bias": table is not None,
            "bias": "input.bias" in state}
        if table is not None:
            kwargs["window_size"] = (round(table[0] ** 0.5) + 1) // 2
        return None if scale is None else {**kwargs, "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, num_groups: int = 5,
                 num_blocks: int = 1, window_size: int = 8, position_bias: bool = True, bias: bool = True) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if num_features % 4 or window_size < 2:
            raise UserError(f"omnisr: num_features={num_features} must be a multiple of 4 (4 heads) and "
                            f"window_size={window_size} at least 2")
        self.window = window_size
        self.input = nn.Conv2d(in_channels, num_features, 3, padding=1, bias=bias)
        self.groups = nn.Sequential(*(OSAG(num_features, num_blocks, window_size, position_bias, bias)
                                      for _ in range(num_groups)))
        self.output = nn.Conv2d(num_features, num_features, 3, padding=1, bias=bias)
        self.up = nn.Sequential(nn.Conv2d(num_features, in_channels * scale * scale, 3, padding=1, bias=bias),
                                nn.PixelShuffle(scale))

    def padded_side(self, side: int) -> int:
        """The side an input side is zero-padded to: a multiple of the window (as the authors
        pad), and at least the 15 pixels the ESA's strided convolution and 7x7 pooling need
        (smaller inputs stop the authors' code)."""
        side = max(side, 15)
        return side + (-side) % self.window

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        x = F.pad(lr, (0, self.padded_side(w) - w, 0, self.padded_side(h) - h))  # zeros, as the authors pad
        feat = self.input(x)
        out = self.up(self.output(self.groups(feat)) + feat)
        return out[..., : self.scale * h, : self.scale * w]
