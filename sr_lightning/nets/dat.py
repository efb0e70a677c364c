"""DAT: Chen, Zhang, Gu, Kong, Yang, Yu, "Dual Aggregation Transformer for Image
Super-Resolution", ICCV 2023.

SwinIR's frame (a 3x3 convolution, LayerNorm, residual groups closed by a convolution,
LayerNorm, a convolution with a global skip, pixel-shuffle upsampling; the DIV2K mean
subtracted), no input padding, with dual aggregation Transformer blocks alternating:
even blocks (adaptive spatial attention) split the channels in two halves attending in
rectangular windows (sh x sw and sw x sh: ``split_size``), with a dynamic position bias
(an MLP over the window offsets), the queries, keys and values zero-padded to a multiple
of the longer side; some of them shifted by half a window (in even groups blocks 2, 6,
10, ...; in odd groups 0, 4, 8, ...); odd blocks attend across channels (L2-normalised,
a learned temperature per head). Both add a depthwise convolution branch of the values,
each branch gating the other (channel and spatial interactions). The MLP is a spatial-
gate FFN (``x1 * dwconv(norm(x2))`` of the hidden halves). Defaults: DAT (180 features,
6 groups of 6 blocks, 6 heads, 8 x 32 windows, expansion 4); ``dat_s``: 8 x 16 windows,
expansion 2; ``dat_2``: 8 x 32, expansion 2; ``dat_light``: 60 features, one group of 18,
expansion 2, three-convolution residuals, one convolution + pixel shuffle. Parameters on
RGB at x4, as the authors' code builds them: DAT 14,802,051, DAT-S 11,212,131, DAT-2
11,212,131, DAT-light 572,766 (the paper's 14.8M, 11.21M, 11.21M, 573K).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale
from sr_lightning.nets.swinir import RSTB, DropPath, SwinIR, upsampler_keys


def to_windows(x: Tensor, hs: int, ws: int) -> Tensor:
    """(N, C, H, W) -> (N * H/hs * W/ws, hs*ws, C)."""
    n, c, h, w = x.shape
    return x.view(n, c, h // hs, hs, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, hs * ws, c)


def from_windows(x: Tensor, hs: int, ws: int, h: int, w: int) -> Tensor:
    """(N * H/hs * W/ws, hs*ws, C) -> (N, H, W, C)."""
    x = x.view(-1, h // hs, w // ws, hs, ws, x.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, x.shape[-1])


def rect_mask(h: int, w: int, window: tuple[int, int], shift: tuple[int, int], device: torch.device) -> Tensor:
    """(windows, hs*ws, hs*ws): -100 between tokens of regions a cyclic shift by ``shift``
    joined in the ``window``-sized windows of an h x w map, else 0."""
    region = torch.zeros(1, 1, h, w, device=device)
    bands = [(slice(0, -s), slice(-s, -t), slice(-t, None)) for s, t in zip(window, shift, strict=True)]
    for label, (hs, ws) in enumerate((a, b) for a in bands[0] for b in bands[1]):
        region[..., hs, ws] = label
    labels = to_windows(region, *window).squeeze(-1)
    mask = labels.unsqueeze(1) - labels.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0)


def norm_relu_linear(cin: int, cout: int) -> nn.Sequential:
    """LayerNorm, ReLU, Linear (a stage of the dynamic position bias)."""
    return nn.Sequential(nn.LayerNorm(cin), nn.ReLU(inplace=True), nn.Linear(cin, cout))


class DynamicPosBias(nn.Module):
    """An MLP from window offsets (dy, dx) to a bias per head: Linear 2 -> d, then three
    LayerNorm-ReLU-Linear stages (to d, d, heads); (K, 2) -> (K, heads)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        d = dim // 4
        self.pos_proj = nn.Linear(2, d)
        self.pos1, self.pos2, self.pos3 = norm_relu_linear(d, d), norm_relu_linear(d, d), norm_relu_linear(d, heads)

    def forward(self, offsets: Tensor) -> Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))


