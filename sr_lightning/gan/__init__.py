"""Parts of adversarial SR training: the discriminators and the perceptual (feature) loss."""

from sr_lightning.gan.discriminator import SRGANDiscriminator, UNetDiscriminatorSN
from sr_lightning.gan.perceptual import PerceptualLoss

__all__ = ["PerceptualLoss", "SRGANDiscriminator", "UNetDiscriminatorSN"]
