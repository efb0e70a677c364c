"""The SRGAN discriminator (Ledig et al., CVPR 2017, Fig. 4)."""

from __future__ import annotations

from torch import Tensor, nn


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