@functools.cache
def window_tables(hs: int, ws: int) -> tuple[Tensor, Tensor]:
    """An hs x ws window's offsets ((2hs - 1)(2ws - 1), 2) as floats (the position bias MLP's
    input) and the (hs*ws, hs*ws) index of each pixel pair's offset among them (made once per
    window, on the CPU; layers take copies)."""
    cpu = torch.device("cpu")
    offsets = torch.stack(torch.meshgrid(torch.arange(1 - hs, hs, device=cpu), torch.arange(1 - ws, ws, device=cpu),
                                         indexing="ij")).flatten(1).transpose(0, 1).float()
    coords = torch.stack(torch.meshgrid(torch.arange(hs, device=cpu), torch.arange(ws, device=cpu),
                                        indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return offsets, (rel[..., 0] + hs - 1) * (2 * ws - 1) + rel[..., 1] + ws - 1


class WindowBranch(nn.Module):
    """Self-attention of one channel half in hs x ws windows with the dynamic position bias;
    (3, N, H*W, C) q, k, v of an H x W map (multiples of the window) -> (N, H, W, C)."""

    def __init__(self, dim: int, heads: int, window: tuple[int, int]) -> None:
        super().__init__()
        self.heads, self.window, self.scale = heads, window, (dim // heads) ** -0.5
        self.pos = DynamicPosBias(dim // 4, heads)
        offsets, index = window_tables(*window)
        self.register_buffer("rpe_biases", offsets.clone(), persistent=False)
        self.register_buffer("relative_position_index", index.clone(), persistent=False)

    def forward(self, qkv: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        n, c = qkv.shape[1], qkv.shape[-1]
        hs, ws = self.window

        def heads(t: Tensor) -> Tensor:
            windows = to_windows(t.transpose(-2, -1).reshape(n, c, h, w), hs, ws)
            return windows.reshape(-1, hs * ws, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = (heads(t) for t in qkv)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.pos(self.rpe_biases)[self.relative_position_index.reshape(-1)].view(hs * ws, hs * ws, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            tokens = attn.shape[-1]
            attn = attn.view(-1, mask.shape[0], self.heads, tokens, tokens) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, tokens, tokens)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, hs * ws, c)
        return from_windows(out, hs, ws, h, w)


def interactions(dim: int) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """The depthwise convolution branch and the two gates of DAT's attentions: dwconv (3x3
    depthwise, BatchNorm, GELU), channel interaction (pool, 1x1 to dim/8, BN, GELU, 1x1),
    spatial interaction (1x1 to dim/16, BN, GELU, 1x1 to one map)."""
    return (nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.BatchNorm2d(dim), nn.GELU()),
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, 1), nn.BatchNorm2d(dim // 8), nn.GELU(),
                          nn.Conv2d(dim // 8, dim, 1)),
            nn.Sequential(nn.Conv2d(dim, dim // 16, 1), nn.BatchNorm2d(dim // 16), nn.GELU(),
                          nn.Conv2d(dim // 16, 1, 1)))


class RectWindowAttention(nn.Module):
    """Self-attention of the two channel halves in (sh x sw) and (sw x sh) windows, shifted by
    half windows when ``shifted`` (the regions the shift joins masked unless ``masked`` is
    False, as CRAFT's code leaves them): the spatial attention DAT, RGT and CRAFT share (they
    combine it with a depthwise branch each their own way: :meth:`combine`); (N, H*W, C) -> same shape."""

    def __init__(self, dim: int, heads: int, split: tuple[int, int], shifted: bool, qkv_bias: bool,
                 masked: bool = True) -> None:
        super().__init__()
        self.split, self.shift, self.masked = split, (split[0] // 2, split[1] // 2) if shifted else None, masked
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attns = nn.ModuleList([WindowBranch(dim // 2, heads // 2, split),
                                    WindowBranch(dim // 2, heads // 2, split[::-1])])

    def attention_mask(self, h: int, w: int, device: torch.device, branch: int = 0) -> Tensor | None:
        """The shifted windows' mask of channel half ``branch`` on an h x w map (None unshifted
        or unmasked)."""
        if self.shift is None or not self.masked:
            return None
        return rect_mask(h, w, self.attns[branch].window, self.shift[::-1] if branch else self.shift, device)

    def combine(self, attended: Tensor, v: Tensor) -> Tensor:
        """The attention's output (N, H*W, C) joined with the values as a map (N, C, H, W)."""
        raise NotImplementedError

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        n, length, c = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, c).permute(2, 0, 1, 3)  # (3, N, H*W, C)
        v = qkv[2].transpose(-2, -1).reshape(n, c, h, w)
        side = max(self.split)
        ph, pw = h + (-h) % side, w + (-w) % side  # zero-padded q, k, v (after the projection)
        grid = F.pad(qkv.reshape(3 * n, h, w, c).permute(0, 3, 1, 2), (0, pw - w, 0, ph - h))
        grid = grid.reshape(3, n, c, ph, pw).permute(0, 1, 3, 4, 2)  # (3, N, pH, pW, C)
        halves = []
        for i, (branch, part) in enumerate(zip(self.attns, (grid[..., : c // 2], grid[..., c // 2:]), strict=True)):
            if self.shift is None:
                out = branch(part.reshape(3, n, ph * pw, c // 2), ph, pw, None)
            else:
                shift = self.shift if i == 0 else self.shift[::-1]
                part = torch.roll(part, shifts=(-shift[0], -shift[1]), dims=(2, 3))
                mask = self.attention_mask(ph, pw, x.device, i).to(x.dtype) if self.masked else None
                out = torch.roll(branch(part.reshape(3, n, ph * pw, c // 2), ph, pw, mask), shifts=shift, dims=(1, 2))
            halves.append(out[:, :h, :w, :].reshape(n, length, c // 2))
        return self.proj(self.combine(torch.cat(halves, dim=2), v))


class SpatialAttention(RectWindowAttention):
    """DAT's adaptive spatial self-attention: the windows' output and a depthwise branch of the
    values gate each other (channel and spatial interactions)."""

    def __init__(self, dim: int, heads: int, split: tuple[int, int], shifted: bool, qkv_bias: bool) -> None:
        super().__init__(dim, heads, split, shifted, qkv_bias)
        self.dwconv, self.channel_interaction, self.spatial_interaction = interactions(dim)

    def combine(self, attended: Tensor, v: Tensor) -> Tensor:
        n, c, h, w = v.shape
        conv = self.dwconv(v)
        channel = self.channel_interaction(conv).permute(0, 2, 3, 1).reshape(n, 1, c)
        spatial = self.spatial_interaction(attended.transpose(-2, -1).reshape(n, c, h, w))
        conv = (torch.sigmoid(spatial) * conv).permute(0, 2, 3, 1).reshape(n, h * w, c)
        return attended * torch.sigmoid(channel) + conv


class ChannelAttention(nn.Module):
    """Adaptive channel self-attention, (N, H*W, C) -> same shape: heads attend across their
    channels (L2-normalised, times a learned temperature), gated with a depthwise branch."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dwconv, self.channel_interaction, self.spatial_interaction = interactions(dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n, length, c = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 4, 1)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        attended = (attn.softmax(dim=-1) @ v).permute(0, 3, 1, 2).reshape(n, length, c)
        conv = self.dwconv(v.reshape(n, c, *size))
        channel = self.channel_interaction(attended.transpose(-2, -1).reshape(n, c, *size))
        spatial = self.spatial_interaction(conv).permute(0, 2, 3, 1).reshape(n, length, 1)
        conv = (conv * torch.sigmoid(channel)).permute(0, 2, 3, 1).reshape(n, length, c)
        return self.proj(attended * torch.sigmoid(spatial) + conv)


class SpatialGate(nn.Module):
    """``x1 * dwconv3x3(norm(x2))`` of the two channel halves; (N, H*W, 2C) -> (N, H*W, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        n, _, c = x2.shape
        return x1 * self.conv(self.norm(x2).transpose(1, 2).reshape(n, c, *size)).flatten(2).transpose(1, 2)


class SGFN(nn.Module):
    """Spatial-gate feed-forward network: Linear, GELU, spatial gate, Linear; (N, H*W, C) -> same."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.sg = SpatialGate(hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.fc2(self.sg(F.gelu(self.fc1(x)), size))


def shifted(group: int, block: int) -> bool:
    """Whether spatial block ``block`` (even) of group ``group`` shifts its windows: blocks 2,
    6, 10, ... of even groups, 0, 4, 8, ... of odd ones (DAT's and RGT's rule)."""
    return (block > 0 and (block - 2) % 4 == 0) if group % 2 == 0 else block % 4 == 0


class DATBlock(nn.Module):
    """Pre-normed attention (spatial or channel) and SGFN, each with a skip; (N, H*W, C) -> same."""

    def __init__(self, dim: int, attn: nn.Module, expansion: float, drop_path: float) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim), attn, nn.LayerNorm(dim)
        self.ffn = SGFN(dim, int(dim * expansion))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), size))
        return x + self.drop_path(self.ffn(self.norm2(x), size))


class DAT(SwinIR):
    """DAT (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "dat"
    paper = "Chen et al., ICCV 2023"
    tiles_exactly = False  # channel attention and its pooled gates see the whole image
    ffn = "ffn"  # the blocks' feed-forward network (RGT's: mlp)

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/zhengchen1999/DAT): ``before_RG.1`` the first norm,
        ``layers.<g>.blocks.<b>`` the blocks, SwinIR's upsampler names; the window offsets,
        index tables and masks derived."""
        upsampler = upsampler_keys(config)
        return ReleaseFormat(key_map=((r"^before_RG\.1\.", "patch_norm."),
                                      (r"^layers\.(\d+)\.blocks\.", r"layers.\1.layers."), *upsampler),
                             derived=(r"rpe_biases$", r"relative_position_index$", r"attn_mask_[01]$"))

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Ours and the authors' classical and lightweight layouts."""
        return {"sr_lightning": ReleaseFormat(), "release": cls.release_format({"upsampler": "pixelshuffle"}),
                "release (lightweight)": cls.release_format({"upsampler": "pixelshuffledirect"})}

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, each group's blocks and heads (twice a spatial half's), the expansion, the
        residual convolution and upsampler; the windows from a release's index table (the
        shorter side first, as in every released config), else the config's."""
        first = shape(state, "conv_first.weight")
        pos = shape(state, "layers.0.layers.0.attn.attns.0.pos.pos3.2.weight")
        ffn, up = shape(state, f"layers.0.layers.0.{cls.ffn}.fc1.weight"), shape(state, "upsample.0.weight")
        if first is None or pos is None or ffn is None or up is None:
            return None
        c, e = first[1], first[0]
        groups = indices(state, r"^layers\.(\d+)\.layers\.")
        kwargs: dict[str, Any] = {
            "in_channels": c, "embed_dim": e, "expansion_factor": ffn[0] / e,
            "depths": [len(indices(state, rf"^layers\.{g}\.layers\.(\d+)\.")) for g in groups],
            "num_heads": [2 * shape(state, f"layers.{g}.layers.0.attn.attns.0.pos.pos3.2.weight")[0] for g in groups],
            "resi_connection": "3conv" if "layers.0.conv.0.weight" in state else "1conv",
            "qkv_bias": "layers.0.layers.0.attn.qkv.bias" in state}
        steps = indices(state, r"^upsample\.2\.(\d+)\.weight")
        if steps:
            scale = shuffle_scale(shape(state, "upsample.2.0.weight")[0], up[0], len(steps))
            kwargs.update(upsampler="pixelshuffle", num_features=up[0])
        else:
            scale = shuffle_scale(up[0], c)
            kwargs["upsampler"] = "pixelshuffledirect"
        index, offsets = (shape(state, f"layers.0.layers.0.attn.attns.0.{k}")
                          for k in ("relative_position_index", "rpe_biases"))
        if index is not None and offsets is not None:  # s0 * s1 and (2 s0 - 1)(2 s1 - 1) give s0 + s1
            product = index[0]
            total = (4 * product + 1 - offsets[0]) // 2
            short = round((total - math.sqrt(max(total * total - 4 * product, 0))) / 2)
            kwargs["split_size"] = [short, total - short]
        return None if scale is None else {**kwargs, "scale": scale}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 split_size: tuple[int, int] = (8, 32), expansion_factor: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.1, upsampler: str = "pixelshuffle", num_features: int = 64,
                 resi_connection: str = "1conv", rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        if len(split_size) != 2 or embed_dim < 32 or embed_dim % 2 or any(h % 2 or (embed_dim // 2) % (h // 2)
                                                                             for h in num_heads):
            raise UserError(f"dat: split_size={list(split_size)} is (height, width) of a window, embed_dim={embed_dim} "
                            f"even and at least 32, and every num_heads={list(num_heads)} even, its half dividing "
                            f"embed_dim / 2")
        self.split, self.expansion, self.qkv_bias = tuple(split_size), expansion_factor, qkv_bias
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=max(split_size), mlp_ratio=expansion_factor,
                         drop_path_rate=drop_path_rate, upsampler=upsampler, num_features=num_features,
                         resi_connection=resi_connection, rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """A residual group of blocks alternating spatial (even) and channel (odd) attention; the
        shifted spatial ones: blocks 2, 6, ... of even groups, 0, 4, ... of odd ones."""
        def attn(b: int) -> nn.Module:
            if b % 2:
                return ChannelAttention(dim, heads, self.qkv_bias)
            return SpatialAttention(dim, heads, self.split, shifted(group, b), self.qkv_bias)

        return RSTB(dim, [DATBlock(dim, attn(b), self.expansion, rate) for b, rate in enumerate(drop_paths)],
                    self.resi_connection)

    def forward(self, lr: Tensor) -> Tensor:
        if self.training and lr.shape[0] < 2 and any(isinstance(m, nn.BatchNorm2d) for m in self.modules()):
            raise UserError(f"{self.name}: training batches need 2 or more images (its BatchNorm layers); set "
                            f"data.batch_size to 2 or more")
        x = self.conv_first(lr - self.mean)
        size = x.shape[-2:]
        tokens = self.embed(x)
        for layer in self.layers:
            tokens = layer(tokens, size)
        body = self.norm(tokens).transpose(1, 2).reshape_as(x)
        return self.upsample(self.conv_after_body(body) + x) + self.mean
