"""SwinIR: Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCV Workshops 2021.

Defaults: the classical SR network: a 3x3 convolution to 180 features, 6 residual Swin
Transformer blocks (RSTB) of 6 Swin Transformer layers each (6 heads, 8x8 windows, every
second layer's windows shifted by 4, MLP ratio 2, relative position bias, stochastic depth
0.1), each RSTB closed by a 3x3 convolution and a skip, LayerNorm and a 3x3 convolution
with a global skip, then a 3x3 convolution to 64 features (LeakyReLU), a pixel-shuffle
upsampler (x2 steps or one x3) and a 3x3 convolution to C channels; the DIV2K mean is
subtracted on RGB. ``swinir_light`` (the lightweight model): 60 features, 4 RSTB of 6
layers, and one convolution + pixel shuffle straight from the features ("pixelshuffledirect").
The real-world models upsample by x2 steps of nearest-neighbour + 3x3 convolution and a 3x3
convolution at HR (``swinir_real``, SwinIR-M: 11,715,559 parameters at x4); SwinIR-L
(``swinir_real_large``: 240 features, 9 groups, 8 heads, 28,013,059 parameters) closes each
group with three convolutions (3x3 to 60, 1x1, 3x3 back: ``resi_connection=3conv``).
Any input size: the LR image is mirror-padded to a multiple of the window inside ``forward``
and the output cropped. Tiled inference equals one pass when the tile and the overlap are
multiples of the window (the tiles then share the image's window grid) and the overlap
covers the receptive field, which every shifted layer widens by half a window: the default
36 layers need an overlap of well over the usual 48 LR pixels.

Parameters (RGB), counting the relative-position bias tables: classical 11,752,487 /
11,937,127 / 11,900,199 at x2 / x3 / x4 (the paper's "11.8M"); light 910,152 / 918,267 /
929,628, which is the paper's 878K / 886K / 897K without the 24 tables of 15 x 15 x 6
(32,400 values): the paper counts the light model without them, the classical one with them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, NearestConvUpsampler, PixelShuffleUpsampler, mean_shift
from sr_lightning.nets.release_format import ReleaseFormat, Rewrites, indices, shape, shuffle_scale

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")
RESIDUAL_CONVS = ("1conv", "3conv")


def residual_conv(dim: int, kind: str) -> nn.Module:
    """The convolution closing each residual group and the body, (N, dim, H, W) -> same shape:
    one 3x3 (``1conv``) or, to save parameters (the large real-world models), a 3x3 to dim/4,
    a 1x1 and a 3x3 back, LeakyReLU 0.2 between them (``3conv``)."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, padding=1)
    q = dim // 4
    return nn.Sequential(nn.Conv2d(dim, q, 3, padding=1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(q, q, 1),
                         nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(q, dim, 3, padding=1))


def window_partition(x: Tensor, window: int) -> Tensor:
    """(N, H, W, C) -> (N * H/w * W/w, w*w, C)."""
    n, h, w, c = x.shape
    x = x.view(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """(N * H/w * W/w, w*w, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_regions(h: int, w: int, window: int, cut: int, device: torch.device) -> Tensor:
    """(windows, w*w) labels of the regions a cyclic shift joins in each window of an h x w
    map: three bands per axis, cut at ``-window`` and ``cut`` (``-shift``)."""
    region = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -window), slice(-window, cut), slice(cut, None))
    for label, (hs, ws) in enumerate((hs, ws) for hs in bands for ws in bands):
        region[:, hs, ws, :] = label
    return window_partition(region, window).squeeze(-1)


@functools.cache
def window_position_index(window: int) -> Tensor:
    """(w*w, w*w) indices into a (2w - 1)^2-entry relative position table: the offset
    (dy, dx) between two pixels of a w x w window as ``(dy + w - 1) * (2w - 1) + dx + w - 1``
    (made once per window size, on the CPU; layers take copies)."""
    with torch.device("cpu"):
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside w x w windows with a learned relative position bias,
    (B, w*w, C) -> same shape; ``mask`` (windows, w*w, w*w) keeps shifted windows apart.
    ``project_qkv=False``: no qkv projection of its own (a layer that shares one calls
    :meth:`attend` with it, ATD's)."""

    def __init__(self, dim: int, window: int, heads: int, project_qkv: bool = True) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", window_position_index(window).clone(), persistent=False)
        if project_qkv:
            self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.attend(self.qkv(x), mask)

    def attend(self, qkv: Tensor, mask: Tensor | None) -> Tensor:
        """The attention of projected windows (B, w*w, 3C) -> (B, w*w, C)."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(b, self.heads, n, n)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p``
    (and scale the kept ones by 1/(1-p)); the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class SwinLayer(nn.Module):
    """One Swin Transformer layer on (N, H*W, C) tokens of an H x W map (H, W multiples of
    the window): (shifted) window attention and an MLP, each pre-normed with a skip."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attention_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        """(windows, w*w, w*w): -100 between tokens the cyclic shift brought together, else 0."""
        if self.shift == 0:
            return None
        windows = shift_regions(h, w, self.window, -self.shift, device)
        mask = windows.unsqueeze(1) - windows.unsqueeze(2)
        return mask.masked_fill(mask != 0, -100.0)

    def attend(self, y: Tensor, size: tuple[int, int]) -> Tensor:
        """(Shifted) window attention of normed tokens (N, H*W, C) -> same shape."""
        h, w = size
        n, _, c = y.shape
        y = y.view(n, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attention_mask(h, w, y.device).to(y.dtype)
                      if self.shift else None)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        return y.reshape(n, h * w, c)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attend(self.norm1(x), size))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin layers (unshifted, shifted, ...), a 3x3
    convolution, and a skip; (N, H*W, C) tokens -> same shape."""

    def __init__(self, dim: int, layers: list[nn.Module], resi_connection: str = "1conv") -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.conv = residual_conv(dim, resi_connection)

    def mix(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """The token layers in turn, (N, H*W, C) -> same shape."""
        for layer in self.layers:
            x = layer(x, size)
        return x

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n, _, c = x.shape
        y = self.conv(self.mix(x, size).transpose(1, 2).reshape(n, c, *size))
        return x + y.flatten(2).transpose(1, 2)


# The authors' layout (github.com/JingyunLiang/SwinIR), shared by HAT (github.com/XPixelGroup/HAT).
SWIN_GROUP_KEYS: Rewrites = ((r"\.residual_group\.blocks\.", ".layers."), (r"^patch_embed\.norm\.", "patch_norm."))
SWIN_KEYS: Rewrites = (*SWIN_GROUP_KEYS, (r"\.mlp\.fc1\.", ".mlp.0."), (r"\.mlp\.fc2\.", ".mlp.2."))
SWIN_UPSAMPLER_KEYS: Rewrites = ((r"^upsample\.", "upsample.2."), (r"^conv_before_upsample\.0\.", "upsample.0."),
                                 (r"^conv_last\.", "upsample.3."), (r"^conv_(up\d|hr)\.", r"upsample.2.conv_\1."))


def upsampler_keys(config: Mapping[str, Any]) -> Rewrites:
    """The authors' upsampler names for a model config: the classical / real-world upsampler's
    (``pixelshuffledirect``, the lightweight one step, is ``upsample.0`` in both layouts)."""
    return SWIN_UPSAMPLER_KEYS if config.get("upsampler", "pixelshuffle") != "pixelshuffledirect" else ()


# The shifted windows' masks and the relative position index tables: computed from the sizes.
SWIN_DERIVED = (r"attn_mask$", r"relative_position_index(_SA|_OCA)?$")


def swin_kwargs(state: Mapping[str, Tensor]) -> dict[str, Any] | None:
    """What a SwinIR-layout state dict (our names) fixes: channels, ``embed_dim``, each group's
    depth and heads (from its relative position bias table, or the per-head temperature of
    Swin V2 layers), the window (from the bias table, (2w - 1)^2 rows; V2 weights do not
    hold it), the MLP ratio, the residual convolution, the upsampler and scale (and
    ``num_features`` of the classical and real-world ones)."""
    first = shape(state, "conv_first.weight")
    groups = indices(state, r"^layers\.(\d+)\.layers\.")
    mlp, up = shape(state, "layers.0.layers.0.mlp.0.weight"), shape(state, "upsample.0.weight")

    def heads(group: int) -> int | None:
        table = shape(state, f"layers.{group}.layers.0.attn.relative_position_bias_table")
        temperature = shape(state, f"layers.{group}.layers.0.attn.logit_scale")
        return table[1] if table is not None else temperature[0] if temperature is not None else None

    if first is None or not groups or mlp is None or up is None or None in (found := [heads(g) for g in groups]):
        return None
    c, e = first[1], first[0]
    kwargs: dict[str, Any] = {
        "in_channels": c, "embed_dim": e, "mlp_ratio": mlp[0] / e, "num_heads": found,
        "depths": [len(indices(state, rf"^layers\.{g}\.layers\.(\d+)\.")) for g in groups]}
    table = shape(state, "layers.0.layers.0.attn.relative_position_bias_table")
    if table is not None:
        kwargs["window_size"] = (round(table[0] ** 0.5) + 1) // 2
    if "layers.0.conv.0.weight" in state:
        kwargs["resi_connection"] = "3conv"
    steps = indices(state, r"^upsample\.2\.(\d+)\.weight")
    if steps:  # classical: conv to num_features, x2 (or one x3) pixel-shuffle steps, conv to C
        scale = shuffle_scale(shape(state, "upsample.2.0.weight")[0], up[0], len(steps))
        kwargs.update(upsampler="pixelshuffle", num_features=up[0])
    elif "upsample.2.conv_up1.weight" in state:  # real-world: conv to num_features, nearest + conv steps
        scale = 4 if "upsample.2.conv_up2.weight" in state else 2
        kwargs.update(upsampler="nearest+conv", num_features=up[0])
    else:  # lightweight: one convolution to C * s^2
        scale = shuffle_scale(up[0], c)
        kwargs["upsampler"] = "pixelshuffledirect"
    return None if scale is None else {**kwargs, "scale": scale}


class SwinIR(SRNet):
    """SwinIR (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "swinir"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Liang et al., ICCVW 2021"
    published_on_rgb = True
    scales = (2, 3, 4, 8)

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release: their Swin layer names; the classical upsampler's convolutions
        (``pixelshuffledirect``, the lightweight model's one step, is ``upsample.0`` in both);
        the masks and index tables are derived."""
        upsampler = upsampler_keys(config)
        return ReleaseFormat(key_map=(*SWIN_KEYS, *upsampler), derived=SWIN_DERIVED)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The Swin groups' depths, heads and window (read off the bias tables), the MLP ratio,
        and the upsampler: classical (a convolution to ``num_features`` and x2 steps) or
        lightweight (one convolution to ``C * s^2``)."""
        if "layers.0.layers.0.attn.relative_position_bias_table" not in state or cls._hybrid(state):
            return None
        return swin_kwargs(state)

    @staticmethod
    def _hybrid(state: Mapping[str, Tensor]) -> bool:
        """HAT's hybrid attention blocks are present (a HAT file, not a SwinIR one)."""
        return "layers.0.overlap_attn.qkv.weight" in state

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Ours and the authors' classical / real-world and lightweight layouts (their upsamplers'
        names differ)."""
        return {"sr_lightning": ReleaseFormat(),
                "release (classical, real-world)": cls.release_format({"upsampler": "pixelshuffle"}),
                "release (lightweight)": cls.release_format({"upsampler": "pixelshuffledirect"})}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 8, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 upsampler: str = "pixelshuffle", num_features: int = 64, resi_connection: str = "1conv",
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if upsampler not in UPSAMPLERS or resi_connection not in RESIDUAL_CONVS:
            raise UserError(f"{self.name}: upsampler={upsampler!r} / resi_connection={resi_connection!r}: the "
                            f"upsampler is one of {UPSAMPLERS}, the residual convolution one of {RESIDUAL_CONVS}")
        if len(depths) != len(num_heads) or any(embed_dim % h for h in num_heads):
            raise UserError(f"swinir: depths={list(depths)} and num_heads={list(num_heads)} must be as long as each "
                            f"other, and embed_dim={embed_dim} divisible by every head count")
        if upsampler == "nearest+conv" and scale not in (2, 4):
            raise UserError(f"{self.name}: upsampler=nearest+conv does x2 and x4, not x{scale}: use data.scale=2 or 4, "
                            f"or another model.upsampler")
        self.window, self.resi_connection = window_size, resi_connection
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.patch_norm = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # plain numbers, on any device
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            self.residual_group(i, embed_dim, h, mlp_ratio, rates[s: s + d])
            for i, (d, h, s) in enumerate(zip(depths, num_heads, starts, strict=True)))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        if upsampler != "pixelshuffledirect":
            steps = PixelShuffleUpsampler if upsampler == "pixelshuffle" else NearestConvUpsampler
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, num_features, 3, padding=1),
                                          nn.LeakyReLU(inplace=True), steps(num_features, scale),
                                          nn.Conv2d(num_features, in_channels, 3, padding=1))
        else:
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, in_channels * scale * scale, 3, padding=1),
                                          nn.PixelShuffle(scale))

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """Residual group number ``group`` of ``len(drop_paths)`` layers: an RSTB of Swin layers,
        every second one shifted."""
        return RSTB(dim, [SwinLayer(dim, heads, self.window, 0 if i % 2 == 0 else self.window // 2, mlp_ratio, rate)
                          for i, rate in enumerate(drop_paths)], self.resi_connection)

    def embed(self, x: Tensor) -> Tensor:
        """Features (N, F, H, W) -> normed tokens (N, H*W, F)."""
        return self.patch_norm(x.flatten(2).transpose(1, 2))

    def pad(self, x: Tensor) -> Tensor:
        """(N, C, h, w) mirror-padded at the bottom and right to multiples of the window (an
        image smaller than the padding repeats its edge)."""
        h, w = x.shape[-2:]
        pad = (0, (-w) % self.window, 0, (-h) % self.window)
        return F.pad(x, pad, mode="reflect" if pad[1] < w and pad[3] < h else "replicate") if any(pad) else x

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        x = self.conv_first(self.pad(lr - self.mean))
        size = x.shape[-2:]
        tokens = self.embed(x)
        for layer in self.layers:
            tokens = layer(tokens, size)
        body = self.norm(tokens).transpose(1, 2).reshape_as(x)
        out = self.upsample(self.conv_after_body(body) + x) + self.mean
        return out[..., : self.scale * h, : self.scale * w]
