"""RDN: Zhang et al., "Residual Dense Network for Image Super-Resolution", CVPR 2018.

Defaults: the paper's network (D = 16 residual dense blocks of C = 8 convolutions, growth
rate G = 64, G0 = 64 features): two 3x3 convolutions of shallow features, the blocks (each
convolution sees the block's input and every earlier convolution's output, 3x3 + ReLU to G
channels; a 1x1 local fusion back to G0 and the block's input added), a global fusion of
every block's output (1x1 over D * G0 channels, then 3x3) plus the first shallow features,
and a pixel-shuffle upsampler to G channels (one x2 / x3 step, x2 steps for x4 and x8)
with a 3x3 convolution to C channels. No mean shift.

Parameters (RGB): 22,123,395 / 22,308,035 / 22,271,107 at x2 / x3 / x4: the 22.3M the
literature's tables give RDN at x4 (e.g. SwinIR's Table 2, 22,271K). x8 (three x2 steps,
as RCAN's) is an extension, not in the paper. ``img_range``: the network sees
``x * img_range`` and its output is divided by it; the EDSR-PyTorch framework the authors'
PyTorch port runs in trains on 0..255 (``rgb_range``), which its release format states.
A convolutional network without global statistics: tiled inference equals one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import PixelShuffleUpsampler, conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale


class DenseLayer(nn.Module):
    """3x3 convolution + ReLU whose output is concatenated to its input, (N, F, H, W) -> (N, F + G, H, W)."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv(features, growth), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), 1)


class ResidualDenseBlock(nn.Module):
    """``num_layers`` dense layers, a 1x1 local feature fusion back to G0 channels and the
    block's input added, (N, G0, H, W) -> same shape."""

    def __init__(self, features: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(DenseLayer(features + i * growth, growth) for i in range(num_layers)))
        self.fuse = conv(features + num_layers * growth, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fuse(self.convs(x))


class RDN(SRNet):
    """RDN (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4, 8; all convolutions but the
    upsampler's at LR resolution."""

    name = "rdn"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Zhang et al., CVPR 2018"
    published_on_rgb = True
    scales = (2, 3, 4, 8)

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' PyTorch port in EDSR-PyTorch (src/model/rdn.py): ``SFENet1/2``,
        ``RDBs.i.convs.j.conv.0``, ``RDBs.i.LFF``, ``GFF``, ``UPNet``; trained on 0..255."""
        return ReleaseFormat(key_map=((r"^SFENet(\d)\.", r"head\1."), (r"^RDBs\.", "blocks."),
                                      (r"\.conv\.0\.", ".conv.0."), (r"\.LFF\.", ".fuse."),
                                      (r"^GFF\.", "fuse."), (r"^UPNet\.", "upsample.")),
                             options={"img_range": 255.0})

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Shallow features, ``num_blocks`` blocks of ``num_layers`` dense layers (their growth
        rate read off the first), the global fusion and the pixel-shuffle upsampler."""
        head, growth = shape(state, "head1.weight"), shape(state, "blocks.0.convs.0.conv.0.weight")
        up, fuse = shape(state, "upsample.0.weight"), shape(state, "fuse.0.weight")
        if head is None or growth is None or up is None or fuse is None:
            return None
        steps = indices(state, r"^upsample\.(\d+)\.weight")
        scale = shuffle_scale(up[0], growth[0], len(steps) - 1)
        return None if scale is None else {
            "in_channels": head[1], "num_features": head[0], "growth": growth[0], "scale": scale,
            "num_blocks": len(indices(state, r"^blocks\.(\d+)\.")),
            "num_layers": len(indices(state, r"^blocks\.0\.convs\.(\d+)\."))}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, num_features: int = 64, growth: int = 64,
                 num_blocks: int = 16, num_layers: int = 8, img_range: float = 1.0) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.img_range = img_range
        self.head1, self.head2 = conv(in_channels, num_features), conv(num_features, num_features)
        self.blocks = nn.ModuleList(ResidualDenseBlock(num_features, growth, num_layers) for _ in range(num_blocks))
        self.fuse = nn.Sequential(conv(num_blocks * num_features, num_features, 1), conv(num_features, num_features))
        self.upsample = nn.Sequential(*PixelShuffleUpsampler(num_features, scale, width=growth),
                                      conv(growth, in_channels))

    def forward(self, lr: Tensor) -> Tensor:
        shallow = self.head1(lr * self.img_range)
        x, outputs = self.head2(shallow), []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return self.upsample(self.fuse(torch.cat(outputs, 1)) + shallow) / self.img_range
