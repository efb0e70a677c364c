"""HAT: Chen, Wang, Zhou, Qiao, Dong, "Activating More Pixels in Image Super-Resolution
Transformer", CVPR 2023.

SwinIR's frame (``sr_lightning.nets.swinir``: shallow convolution, residual groups of
token layers closed by a convolution, LayerNorm, convolution, global skip, pixel-shuffle
upsampler from 64 features, DIV2K mean) with other groups. Defaults: HAT, 6 residual
hybrid attention groups (RHAG) of 180 features, each:

- 6 hybrid attention blocks (HAB): a Swin layer (16x16 windows, every second one shifted
  by 8, 6 heads, relative position bias, MLP ratio 2) whose attention branch gets a
  channel attention block added, scaled by 0.01: a 3x3 convolution to 180/3 features,
  GELU, a 3x3 convolution back, RCAN's channel attention (squeeze 180 -> 180/30);
- one overlapping cross-attention block (OCAB): queries from each 16x16 window, keys and
  values from the 24x24 window around it (overlap ratio 0.5), relative position bias
  over the (16 + 24 - 1)^2 offsets, a projection and an MLP, each with a skip.

``hat_s`` (HAT-S): 144 features, CAB compression 24 and squeeze 24. Any input size: the
LR image is mirror-padded to a multiple of the window inside ``forward`` and the output
cropped. The channel attention pools over the whole image, so tiled inference is close
to one pass but not equal to it (``tiles_exactly = False``).

Parameters (RGB) at x4: HAT 20,772,507 and HAT-S 9,621,183, the paper's 20.8M and 9.6M.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, ChannelAttention, conv
from sr_lightning.nets.release_format import ReleaseFormat, shape
from sr_lightning.nets.swinir import (
    RSTB,
    SWIN_DERIVED,
    SWIN_KEYS,
    SWIN_UPSAMPLER_KEYS,
    SwinIR,
    SwinLayer,
    swin_kwargs,
    window_partition,
    window_reverse,
)


class HAB(SwinLayer):
    """Hybrid attention block: a Swin layer with a channel attention block beside the
    window attention; (N, H*W, C) tokens of an H x W map -> same shape."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float,
                 compress_ratio: int, squeeze_factor: int, conv_scale: float) -> None:
        super().__init__(dim, heads, window, shift, mlp_ratio, drop_path)
        self.conv_scale = conv_scale
        self.conv_block = nn.Sequential(conv(dim, dim // compress_ratio), nn.GELU(), conv(dim // compress_ratio, dim),
                                        ChannelAttention(dim, squeeze_factor))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        n, _, c = x.shape
        y = self.norm1(x)
        local = self.conv_block(y.transpose(1, 2).reshape(n, c, *size)).flatten(2).transpose(1, 2)
        x = x + self.drop_path(self.attend(y, size)) + self.conv_scale * local
        return x + self.drop_path(self.mlp(self.norm2(x)))


@functools.cache
def overlap_position_index(window: int, overlap: int) -> Tensor:
    """(w*w, o*o) indices into the (w + o - 1)^2-entry bias table for each query (window
    pixel) and key (overlapping-window pixel): the authors' release indexes its table with
    offsets shifted by w - o + 1, negative ones wrapping around; this is the same
    one-to-one assignment with the wrap made explicit, so released tables load as they are.
    Made once per size, on the CPU (layers take copies)."""
    def grid(size: int) -> Tensor:
        return torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)

    with torch.device("cpu"):
        rel = (grid(overlap)[:, None, :] - grid(window)[:, :, None]).permute(1, 2, 0) + (window - overlap + 1)
        side = window + overlap - 1
        return (rel[..., 0] * side + rel[..., 1]) % (side * side)


