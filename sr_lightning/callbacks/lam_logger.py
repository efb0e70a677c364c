"""The receptive field growing during training: a local attribution map (:mod:`sr_lightning.lam`)
of one fixed output window of a validation image at every validation, for W&B and TensorBoard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from sr_lightning.callbacks.image_logger import SRImageLogger
from sr_lightning.errors import UserError
from sr_lightning.lam import Window, local_attribution, overlay


class LAMImageLogger(L.Callback):
    """At each validation (rank 0, W&B or TensorBoard present, ``window`` set): the map of
    output ``window`` [y, x, size] of validation image ``image_index``, logged as ``val/lam``
    (the map over the LR image, the window outlined, the index in the caption), and its
    diffusion index as the metric ``val/diffusion_index`` (every logger). ``window=None``
    (the default): nothing is computed. ``steps`` path segments (fewer than the paper's 50:
    the map is for watching, ``python -m sr_lightning.explain`` measures).
    """

    def __init__(self, window: Sequence[int] | None = None, image_index: int = 0, steps: int = 16,
                 sigma: float = 1.2) -> None:
        super().__init__()
        self.window = None if window is None else Window.parse(list(window), "callbacks.lam.window")
        if image_index < 0 or steps < 1 or sigma <= 0:
            raise UserError("callbacks.lam: image_index >= 0, steps >= 1 and sigma > 0 are required")
        self.image_index, self.steps, self.sigma = image_index, steps, sigma

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        wandb, tensorboard = SRImageLogger._loggers(trainer)
        if self.window is None or trainer.sanity_checking or not trainer.is_global_zero or not (wandb or tensorboard):
            return
        dataset = getattr(trainer.val_dataloaders, "dataset", None)
        if dataset is None:
            return
        if self.image_index >= len(dataset):
            raise UserError(f"callbacks.lam.image_index={self.image_index}: the validation set has {len(dataset)} "
                            f"image(s); use 0..{len(dataset) - 1}")
        item = dataset[self.image_index]
        # Validation runs in inference mode; the path integral needs gradients.
        with torch.inference_mode(False):
            lr = item["lr"][None].clone().float().to(pl_module.device)
            a = local_attribution(pl_module, lr, self.window, pl_module.scale, self.sigma, self.steps)
        image = overlay(lr[0], a.magnitude, self.window, pl_module.scale)
        w = self.window
        caption = (f"{item['name']}: output window [{w.y}, {w.x}, {w.size}] at step {trainer.global_step}, "
                   f"diffusion index {a.diffusion_index:.3f}")
        step = trainer.global_step
        for lg in wandb:
            lg.log_image(key="val/lam", images=[image], caption=[caption], step=step)
        for lg in tensorboard:
            lg.experiment.add_image("val/lam", image, step, dataformats="HWC")
        pl_module.log("val/diffusion_index", a.diffusion_index, rank_zero_only=True)
