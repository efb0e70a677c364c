"""Data: HR sources, LR/HR pair making, datasets and the LightningDataModule."""

from sr_lightning.data.datamodule import SRDataModule
from sr_lightning.data.io import ImageReadError, read_image, write_image
from sr_lightning.data.pairs import Degradation

__all__ = ["Degradation", "ImageReadError", "SRDataModule", "read_image", "write_image"]
