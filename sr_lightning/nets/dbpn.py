"""D-DBPN: Haris et al., "Deep Back-Projection Networks for Super-Resolution", CVPR 2018.

Defaults: the paper's D-DBPN (T = 7 stages): a 3x3 convolution to 256 features and a 1x1
to 64, then alternating up- and down-projection units, each fed the concatenation of every
earlier unit of the other kind (dense connections; a 1x1 convolution squeezes a
concatenation back to 64 features), and a 3x3 convolution over all up-projections' HR
outputs to C channels. A projection unit maps x to y0 = P(x), back-projects the error
e = Q(y0) - x and returns y0 + P(e), where P is a transposed (up) or strided (down)
convolution and Q the opposite one (kernel 6 / 8 / 12, stride s, padding 2 at x2 / x4 /
x8), every convolution followed by a one-parameter PReLU. DBPN-LL is ``num_stages`` 10;
the paper's DBPN (no dense connections) is not this network.

Parameters (RGB): 5,953,526 / 10,426,358 / 23,205,878 at x2 / x4 / x8: the 10,426K the
literature's tables give D-DBPN at x4 (e.g. SwinIR's Table 2). The network works at LR and
HR resolution throughout, so its cost grows with s^2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import conv
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape

# kernel, stride, padding of the projections at each scale (the authors' choices).
PROJECTION = {2: (6, 2, 2), 4: (8, 4, 2), 8: (12, 8, 2)}


def _with_prelu(layer: nn.Module) -> nn.Sequential:
    return nn.Sequential(layer, nn.PReLU())


class Projection(nn.Module):
    """A back-projection unit: up (N, n*F, h, w) -> (N, F, s*h, s*w), or down the reverse;
    ``inputs`` > 1 concatenated feature maps are squeezed to F by a 1x1 convolution first."""

    def __init__(self, features: int, inputs: int, scale: int, up: bool) -> None:
        super().__init__()
        kernel, stride, padding = PROJECTION[scale]

        def step(transposed: bool) -> nn.Sequential:
            layer = nn.ConvTranspose2d if transposed else nn.Conv2d
            return _with_prelu(layer(features, features, kernel, stride, padding))

        self.squeeze = _with_prelu(conv(inputs * features, features, 1)) if inputs > 1 else None
        self.project, self.back, self.correct = step(up), step(not up), step(up)

    def forward(self, x: Tensor) -> Tensor:
        if self.squeeze is not None:
            x = self.squeeze(x)
        first = self.project(x)
        return first + self.correct(self.back(first) - x)


class DBPN(SRNet):
    """D-DBPN (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 4, 8."""

    name = "dbpn"
    upsampling = "back-projection (transposed conv, stride s)"
    paper = "Haris et al., CVPR 2018"
    published_on_rgb = True
    scales = (2, 4, 8)

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/alterzero/DBPN-Pytorch, dbpn.py / dbpn_v1.py):
        ``feat0``, ``feat1``, ``up1..T``, ``down1..T-1`` (``up_conv1..3`` / ``down_conv1..3``,
        the squeeze ``conv``), each layer a ``conv`` or ``deconv`` with its PReLU ``act``;
        ``output_conv``."""
        return ReleaseFormat(key_map=(
            (r"^feat0\.conv\.", "head.0."), (r"^feat0\.act\.", "head.1."),
            (r"^feat1\.conv\.", "head.2."), (r"^feat1\.act\.", "head.3."), (r"^output_conv\.conv\.", "tail."),
            (r"^up(\d+)\.", lambda m: f"ups.{int(m[1]) - 1}."), (r"^down(\d+)\.", lambda m: f"downs.{int(m[1]) - 1}."),
            (r"\.conv\.(conv|act)\.", r".squeeze.\1."),
            (r"\.(?:up|down)_conv1\.", ".project."), (r"\.(?:up|down)_conv2\.", ".back."),
            (r"\.(?:up|down)_conv3\.", ".correct."),
            (r"\.(?:de)?conv\.", ".0."), (r"\.act\.", ".1.")))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The head's widths, ``num_stages`` up-projections and the scale their transposed
        convolution's kernel and stride imply (6 / 8 / 12 at x2 / x4 / x8)."""
        head, squeeze, up = shape(state, "head.0.weight"), shape(state, "head.2.weight"), \
            shape(state, "ups.0.project.0.weight")
        if head is None or squeeze is None or up is None or len(up) != 4:
            return None
        scale = next((s for s, (kernel, _, _) in PROJECTION.items() if up[2:] == (kernel, kernel)), None)
        return None if scale is None else {
            "in_channels": head[1], "head_features": head[0], "num_features": squeeze[0], "scale": scale,
            "num_stages": len(indices(state, r"^ups\.(\d+)\."))}

    def __init__(self, *, scale: int = 4, in_channels: int = 3, num_features: int = 64, head_features: int = 256,
                 num_stages: int = 7) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.head = nn.Sequential(conv(in_channels, head_features), nn.PReLU(),
                                  conv(head_features, num_features, 1), nn.PReLU())
        # up t (0-based) sees the t down-projections before it (the first sees the head), down t sees t + 1 ups.
        self.ups = nn.ModuleList(Projection(num_features, max(1, t), scale, up=True) for t in range(num_stages))
        self.downs = nn.ModuleList(Projection(num_features, t + 1, scale, up=False) for t in range(num_stages - 1))
        self.tail = conv(num_stages * num_features, in_channels)

    def forward(self, lr: Tensor) -> Tensor:
        highs, lows = [self.ups[0](self.head(lr))], []
        for up, down in zip(self.ups[1:], self.downs, strict=True):
            lows.insert(0, down(torch.cat(highs, 1)))
            highs.insert(0, up(torch.cat(lows, 1)))
        return self.tail(torch.cat(highs, 1))
