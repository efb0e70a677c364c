"""CRAFT: Li, Zhang, Kong, Zhao, Zhang, "Feature Modulation Transformer: Cross-Refinement and
Lightweight Aggregation for Efficient Image Super-Resolution" (CRAFT), ICCV 2023.

Defaults: the paper's network: a 3x3 convolution to 48 features, 4 residual cross-refinement
groups (each: 2 cross-refinement blocks, a 3x3 convolution and a skip), a channel LayerNorm,
a 3x3 convolution with a global skip, one 3x3 convolution to C*s^2 channels + pixel shuffle;
the DIV2K mean subtracted. A cross-refinement block: two shift-rectangle window attention
blocks (the channel halves in 4 x 16 and 16 x 4 windows, a dynamic position bias, a
depthwise branch of the values; the second shifted by half a window, unmasked as in the
authors' code; each with a GELU MLP) give the low-frequency path; a high-frequency
enhancement block (half the channels a 3x3 convolution, half 3x3 max pooling and a 1x1,
GELU, a 1x1 over both, a skip) the high one; a cross-attention block lets the low path's
keys and values meet the high path's queries (channel attention, L2-normalised with a
temperature per head), then a gated depthwise FFN (expansion 2.66). The input is
mirror-padded to multiples of 16 (the authors' code takes only such inputs) and the output
cropped. Parameters on RGB as the authors' code builds them: 737,756 / 744,251 / 753,344 at
x2 / x3 / x4 (the paper's 737K / 744K / 753K).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, GatedFFN, mean_shift
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale
from sr_lightning.nets.rgt import LocalAttention


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of (N, C, H, W) (eps 1e-5; weight and bias under ``body``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SRWAB(nn.Module):
    """Shift-rectangle window attention block: pre-normed local attention and a GELU MLP, each
    with a skip; (N, H*W, C) -> same shape."""

    def __init__(self, dim: int, heads: int, split: tuple[int, int], shifted: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = LocalAttention(dim, heads, split, shifted, qkv_bias=True, masked=False)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), size)
        return x + self.mlp(self.norm2(x))


class HFERB(nn.Module):
    """High-frequency enhancement residual block, (N, C, H, W) -> same shape."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.half = dim // 2
        self.conv = nn.Conv2d(self.half, self.half, 3, padding=1)
        self.fc = nn.Conv2d(self.half, self.half, 1)
        self.last_fc = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        low = F.gelu(self.conv(x[:, : self.half]))
        high = F.gelu(self.fc(F.max_pool2d(x[:, self.half:], 3, stride=1, padding=1)))
        return x + self.last_fc(torch.cat((low, high), dim=1))


class CrossAttention(nn.Module):
    """Channel cross-attention: queries from ``high``, keys and values from ``low`` (N, C, H, W)
    -> (N, C, H, W); no biases."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        n, c, h, w = low.shape
        q = self.q_dwconv(self.q(high)).reshape(n, self.heads, c // self.heads, h * w)
        k, v = (t.reshape(n, self.heads, c // self.heads, h * w) for t in self.kv_dwconv(self.kv(low)).chunk(2, dim=1))
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        return self.project_out((attn.softmax(dim=-1) @ v).reshape(n, c, h, w))


class HFB(nn.Module):
    """Cross-attention of the low path to the high one and the FFN, pre-normed with skips."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = ChannelLayerNorm(dim), ChannelLayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.ffn = GatedFFN(dim, 2.66)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        x = low + self.attn(self.norm1(low), high)
        return x + self.ffn(self.norm2(x))


class RCRFG(nn.Module):
    """Residual cross-refinement group, (N, C, H, W) -> same shape."""

    def __init__(self, dim: int, depth: int, heads: int, split: tuple[int, int], mlp_ratio: float) -> None:
        super().__init__()
        self.srwa_blocks = nn.ModuleList(SRWAB(dim, heads, split, i % 2 == 1, mlp_ratio) for i in range(2 * depth))
        self.hfer_blocks = nn.ModuleList(HFERB(dim) for _ in range(depth))
        self.hf_blocks = nn.ModuleList(HFB(dim, heads) for _ in range(depth))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = x
        for i, (hfer, hf) in enumerate(zip(self.hfer_blocks, self.hf_blocks, strict=True)):
            low = y.flatten(2).transpose(1, 2)
            for block in self.srwa_blocks[2 * i: 2 * i + 2]:
                low = block(low, (h, w))
            y = hf(low.transpose(1, 2).reshape(n, c, h, w), hfer(y))
        return x + self.conv(y)


