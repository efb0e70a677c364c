"""The LightningModules: SRLitModule for every network, SRGANModule (a subclass) for adversarial training."""

from sr_lightning.lit.gan_module import SRGANModule
from sr_lightning.lit.sr_module import SRLitModule

__all__ = ["SRGANModule", "SRLitModule"]
