"""The LightningModules: SRLitModule for every network, SRGANModule (a subclass) for adversarial training."""

from sr_lightning.lit.gan_module import GAN_PARTS, SRGANModule
from sr_lightning.lit.sr_module import SRLitModule, build_net, net_class

__all__ = ["GAN_PARTS", "SRGANModule", "SRLitModule", "build_net", "net_class"]
