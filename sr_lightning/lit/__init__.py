"""The LightningModules: SRLitModule for every network, SRGANModule (a subclass) for adversarial
training, and load_module (a module from a checkpoint)."""

from sr_lightning.lit.gan_module import SRGANModule
from sr_lightning.lit.loading import load_module
from sr_lightning.lit.sr_module import EvalMetrics, SRLitModule

__all__ = ["EvalMetrics", "SRGANModule", "SRLitModule", "load_module"]
