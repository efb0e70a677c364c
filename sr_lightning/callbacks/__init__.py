"""Lightning callbacks."""

from sr_lightning.callbacks.clock import TrainingClock
from sr_lightning.callbacks.ema import EMA
from sr_lightning.callbacks.image_logger import SRImageLogger
from sr_lightning.callbacks.interrupt import InterruptCheckpoint
from sr_lightning.callbacks.lam_logger import LAMImageLogger
from sr_lightning.callbacks.optuna_pruning import OptunaPruning
from sr_lightning.callbacks.progress_bar import StepsProgressBar
from sr_lightning.callbacks.progress_log import ProgressLog
from sr_lightning.callbacks.zssr import UpscaleOnFitEnd, ZSSRLearningRate

__all__ = ["EMA", "InterruptCheckpoint", "LAMImageLogger", "OptunaPruning", "ProgressLog", "SRImageLogger",
           "StepsProgressBar", "TrainingClock", "UpscaleOnFitEnd", "ZSSRLearningRate"]
