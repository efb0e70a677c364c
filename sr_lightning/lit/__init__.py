"""The LightningModule."""

from sr_lightning.lit.sr_module import SRLitModule, build_net, net_class

__all__ = ["SRLitModule", "build_net", "net_class"]