class CRAFT(SRNet):
    """CRAFT (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "craft"
    upsampling = "pixel shuffle"
    paper = "Li et al., ICCV 2023"
    published_on_rgb = True
    tiles_exactly = False  # the cross-attention is over the whole image's channels

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/AVC2-UESTC/CRAFT-SR): the groups' ``residual_group``,
        the window attention's projections on the block, the MLP's names; the shared window
        tables derived."""
        return ReleaseFormat(key_map=((r"\.residual_group\.", "."),
                                      (r"\.srwa_blocks\.(\d+)\.(qkv|proj|get_v|attns)\.", r".srwa_blocks.\1.attn.\2."),
                                      (r"\.mlp\.fc1\.", ".mlp.0."), (r"\.mlp\.fc2\.", ".mlp.2.")),
                             derived=(r"^relative_position_index_[hv]$", r"^biases_[hv]$"))

    def release_derived(self, key: str) -> Tensor | None:
        """The release's shared tables: the first block's (h: the first window shape's, v: the other's)."""
        names = {"relative_position_index_h": (0, "relative_position_index"), "biases_h": (0, "rpe_biases"),
                 "relative_position_index_v": (1, "relative_position_index"), "biases_v": (1, "rpe_biases")}
        if key not in names:
            return None
        branch, buffer = names[key]
        return getattr(self.layers[0].srwa_blocks[0].attn.attns[branch], buffer)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, groups and their depth, heads (twice a window half's), the MLP ratio and the
        scale; the windows from a release's table (shorter side first), else the config's."""
        first, up = shape(state, "conv_first.weight"), shape(state, "upsample.0.weight")
        pos = shape(state, "layers.0.srwa_blocks.0.attn.attns.0.pos.pos3.2.weight")
        mlp = shape(state, "layers.0.srwa_blocks.0.mlp.0.weight")
        if first is None or up is None or pos is None or mlp is None:
            return None
        groups = indices(state, r"^layers\.(\d+)\.")
        scale = shuffle_scale(up[0], first[1])
        kwargs: dict[str, Any] = {
            "in_channels": first[1], "embed_dim": first[0], "mlp_ratio": mlp[0] / first[0],
            "depths": [len(indices(state, rf"^layers\.{g}\.hf_blocks\.(\d+)\.")) for g in groups],
            "num_heads": [2 * shape(state, f"layers.{g}.srwa_blocks.0.attn.attns.0.pos.pos3.2.weight")[0]
                          for g in groups]}
        table = shape(state, "relative_position_index_h")
        offsets = shape(state, "biases_h")
        if table is not None and offsets is not None:  # s0 * s1 and (2 s0 - 1)(2 s1 - 1) give s0 + s1
            total = (4 * table[0] + 1 - offsets[0]) // 2
            short = round((total - (max(total * total - 4 * table[0], 0)) ** 0.5) / 2)
            kwargs["split_size"] = [short, total - short]
        return None if scale is None else {**kwargs, "scale": scale}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, embed_dim: int = 48,
                 depths: tuple[int, ...] = (2, 2, 2, 2), num_heads: tuple[int, ...] = (6, 6, 6, 6),
                 split_size: tuple[int, int] = (4, 16), mlp_ratio: float = 2.0,
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if len(depths) != len(num_heads) or any(h % 2 or embed_dim % h for h in num_heads) or len(split_size) != 2:
            raise UserError(f"craft: depths={list(depths)} and num_heads={list(num_heads)} must be as long as each "
                            f"other, every head count even and dividing embed_dim={embed_dim}, split_size two sides")
        self.side = max(split_size)
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.layers = nn.ModuleList(RCRFG(embed_dim, d, h, tuple(split_size), mlp_ratio)
                                    for d, h in zip(depths, num_heads, strict=True))
        self.norm = ChannelLayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(embed_dim, in_channels * scale * scale, 3, padding=1),
                                      nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        pad = (0, (-w) % self.side, 0, (-h) % self.side)
        x = lr - self.mean
        if any(pad):  # mirrored; an image smaller than the padding repeats its edge
            x = F.pad(x, pad, mode="reflect" if pad[1] < w and pad[3] < h else "replicate")
        x = self.conv_first(x)
        body = x
        for layer in self.layers:
            body = layer(body)
        out = self.upsample(self.conv_after_body(self.norm(body)) + x) + self.mean
        return out[..., : self.scale * h, : self.scale * w]
