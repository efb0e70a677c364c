"""Discriminators: SRGAN's (Ledig et al., CVPR 2017, Fig. 4) and Real-ESRGAN's U-Net with
spectral normalisation (Wang et al., ICCVW 2021)."""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError


class SRGANDiscriminator(nn.Module):
    """(N, C, H, W) in [0, 1] -> (N,) real/fake logits.

    Eight 3x3 convolutions (64, 64/2, 128, 128/2, 256, 256/2, 512, 512/2 features/stride),
    LeakyReLU(0.2), batch norm after all but the first, then dense 1024 - LeakyReLU - dense
    1. The paper flattens a 96x96 patch's 6x6x512 map; here it is average-pooled to
    ``pool x pool`` first, so any patch size works (96x96 with pool 6 is the paper's).
    """

    def __init__(self, in_channels: int = 3, num_features: int = 64, pool: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        cin = num_features
        for i in range(7):
            cout, stride = num_features * 2 ** ((i + 1) // 2), 2 if i % 2 == 0 else 1
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin * pool * pool, 1024),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).squeeze(1)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation (Wang et al., ICCVW
    2021, Sec. 4.2): (N, C, H, W) in [0, 1] -> (N, 1, H, W) per-pixel real/fake logits, H and
    W multiples of 8.

    A 3x3 convolution (``conv0``), three strided 4x4 convolutions down (``conv1``-``conv3``:
    2x, 4x, 8x the features), three bilinear-x2 + 3x3 convolutions up (``conv4``-``conv6``),
    each added to the encoder's map of its size when ``skip_connection``, two more 3x3
    convolutions (``conv7``, ``conv8``) and a 3x3 to one channel (``conv9``); LeakyReLU(0.2)
    after all but the last; spectral norm on ``conv1``-``conv8`` (bias-free). Parameter
    names as the authors' release, so its discriminator weights load.
    """

    def __init__(self, in_channels: int = 3, num_features: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        sn, f = nn.utils.spectral_norm, num_features
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, f, 3, padding=1)
        widths = [f, 2 * f, 4 * f, 8 * f]
        for i in range(3):  # down: conv1-conv3
            setattr(self, f"conv{i + 1}", sn(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1, bias=False)))
        for i in range(3):  # up: conv4-conv6
            setattr(self, f"conv{i + 4}", sn(nn.Conv2d(widths[3 - i], widths[2 - i], 3, padding=1, bias=False)))
        self.conv7 = sn(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise UserError(f"the U-Net discriminator takes HR patches whose sides are multiples of 8, not "
                            f"{x.shape[-2]}x{x.shape[-1]}: choose data.patch_size so that patch_size x scale is one")
        act = partial(F.leaky_relu, negative_slope=0.2)
        skips = [act(self.conv0(x))]
        for conv in (self.conv1, self.conv2, self.conv3):
            skips.append(act(conv(skips[-1])))
        y = skips.pop()
        for conv in (self.conv4, self.conv5, self.conv6):
            y = act(conv(F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)))
            skip = skips.pop()
            y = y + skip if self.skip_connection else y
        return self.conv9(act(self.conv8(act(self.conv7(y)))))
