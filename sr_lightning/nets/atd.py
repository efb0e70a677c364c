"""ATD: Zhang, Zhang, Yan, Wang, Zuo, "Transcending the Limit of Local Window: Advanced
Super-Resolution Transformer with Adaptive Token Dictionary", CVPR 2024.

SwinIR's frame (the image mirror-padded symmetrically to window multiples, the DIV2K mean
subtracted) with ATD groups: each holds a learned token dictionary (``num_tokens`` x C) and
layers that add to their input, from one shared qkv projection, (1) Swin window attention
(every second layer shifted), (2) token-dictionary cross-attention (queries and keys
reduced to ``reducted_dim`` channels, cosine similarity scaled by ``1 + s log M``), and (3)
adaptive category attention: tokens sorted by their most similar dictionary entry and
attending within groups of ``category_size`` (the last group padded with the sorted tail
mirrored); then a ConvFFN. Each layer but the last refines the dictionary from the tokens
(an instance-normed softmax of the similarities, mixed in by a learned sigmoid gate).
Defaults: ATD (210 features, 6 groups of 6 layers, 6 heads, 16 x 16 windows, 128 tokens,
reduced to 20, categories of 256, MLP ratio 2, 5 x 5 ConvFFN); ``atd_light``: 48 features,
4 groups, 4 heads, 64 tokens reduced to 8, categories of 128, MLP ratio 1, 7 x 7 ConvFFN,
one convolution + pixel shuffle. The category size is not in the weights: a bare file gets
twice its dictionary size (both releases' pairing). Parameters on RGB at x4, as the authors'
code builds them: ATD 20,260,929, ATD-light 768,792 (the paper's 20.26M and 769K).
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
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape
from sr_lightning.nets.srformer import ConvFFN
from sr_lightning.nets.swinir import (
    SwinIR,
    SwinLayer,
    WindowAttention,
    residual_conv,
    swin_kwargs,
    upsampler_keys,
    window_partition,
    window_reverse,
)


class DictionaryAttention(nn.Module):
    """Cross-attention of the tokens (B, N, C) to the dictionary (B, M, C): (output (B, N, C),
    the similarities (B, N, M))."""

    def __init__(self, dim: int, tokens: int, reduced: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.wq, self.wk = nn.Linear(dim, reduced), nn.Linear(dim, reduced)
        self.wv = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.full((tokens,), 0.5))

    def forward(self, x: Tensor, td: Tensor) -> tuple[Tensor, Tensor]:
        attn = F.normalize(self.wq(x), dim=-1) @ F.normalize(self.wk(td), dim=-1).transpose(-2, -1)
        attn = (attn * (1 + torch.clamp(self.scale, 0, 1) * math.log(self.tokens))).softmax(dim=-1)
        return attn @ self.wv(td), attn


class CategoryAttention(nn.Module):
    """Adaptive category self-attention, (B, N, 3C) qkv and (B, N, M) similarities -> (B, N, C):
    tokens sorted by their most similar dictionary entry, attending within groups."""

    def __init__(self, dim: int, heads: int, category_size: int) -> None:
        super().__init__()
        self.heads, self.category_size = heads, category_size
        self.proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.full((1, 1), math.log(10.0)))

    def forward(self, qkv: Tensor, sim: Tensor) -> Tensor:
        b, n, c3 = qkv.shape
        c = c3 // 3
        size = min(n, self.category_size)
        groups = -(-n // size)
        order = torch.sort(torch.argmax(sim, dim=-1), dim=-1, stable=False)[1]  # as the authors sort
        back = torch.empty_like(order).scatter_(-1, order, torch.arange(n, device=order.device).expand(b, n))
        shuffled = torch.gather(qkv, 1, order.unsqueeze(-1).expand(-1, -1, c3))
        pad = groups * size - n
        padded = torch.cat((shuffled, torch.flip(shuffled[:, n - pad:n], dims=[1])), dim=1)
        q, k, v = padded.reshape(b, groups, size, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        attn = (q @ k.transpose(-2, -1)) * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        y = (attn.softmax(dim=-1) @ v).permute(0, 1, 3, 2, 4).reshape(b, n + pad, c)[:, :n]
        return self.proj(torch.gather(y, 1, back.unsqueeze(-1).expand(-1, -1, c)))


class ATDLayer(nn.Module):
    """One ATD layer: (tokens (B, H*W, C), dictionary (B, M, C)) -> both updated (the
    dictionary unchanged by the group's last layer)."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, category_size: int, tokens: int,
                 reduced: int, kernel: int, mlp_ratio: float, last: bool) -> None:
        super().__init__()
        self.window, self.shift, self.last = window, shift, last
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        if not last:
            self.norm3 = nn.InstanceNorm1d(tokens, affine=True)
            self.sigma = nn.Parameter(torch.zeros(tokens, 1))
        self.wqkv = nn.Linear(dim, 3 * dim)
        self.attn_win = WindowAttention(dim, window, heads, project_qkv=False)  # the layer's wqkv feeds it
        self.attn_atd = DictionaryAttention(dim, tokens, reduced)
        self.attn_aca = CategoryAttention(dim, heads, category_size)
        self.convffn = ConvFFN(dim, int(dim * mlp_ratio), kernel)

    attention_mask = SwinLayer.attention_mask  # the same shifted-window mask

    def forward(self, x: Tensor, td: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        h, w = size
        b, n, c = x.shape
        normed = self.norm1(x)
        qkv = self.wqkv(normed)
        x_atd, sim = self.attn_atd(normed, td)
        x_aca = self.attn_aca(qkv, sim)
        grid = qkv.view(b, h, w, 3 * c)
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        mask = self.attention_mask(h, w, x.device)
        out = self.attn_win.attend(window_partition(grid, self.window), None if mask is None else mask.to(x.dtype))
        out = window_reverse(out, self.window, h, w)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + out.reshape(b, n, c) + x_atd + x_aca
        x = x + self.convffn(self.norm2(x), size)
        if not self.last:
            weights = self.norm3(sim.transpose(-1, -2)).softmax(dim=-1)
            s = torch.sigmoid(self.sigma)
            td = s * td + (1 - s) * (weights @ x)
        return x, td


class ATDGroup(nn.Module):
    """ATD layers sharing a learned dictionary, a closing convolution and a skip; (N, H*W, C) -> same."""

    def __init__(self, dim: int, layers: list[ATDLayer], tokens: int, resi_connection: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.td = nn.Parameter(torch.randn(tokens, dim))
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n, _, c = x.shape
        y, td = x, self.td.repeat(n, 1, 1)
        for layer in self.layers:
            y, td = layer(y, td, size)
        return x + self.conv(y.transpose(1, 2).reshape(n, c, *size)).flatten(2).transpose(1, 2)


def symmetric_index(size: int, padded: int, device: torch.device) -> Tensor:
    """Indices 0..padded-1 into a side of ``size`` pixels, mirrored at the end with the edge
    pixel repeated (the authors' flip-and-concatenate; periodic where the padding is longer)."""
    i = torch.arange(padded, device=device) % (2 * size)
    return torch.where(i < size, i, 2 * size - 1 - i)


class ATD(SwinIR):
    """ATD (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "atd"
    paper = "Zhang et al., CVPR 2024"
    tiles_exactly = False  # the dictionary and the categories see the whole image

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/LabShuHangGU/Adaptive-Token-Dictionary): SwinIR's
        names, each group's ``residual_group`` around its layers and dictionary, the ConvFFN's
        depthwise convolution in a Sequential; the shared index table derived."""
        upsampler = upsampler_keys(config)
        return ReleaseFormat(key_map=((r"\.residual_group\.layers\.", ".layers."), (r"\.residual_group\.td$", ".td"),
                                      (r"^patch_embed\.norm\.", "patch_norm."),
                                      (r"\.convffn\.dwconv\.depthwise_conv\.0\.", ".convffn.dwconv."), *upsampler),
                             derived=(r"^relative_position_index_SA$",))


    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """SwinIR's arguments (heads and window off the window attention's table), the
        dictionary size and reduction, the ConvFFN's width and kernel; categories of twice
        the dictionary size (not in the weights)."""
        td, reduced = shape(state, "layers.0.td"), shape(state, "layers.0.layers.0.attn_atd.wq.weight")
        ffn = shape(state, "layers.0.layers.0.convffn.fc1.weight")
        table = shape(state, "layers.0.layers.0.attn_win.relative_position_bias_table")
        kernel = shape(state, "layers.0.layers.0.convffn.dwconv.weight")
        if td is None or reduced is None or ffn is None or table is None or kernel is None:
            return None
        groups = indices(state, r"^layers\.(\d+)\.layers\.")
        renamed = {**state, "layers.0.layers.0.mlp.0.weight": state["layers.0.layers.0.convffn.fc1.weight"],
                   **{f"layers.{g}.layers.0.attn.relative_position_bias_table":
                      state[f"layers.{g}.layers.0.attn_win.relative_position_bias_table"] for g in groups}}
        kwargs = swin_kwargs(renamed)
        if kwargs is None:
            return None
        return {**kwargs, "num_tokens": td[0], "reducted_dim": reduced[0], "category_size": 2 * td[0],
                "convffn_kernel_size": kernel[-1]}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 210,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 16, category_size: int = 256, num_tokens: int = 128, reducted_dim: int = 20,
                 convffn_kernel_size: int = 5, mlp_ratio: float = 2.0, upsampler: str = "pixelshuffle",
                 num_features: int = 64, resi_connection: str = "1conv",
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        if category_size < 1 or num_tokens < 1 or convffn_kernel_size % 2 == 0:
            raise UserError(f"atd: category_size={category_size} and num_tokens={num_tokens} must be positive and "
                            f"convffn_kernel_size={convffn_kernel_size} odd")
        self.dictionary = (category_size, num_tokens, reducted_dim, convffn_kernel_size)
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio, drop_path_rate=0.0,
                         upsampler=upsampler, num_features=num_features, resi_connection=resi_connection,
                         rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """An ATD group of ``len(drop_paths)`` layers (every second one shifted) and its dictionary."""
        category_size, tokens, reduced, kernel = self.dictionary
        depth = len(drop_paths)
        return ATDGroup(dim, [ATDLayer(dim, heads, self.window, 0 if i % 2 == 0 else self.window // 2, category_size,
                                       tokens, reduced, kernel, mlp_ratio, i == depth - 1) for i in range(depth)],
                        tokens, self.resi_connection)

    def pad(self, x: Tensor) -> Tensor:
        """Symmetric padding to window multiples (the edge pixel repeated, as the authors pad)."""
        h, w = x.shape[-2:]
        ph, pw = h + (-h) % self.window, w + (-w) % self.window
        if (ph, pw) == (h, w):
            return x
        return x[..., symmetric_index(h, ph, x.device), :][..., symmetric_index(w, pw, x.device)]