class OCAB(nn.Module):
    """Overlapping cross-attention block: each w x w window's queries attend to the
    o x o window around it (o = w + w * ratio), then an MLP; (N, H*W, C) -> same shape."""

    def __init__(self, dim: int, window: int, overlap_ratio: float, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window, self.heads, self.scale = window, heads, (dim // heads) ** -0.5
        self.overlap = int(window * overlap_ratio) + window
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((window + self.overlap - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", overlap_position_index(window, self.overlap).clone(),
                             persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        n, _, c = x.shape
        ow, d = self.overlap, c // self.heads
        qkv = self.qkv(self.norm1(x)).view(n, h, w, 3, c)
        q = window_partition(qkv[..., 0, :], self.window)  # (n * windows, w*w, c)
        kv = F.unfold(qkv[..., 1:, :].reshape(n, h, w, 2 * c).permute(0, 3, 1, 2), kernel_size=ow,
                      stride=self.window, padding=(ow - self.window) // 2)  # (n, 2c * o*o, windows)
        k, v = kv.view(n, 2, c, ow * ow, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, ow * ow, c)
        heads = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, d).transpose(1, 2)  # noqa: E731
        attn = (heads(q) * self.scale) @ heads(k).transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.view(self.window ** 2, ow * ow, -1).permute(2, 0, 1).unsqueeze(0)
        out = (attn.softmax(dim=-1) @ heads(v)).transpose(1, 2).reshape(-1, self.window ** 2, c)
        x = x + self.proj(window_reverse(out, self.window, h, w).reshape(n, h * w, c))
        return x + self.mlp(self.norm2(x))


class RHAG(RSTB):
    """Residual hybrid attention group: HABs, an OCAB, a 3x3 convolution and a skip;
    (N, H*W, C) tokens -> same shape."""

    def __init__(self, dim: int, blocks: list[nn.Module], overlap_attn: OCAB) -> None:
        super().__init__(dim, blocks)
        self.overlap_attn = overlap_attn

    def mix(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.overlap_attn(super().mix(x, size), size)


class HAT(SwinIR):
    """HAT (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "hat"
    paper = "Chen et al., CVPR 2023"
    published_on_rgb = True
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/XPixelGroup/HAT): SwinIR's layout, the overlapping
        cross-attention and channel-attention blocks' names, SwinIR's upsampler; masks and the
        shared index tables derived."""
        return ReleaseFormat(key_map=(*SWIN_KEYS, (r"\.residual_group\.overlap_attn\.", ".overlap_attn."),
                                      (r"\.conv_block\.cab\.", ".conv_block."), (r"\.attention\.1\.", ".excite.0."),
                                      (r"\.attention\.3\.", ".excite.2."), *SWIN_UPSAMPLER_KEYS),
                             derived=SWIN_DERIVED)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """SwinIR's, and the hybrid blocks' channel compression and squeeze, and the overlapping
        window's ratio (read off its bias table)."""
        if not cls._hybrid(state) or "conv_first.weight" not in state:
            return None
        kwargs = swin_kwargs(state)
        if kwargs is None or kwargs.pop("upsampler") != "pixelshuffle":
            return None
        e, w = kwargs["embed_dim"], kwargs["window_size"]
        compress, squeeze = shape(state, "layers.0.layers.0.conv_block.0.weight"), shape(
            state, "layers.0.layers.0.conv_block.3.excite.0.weight")
        table = shape(state, "layers.0.overlap_attn.relative_position_bias_table")
        if compress is None or squeeze is None or table is None:
            return None
        overlap = round(table[0] ** 0.5) + 1 - w
        return {**kwargs, "compress_ratio": e // compress[0], "squeeze_factor": e // squeeze[0],
                "overlap_ratio": (overlap - w) / w}

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Ours and the authors' release."""
        return {"sr_lightning": ReleaseFormat(), "release": cls.release_format({})}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, embed_dim: int = 180,
                 depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 16, compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 num_features: int = 64, rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        if embed_dim % compress_ratio or embed_dim % squeeze_factor:
            raise UserError(f"hat: embed_dim={embed_dim} must be divisible by compress_ratio={compress_ratio} and "
                            f"squeeze_factor={squeeze_factor}")
        if window_size % 2 or int(window_size * overlap_ratio) % 2:
            raise UserError(f"hat: window_size={window_size} and window_size * overlap_ratio={overlap_ratio} must be "
                            f"even (the overlapping window is centred on its window)")
        # Plain values, read by residual_group while SwinIR.__init__ builds the groups.
        self.hybrid = (compress_ratio, squeeze_factor, conv_scale, overlap_ratio)
        super().__init__(scale=scale, in_channels=in_channels, embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                         drop_path_rate=drop_path_rate, upsampler="pixelshuffle", num_features=num_features,
                         rgb_mean=rgb_mean)

    def residual_group(self, group: int, dim: int, heads: int, mlp_ratio: float, drop_paths: list[float]) -> nn.Module:
        """One RHAG: hybrid attention blocks (every second one shifted) and an OCAB."""
        compress_ratio, squeeze_factor, conv_scale, overlap_ratio = self.hybrid
        return RHAG(dim, [HAB(dim, heads, self.window, 0 if i % 2 == 0 else self.window // 2, mlp_ratio, rate,
                              compress_ratio, squeeze_factor, conv_scale) for i, rate in enumerate(drop_paths)],
                    OCAB(dim, self.window, overlap_ratio, heads, mlp_ratio))
