"""Lightning callbacks."""

from sr_lightning.callbacks.clock import TrainingClock
from sr_lightning.callbacks.image_logger import SRImageLogger

__all__ = ["SRImageLogger", "TrainingClock"]
