"""ECBSR: Zhang, Zeng, Zhang, "Edge-oriented Convolution Block for Real-time Super
Resolution on Mobile Devices", ACM Multimedia 2021.

A plain stack of ``num_blocks + 2`` 3x3 convolutions (PReLU between them) at LR resolution,
their last output (C*s^2 channels) plus the input repeated into every sub-pixel, and one pixel
shuffle. Each convolution is an edge-oriented convolution block (ECB) while training: the sum of
a 3x3 convolution, a 1x1 expansion (x2) then a 3x3, and a 1x1 then each of three fixed edge
filters (Sobel x, Sobel y, Laplacian; depthwise, a learned scale and bias per channel), plus the
identity (``with_idt``). All branches are linear, so an ECB is exactly one 3x3 convolution: this
network always runs the folded kernel (:meth:`ECB.folded`), training through it, and deploys as
that plain network (:meth:`ECBSR.deployed_parameter_count`). The 1x1 branches' border is their
bias (the authors' explicit padding), which is what folding into a zero-padded 3x3 gives.

Defaults: ECBSR-M4C16 on Y (the authors' code trains on Y only). The edge filters are fixed
buffers; the authors' release keeps them as frozen ``mask`` parameters, checked as derived.
Parameters (Y, deployed: the folded convolutions and the PReLUs): M4C16 10,100 / 10,825 /
11,840 at x2 / x3 / x4 (39,956 / 42,311 / 47,120 while training); equal to the authors' code
folded; not checked against the paper's table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape

# The fixed 3x3 edge filters, rows top to bottom (the ECB paper's Sobel-x, Sobel-y, Laplacian).
EDGE_FILTERS = {"sbx": ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),
                "sby": ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),
                "lpl": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))}


class Expand3x3(nn.Module):
    """A 1x1 convolution to ``mid`` channels then a 3x3 one (authors' ``k0, b0, k1, b1``)."""

    def __init__(self, cin: int, cout: int, mid: int) -> None:
        super().__init__()
        self.k0 = nn.Parameter(torch.empty(mid, cin, 1, 1))
        self.b0 = nn.Parameter(torch.zeros(mid))
        self.k1 = nn.Parameter(torch.empty(cout, mid, 3, 3))
        self.b1 = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.k0, a=5 ** 0.5)
        nn.init.kaiming_uniform_(self.k1, a=5 ** 0.5)

    def folded(self) -> tuple[Tensor, Tensor]:
        """The equivalent 3x3 kernel (cout, cin, 3, 3) and bias (cout,)."""
        kernel = torch.einsum("omhw,mi->oihw", self.k1, self.k0[:, :, 0, 0])
        return kernel, self.b1 + torch.einsum("omhw,m->o", self.k1, self.b0)


class Edge(nn.Module):
    """A 1x1 convolution, then a fixed edge filter per channel times a learned scale, plus a
    learned bias (authors' ``k0, b0, scale, bias``; ``mask`` the filter)."""

    def __init__(self, cin: int, cout: int, kind: str) -> None:
        super().__init__()
        self.k0 = nn.Parameter(torch.empty(cout, cin, 1, 1))
        self.b0 = nn.Parameter(torch.zeros(cout))
        self.scale = nn.Parameter(torch.randn(cout, 1, 1, 1) * 1e-3)
        self.bias = nn.Parameter(torch.randn(cout) * 1e-3)
        self.register_buffer("mask", torch.tensor(EDGE_FILTERS[kind]).expand(cout, 1, 3, 3).clone(), persistent=False)
        nn.init.kaiming_uniform_(self.k0, a=5 ** 0.5)

    def folded(self) -> tuple[Tensor, Tensor]:
        depthwise = (self.scale * self.mask)[:, 0]  # (cout, 3, 3)
        kernel = depthwise[:, None] * self.k0[:, :, 0, 0][:, :, None, None]
        return kernel, self.bias + self.b0 * depthwise.sum(dim=(1, 2))


class ECB(nn.Module):
    """An edge-oriented convolution block, (N, C_in, H, W) -> (N, C_out, H, W), run folded;
    then PReLU unless it is the last (``act=False``)."""

    def __init__(self, cin: int, cout: int, act: bool, with_idt: bool, depth_multiplier: float = 2.0) -> None:
        super().__init__()
        self.identity = with_idt and cin == cout
        self.conv3x3 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1x1_3x3 = Expand3x3(cin, cout, int(cout * depth_multiplier))
        self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl = (Edge(cin, cout, k) for k in ("sbx", "sby", "lpl"))
        if act:
            self.act = nn.PReLU(cout)

    def folded(self) -> tuple[Tensor, Tensor]:
        """The one 3x3 kernel (C_out, C_in, 3, 3) and bias (C_out,) the block computes."""
        parts = [(self.conv3x3.weight, self.conv3x3.bias)] + [
            branch.folded() for branch in (self.conv1x1_3x3, self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl)]
        kernel, bias = sum(k for k, _ in parts), sum(b for _, b in parts)
        if self.identity:
            eye = torch.eye(kernel.shape[0], device=kernel.device, dtype=kernel.dtype)[:, :, None, None]
            kernel = kernel + F.pad(eye, (1, 1, 1, 1))
        return kernel, bias

    def forward(self, x: Tensor) -> Tensor:
        kernel, bias = self.folded()
        y = F.conv2d(x, kernel.to(x.dtype), bias.to(x.dtype), padding=1)
        return self.act(y) if hasattr(self, "act") else y


class ECBSR(SRNet):
    """ECBSR (N, C, h, w) -> (N, C, s*h, s*w), all convolutions at LR resolution."""

    name = "ecbsr"
    upsampling = "pixel shuffle"
    paper = "Zhang et al., ACM MM 2021"

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (xindongzhang/ECBSR): our names, the fixed edge filters kept as
        frozen ``mask`` parameters (derived: this network computes them)."""
        return ReleaseFormat(derived=(r"\.mask$",))

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The blocks, the width and the last block's C*s^2 outputs; the identity branch has no
        weights (a file trained with it is not told apart: set ``model.with_idt``)."""
        first, blocks = shape(state, "backbone.0.conv3x3.weight"), indices(state, r"^backbone\.(\d+)\.")
        last = shape(state, f"backbone.{blocks[-1]}.conv3x3.weight") if blocks else None
        if first is None or last is None or len(blocks) < 2:
            return None
        side = round((last[0] / first[1]) ** 0.5)
        if side < 2 or side * side * first[1] != last[0]:
            return None
        return {"in_channels": first[1], "num_features": first[0], "num_blocks": len(blocks) - 2, "scale": side}

    def __init__(self, *, scale: int = 4, in_channels: int = 1, num_features: int = 16, num_blocks: int = 4,
                 with_idt: bool = False) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        widths = [in_channels] + [num_features] * (num_blocks + 1) + [in_channels * scale * scale]
        self.backbone = nn.Sequential(*(ECB(cin, cout, act=i < num_blocks + 1, with_idt=with_idt)
                                        for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False))))
        self.upsampler = nn.PixelShuffle(scale)

    def deployed_parameter_count(self) -> int:
        """The plain network it deploys as: one 3x3 convolution per block, and the PReLUs."""
        return sum(k.numel() + b.numel() for k, b in (m.folded() for m in self.backbone)) + sum(
            p.numel() for m in self.backbone if hasattr(m, "act") for p in m.act.parameters())

    def forward(self, lr: Tensor) -> Tensor:
        return self.upsampler(self.backbone(lr) + lr.repeat_interleave(self.scale * self.scale, dim=1))
