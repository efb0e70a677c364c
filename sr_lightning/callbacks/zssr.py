"""Zero-shot SR's training schedule and its last step (Shocher et al., CVPR 2018;
``experiment=zssr``): the paper's learning-rate policy, and the upscaled image at the end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from sr_lightning.errors import UserError
from sr_lightning.ops import imresize

log = logging.getLogger(__name__)


class ZSSRLearningRate(L.Callback):
    """The paper's policy: "we periodically take a linear fit of the reconstruction error and
    if the standard deviation is greater by a factor than the slope of the linear fit we
    divide the learning rate by 10", stopping below ``min_lr``.

    Every ``test_every`` steps the reconstruction error is measured: the MSE between the image
    and the network's output for the image downscaled by the scale (``train/reconstruction_mse``).
    Every ``check_every`` steps, once ``min_steps`` steps have passed since the last change, a
    line is fitted to the errors of the last ``fit_steps`` steps; when ``ratio`` x (-slope) is
    below the slope's standard deviation (the error no longer falls clearly), every parameter
    group's learning rate is divided by 10; below ``min_lr`` training stops. Defaults: the
    authors' release (60, 256, 256, 1.5, 50, 9e-6). Needs ``data.internal`` (the image).
    """

    def __init__(self, test_every: int = 50, check_every: int = 60, min_steps: int = 256, fit_steps: int = 256,
                 ratio: float = 1.5, min_lr: float = 9e-6) -> None:
        super().__init__()
        if min(test_every, check_every, fit_steps) < 1 or min_steps < 0 or ratio <= 0 or min_lr <= 0:
            raise UserError("callbacks.zssr_lr: test_every, check_every, fit_steps >= 1, min_steps >= 0, ratio > 0 "
                            "and min_lr > 0 are required")
        if fit_steps // test_every < 4:
            raise UserError(f"callbacks.zssr_lr: fit_steps={fit_steps} // test_every={test_every} gives fewer than 4 "
                            "errors to fit a line to with its uncertainty; raise fit_steps or lower test_every")
        self.test_every, self.check_every, self.min_steps = test_every, check_every, min_steps
        self.fit_steps, self.ratio, self.min_lr = fit_steps, ratio, min_lr
        self.errors: list[tuple[int, float]] = []  # (iteration, reconstruction MSE)
        self.last_change = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if getattr(trainer.datamodule, "internal_image", None) is None:
            raise UserError("callbacks.zssr_lr needs data.internal (zero-shot SR: experiment=zssr input=IMG)")

    @torch.no_grad()
    def reconstruction_mse(self, trainer: L.Trainer, pl_module: Any) -> float:
        image = trainer.datamodule.internal_image.to(pl_module.device)[None]
        son = imresize(image, 1 / pl_module.scale).clamp(0, 1)
        out = pl_module(son)[..., : image.shape[-2], : image.shape[-1]]
        return float(torch.mean((out.clamp(0, 1) - image) ** 2))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        it = trainer.global_step - 1  # the iteration just trained, from 0
        if it % self.test_every == 0:
            mse = self.reconstruction_mse(trainer, pl_module)
            self.errors.append((it, mse))
            pl_module.log("train/reconstruction_mse", mse)
        if (it + 1) % self.check_every or it - self.last_change <= self.min_steps:
            return
        recent = self.errors[-(self.fit_steps // self.test_every):]
        steps, errors = np.array([s for s, _ in recent], float), np.array([e for _, e in recent])
        (slope, _), cov = np.polyfit(steps, errors, 1, cov=True)
        std = float(np.sqrt(cov[0, 0]))
        if -self.ratio * slope < std:
            optimizer = trainer.optimizers[0]
            for group in optimizer.param_groups:
                group["lr"] /= 10
            lr = optimizer.param_groups[0]["lr"]
            self.last_change = it
            log.info("zssr: step %d: reconstruction error slope %.3g, std %.3g: learning rate -> %.3g", it + 1,
                     slope, std, lr)
            if lr < self.min_lr:
                log.info("zssr: learning rate below %.3g: training stops at step %d", self.min_lr, it + 1)
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"errors": list(self.errors), "last_change": self.last_change}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.errors = [tuple(e) for e in state_dict["errors"]]
        self.last_change = int(state_dict["last_change"])


class UpscaleOnFitEnd(L.Callback):
    """When training ends (rank 0): upscale ``input`` with the final weights into ``output``
    (default: ``<run folder>/<input stem>_x<scale>.png``), as ``python -m sr_lightning.upscale``
    would; ``self_ensemble``: the mean of the x8 flips/rotations (the paper's geometric
    self-ensemble, which takes the median and adds back-projection)."""

    def __init__(self, input: str, output: str | None = None, self_ensemble: bool = True,
                 tile: int | None = None, tile_overlap: int = 48) -> None:
        super().__init__()
        if not isinstance(self_ensemble, bool):
            raise UserError(f"callbacks.upscale.self_ensemble={self_ensemble!r} must be true or false")
        self.input, self.output, self.self_ensemble = Path(input).expanduser(), output, self_ensemble
        self.tile, self.tile_overlap = tile, tile_overlap
        self.written: Path | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.input.is_file():
            raise FileNotFoundError(f"input='{self.input}' does not exist; give the image to upscale")
        if self.output is not None and not Path(self.output).expanduser().parent.is_dir():
            raise FileNotFoundError(f"output='{self.output}': folder '{Path(self.output).parent}' does not exist")

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        from sr_lightning.inference import pytorch_upscaler, upscale_file

        dst = Path(self.output).expanduser() if self.output else \
            Path(trainer.default_root_dir) / f"{self.input.stem}_x{pl_module.scale}.png"
        was_training = pl_module.training
        pl_module.eval()
        upscale_file(pytorch_upscaler(pl_module, self.self_ensemble), self.input, dst, self.tile, self.tile_overlap)
        pl_module.train(was_training)
        self.written = dst
        print(f"wrote {dst}")
