"""DITN: Liu, Jia, Dong, Hu, Li, Wang, "Unfolding Once is Enough: A Deployment-Friendly
Transformer Unit for Super-Resolution", ACM MM 2023; the authors' released network is its
real-world deployment form, DITN_Real (github.com/yongliuy/DITN).

Defaults: DITN_Real: a 3x3 convolution to 60 features, one UFONE unit, a 3x3 convolution
with a global skip, one 3x3 convolution to C*s^2 channels + pixel shuffle; no mean shift;
the input mirror-padded to multiples of 8 (tiled inference equals one pass when the tiles
and overlap are multiples of the 8-pixel patch, as SwinIR's windows). A UFONE unit: 4 inner-patch transformer layers
(ITL) on the 8 x 8 patches (each: ``x + attn(conv1x1(tanh(x)))`` with channel self-attention
over the patch's pixels, L2-normalised with one temperature, then ``x + ffn(conv1x1(tanh(x)))``
with a gated depthwise FFN), then 4 spatial-aware layers (SAL) on the whole map (the same
with a spatial attention of depthwise 5x5 and dilated 7x7 convolutions gating a 1x1
projection, scaled by a learned per-channel factor). Key names follow the authors'
release. Parameters on RGB as the authors' code builds them: 424,636 / 432,751 / 444,112 at
x2 / x3 / x4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import GatedFFN, conv
from sr_lightning.nets.release_format import indices, shape, shuffle_scale


class ISA(nn.Module):
    """Channel self-attention over the pixels of (B, C, h, w), one temperature; -> same shape."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.transpose(-1, -2) for t in self.qkv(x.view(b, c, -1).transpose(-1, -2)).chunk(3, dim=-1))
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        return self.project_out((attn.softmax(dim=-1) @ v).view(b, c, h, w))


class SDA(nn.Module):
    """Spatial-aware attention: half of a 1x1 projection gates the other through depthwise 5x5,
    dilated (3) 7x7 and 1x1 convolutions; a 1x1 and a learned per-channel scale; (B, C, H, W) -> same."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.DConvs = nn.Sequential(nn.Conv2d(dim, dim, 5, padding=2, groups=dim),
                                    nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3), nn.Conv2d(dim, dim, 1))
        self.proj_first = nn.Sequential(nn.Conv2d(dim, 2 * dim, 1))
        self.proj_last = nn.Sequential(nn.Conv2d(dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        a, x = self.proj_first(x).chunk(2, dim=1)
        return self.proj_last(x * self.DConvs(a)) * self.scale


class TanhLayer(nn.Module):
    """``x + mixer(conv1x1(tanh(x)))``, then ``x + ffn(conv1x1(tanh(x)))``: an ITL (``mixer``
    the channel attention, named ``attn``) or an SAL (the spatial-aware attention, ``SDA``)."""

    def __init__(self, dim: int, mixer_name: str, mixer: nn.Module, expansion: float) -> None:
        super().__init__()
        self.mixer_name = mixer_name
        setattr(self, mixer_name, mixer)
        self.conv1, self.conv2 = conv(dim, dim, 1), conv(dim, dim, 1)
        self.ffn = GatedFFN(dim, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = x + getattr(self, self.mixer_name)(self.conv1(torch.tanh(x)))
        return x + self.ffn(self.conv2(torch.tanh(x)))


class UFONE(nn.Module):
    """Inner-patch layers on p x p patches, then spatial-aware layers on the map; (B, C, H, W) -> same."""

    def __init__(self, dim: int, itl_blocks: int, sal_blocks: int, patch: int, expansion: float) -> None:
        super().__init__()
        self.patch = patch
        self.ITLs = nn.Sequential(*(TanhLayer(dim, "attn", ISA(dim), expansion) for _ in range(itl_blocks)))
        self.SALs = nn.Sequential(*(TanhLayer(dim, "SDA", SDA(dim), expansion) for _ in range(sal_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        p = self.patch
        patches = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p, p)
        patches = self.ITLs(patches).view(b, h // p, w // p, c, p, p)
        return self.SALs(patches.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w))


class DITN(SRNet):
    """DITN (DITN_Real) (N, C, h, w) -> (N, C, s*h, s*w)."""

    name = "ditn"
    upsampling = "pixel shuffle"
    paper = "Liu et al., ACM MM 2023"
    published_on_rgb = True

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Width, units, inner-patch and spatial-aware layers, the FFN expansion and the scale."""
        first, up = shape(state, "sft.weight"), shape(state, "upsample.0.weight")
        ffn = shape(state, "UFONE.0.ITLs.0.ffn.project_in.weight")
        if first is None or up is None or ffn is None:
            return None
        scale = shuffle_scale(up[0], first[1])
        return None if scale is None else {
            "in_channels": first[1], "num_features": first[0], "scale": scale, "expansion": ffn[0] / 2 / first[0],
            "units": len(indices(state, r"^UFONE\.(\d+)\.")),
            "itl_blocks": len(indices(state, r"^UFONE\.0\.ITLs\.(\d+)\.")),
            "sal_blocks": len(indices(state, r"^UFONE\.0\.SALs\.(\d+)\."))}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 60, units: int = 1,
                 itl_blocks: int = 4, sal_blocks: int = 4, patch_size: int = 8, expansion: float = 2.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.patch = patch_size
        self.sft = conv(in_channels, num_features)
        self.UFONE = nn.Sequential(*(UFONE(num_features, itl_blocks, sal_blocks, patch_size, expansion)
                                     for _ in range(units)))
        self.conv_after_body = conv(num_features, num_features)
        self.upsample = nn.Sequential(conv(num_features, in_channels * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        pad = (0, (-w) % self.patch, 0, (-h) % self.patch)
        if any(pad):  # mirrored; an image smaller than the padding repeats its edge
            lr = F.pad(lr, pad, mode="reflect" if pad[1] < w and pad[3] < h else "replicate")
        feat = self.sft(lr)
        out = self.upsample(self.conv_after_body(self.UFONE(feat)) + feat)
        return out[..., : self.scale * h, : self.scale * w]
