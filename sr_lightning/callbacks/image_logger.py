"""Image panels and per-image tables for the dashboards (W&B and TensorBoard).

One callback for every image-capable logger: it looks at the trainer's loggers and does
nothing (no forward passes, no images) when none of them takes images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from sr_lightning.callbacks.panels import panel, thumbnail
from sr_lightning.errors import UserError
from sr_lightning.metrics import psnr, ssim


class SRImageLogger(L.Callback):
    """Validation panels and test tables.

    Every validation epoch (rank 0): for the first ``num_images`` validation images, a panel
    LR | bicubic | SR | HR | error heat map (|SR - HR| on Y, white at ``error_max``, the same
    scale for every run) plus zoomed centre crops of ``crop`` HR pixels, captioned with the
    image's PSNR/SSIM and bicubic's. W&B: ``val/images``; TensorBoard: ``val/images/<name>``.

    Training on degraded batches (``data/degradation=realesrgan``, batches marked
    ``degraded``): with each validation, the same panel for the first ``num_images`` patches
    of the latest training batch (its real degraded LR, the network's SR, the HR patch),
    ``train/degraded_images``.

    At test, with W&B: a ``wandb.Table`` per test set, ``test/<set>/images``, one row per image
    (name, PSNR, SSIM, bicubic PSNR, gain, SR thumbnail). Rows of all ranks are gathered.
    """

    def __init__(self, num_images: int = 2, crop: int = 48, error_max: float = 0.1, thumbnail_size: int = 128,
                 test_tables: bool = True) -> None:
        super().__init__()
        if num_images < 0 or crop < 1 or error_max <= 0:
            raise UserError("callbacks.images: num_images >= 0, crop >= 1 and error_max > 0 are required")
        self.num_images, self.crop, self.error_max = num_images, crop, error_max
        self.thumbnail_size, self.test_tables = thumbnail_size, test_tables
        self._rows: dict[str, list[list[Any]]] = {}
        self._degraded: tuple[torch.Tensor, torch.Tensor] | None = None  # (LR, HR) of the latest such batch

    @staticmethod
    def _loggers(trainer: L.Trainer) -> tuple[list[WandbLogger], list[TensorBoardLogger]]:
        wandb = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        tensorboard = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        return wandb, tensorboard

    # -- validation panels -------------------------------------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if (isinstance(batch, dict) and batch.get("degraded") and self.num_images and trainer.is_global_zero
                and any(self._loggers(trainer))):
            n = self.num_images
            self._degraded = (batch["lr"][:n].detach().cpu(), batch["hr"][:n].detach().cpu())

    def _log(self, trainer: L.Trainer, key: str, images: list, captions: list[str], names: list[str]) -> None:
        wandb, tensorboard = self._loggers(trainer)
        step = trainer.global_step
        for lg in wandb:
            lg.log_image(key=key, images=images, caption=captions, step=step)
        for lg in tensorboard:
            for name, image in zip(names, images, strict=True):
                lg.experiment.add_image(f"{key}/{name}", image, step, dataformats="HWC")

    def _log_degraded(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The latest degraded training patches: degraded LR | bicubic | SR | HR | error."""
        if self._degraded is None:
            return
        lr, hr = (t.to(pl_module.device) for t in self._degraded)
        with torch.no_grad():
            sr, bicubic = pl_module.predict_pair(lr)
        images = [panel(lr[i], bicubic[i], sr[i], hr[i], error_max=self.error_max, crop=self.crop)
                  for i in range(lr.shape[0])]
        gains = psnr(sr, hr, crop_border=0, y_channel=pl_module.y_channel) - psnr(bicubic, hr, crop_border=0,
                                                                                    y_channel=pl_module.y_channel)
        captions = [f"training patch {i} (step {trainer.global_step}): SR {float(g):+.2f} dB over bicubic "
                    f"(degraded LR | bicubic | SR | HR | error, then crops)" for i, g in enumerate(gains)]
        self._log(trainer, "train/degraded_images", images, captions, [f"patch{i}" for i in range(len(images))])
        self._degraded = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        wandb, tensorboard = self._loggers(trainer)
        if trainer.sanity_checking or not trainer.is_global_zero or not (wandb or tensorboard) or not self.num_images:
            return
        self._log_degraded(trainer, pl_module)
        loaders = trainer.val_dataloaders
        dataset = getattr(loaders, "dataset", None)
        if dataset is None:
            return
        images, captions, names = [], [], []
        with torch.no_grad():
            for i in range(min(self.num_images, len(dataset))):
                item = dataset[i]
                lr, hr = item["lr"][None].to(pl_module.device), item["hr"][None].to(pl_module.device)
                sr, bicubic = pl_module.predict_pair(lr)
                kw = {"crop_border": pl_module.crop_border, "y_channel": pl_module.y_channel,
                      "gray": torch.tensor([bool(item.get("gray", False))])}
                p, s = float(psnr(sr, hr, **kw)[0]), float(ssim(sr, hr, **kw)[0])
                pb, sb = float(psnr(bicubic, hr, **kw)[0]), float(ssim(bicubic, hr, **kw)[0])
                images.append(panel(lr[0], bicubic[0], sr[0], hr[0], error_max=self.error_max, crop=self.crop))
                captions.append(f"{item['name']}: SR {p:.2f} dB / {s:.4f}, bicubic {pb:.2f} dB / {sb:.4f} "
                                f"(LR | bicubic | SR | HR | error, then crops)")
                names.append(str(item["name"]))
        self._log(trainer, "val/images", images, captions, names)

    # -- test tables -----------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._rows = {}

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        if not self.test_tables or not self._loggers(trainer)[0] or not outputs:
            return
        names: Sequence[str] = pl_module._test_set_names()
        set_name = names[dataloader_idx] if dataloader_idx < len(names) else f"test{dataloader_idx}"
        kw = {"crop_border": pl_module.crop_border, "y_channel": pl_module.y_channel, "gray": outputs["gray"]}
        p, s = psnr(outputs["sr"], outputs["hr"], **kw), ssim(outputs["sr"], outputs["hr"], **kw)
        pb = psnr(outputs["bicubic"], outputs["hr"], **kw)
        for i, name in enumerate(outputs["name"]):
            self._rows.setdefault(set_name, []).append(
                [name, float(p[i]), float(s[i]), float(pb[i]), float(p[i] - pb[i]),
                 thumbnail(outputs["sr"][i], self.thumbnail_size)])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        wandb = self._loggers(trainer)[0]
        if not self.test_tables or not wandb:
            return
        rows = self._rows
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, rows)
            rows = {}
            for part in gathered:
                for k, v in part.items():
                    rows.setdefault(k, []).extend(v)
        if not trainer.is_global_zero:
            return
        import wandb as wb

        for set_name, set_rows in rows.items():
            data = [[*r[:5], wb.Image(r[5])] for r in sorted(set_rows, key=lambda r: r[0])]
            for lg in wandb:
                lg.log_table(key=f"test/{set_name}/images", columns=["image", "psnr", "ssim", "psnr_bicubic", "gain",
                                                                      "sr"], data=data)
