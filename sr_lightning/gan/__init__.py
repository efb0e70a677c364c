"""Parts of adversarial SR training: the SRGAN discriminator and the perceptual (feature) loss."""

from sr_lightning.gan.discriminator import SRGANDiscriminator
from sr_lightning.gan.perceptual import PerceptualLoss

__all__ = ["PerceptualLoss", "SRGANDiscriminator"]
