"""What a network costs to run, counted without running it: GFLOPs per output megapixel.

FLOPs are counted by ``torch.utils.flop_counter`` on fake tensors (no computation): two per
multiply-accumulate of convolutions and matrix products (bicubic resizing included).
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from sr_lightning.nets.base import SRNet
from sr_lightning.nets.registry import create_net, get_net_class


def gflops_per_megapixel(name: str, scale: int, in_channels: int = 3) -> float | None:
    """GFLOPs of one forward pass producing 1 megapixel (an output of about 1000x1000,
    rescaled to exactly 1e6 pixels); None where the network does not support ``scale``."""
    cls = get_net_class(name)
    if cls.scales is not None and scale not in cls.scales:
        return None
    return net_gflops(create_net(name, scale=scale, in_channels=in_channels).eval())


def net_gflops(net: SRNet) -> float:
    """GFLOPs of ``net`` (at its scale and channels, in its current mode: evaluation for the
    network as deployed) for one 1-megapixel output, counted on fake tensors (nothing is computed;
    a batch of two, halved: a BatchNorm in training mode needs more than one value per channel)."""
    side = round(1000 / net.scale)
    counter = FlopCounterMode(display=False)
    with FakeTensorMode(allow_non_fake_inputs=True), counter, torch.no_grad():
        net(torch.empty(2, net.in_channels, side, side))
    return counter.get_total_flops() / 2 / (net.scale * side) ** 2 * 1e6 / 1e9
