"""Dashboard panels: the fixed error colour scale, the layout, and no cost without an image logger."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from sr_lightning.callbacks import SRImageLogger
from sr_lightning.callbacks.panels import heat_map, panel, thumbnail


def test_heat_map_has_a_fixed_scale():
    assert heat_map(np.array([[0.0]]))[0, 0].tolist() == [0, 0, 0]
    assert heat_map(np.array([[1.0]]))[0, 0].tolist() == [255, 255, 255]
    assert heat_map(np.array([[5.0]]))[0, 0].tolist() == [255, 255, 255]  # clipped: same scale for every run
    mid = heat_map(np.linspace(0, 1, 50)[None])[0].astype(int).sum(axis=1)
    assert np.all(np.diff(mid) >= 0)  # brighter with the error


def test_panel_layout():
    hr = torch.rand(1, 40, 60)
    lr = hr[:, ::2, ::2]
    out = panel(lr, hr, hr, hr, crop=20)
    assert out.shape == (40 + 20 * 3, 5 * 60, 3) and out.dtype == np.uint8  # crops zoomed x3
    assert np.all(out[:40, 4 * 60:] == 0)  # no error -> black heat map
    assert thumbnail(torch.rand(3, 300, 200), 100).shape[:2] == (100, 66)  # longer side 100


def test_no_image_logger_costs_nothing():
    class Module:
        def predict_pair(self, lr):
            raise AssertionError("no forward pass without an image logger")

    trainer = SimpleNamespace(loggers=[CSVLogger("unused")], sanity_checking=False, is_global_zero=True)
    SRImageLogger().on_validation_epoch_end(trainer, Module())


def test_degraded_training_patches_get_a_panel():
    """A realesrgan-degraded training batch (real crops) is shown at the next validation:
    degraded LR | bicubic | SR | HR | error, one panel per patch, under train/degraded_images."""
    from omegaconf import OmegaConf

    from sr_lightning.config import CONF_DIR
    from sr_lightning.data.realesrgan import RealESRGAN
    from sr_lightning.lit import SRLitModule
    from tests.conftest import _crops

    class Recorder(WandbLogger):
        def __init__(self) -> None:  # no run: records what the callback logs
            self.logged: list[dict] = []

        def log_image(self, key, images, step=None, **kwargs):
            self.logged.append({"key": key, "images": images, "step": step, **kwargs})

    options = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data/degradation/realesrgan.yaml").realesrgan)
    hr = torch.from_numpy(np.stack(_crops(3, (64, 64), seed=11))).permute(0, 3, 1, 2).float() / 255
    lr = RealESRGAN.from_config(options)(hr, 4, torch.Generator().manual_seed(0))
    module = SRLitModule(net={"name": "espcn", "scale": 4, "in_channels": 3})
    recorder = Recorder()
    trainer = SimpleNamespace(loggers=[recorder], sanity_checking=False, is_global_zero=True, global_step=7,
                              val_dataloaders=None)
    callback = SRImageLogger(num_images=2, crop=16)
    callback.on_train_batch_end(trainer, module, None, {"lr": lr, "hr": hr, "degraded": True}, 0)
    callback.on_validation_epoch_end(trainer, module)
    (logged,) = recorder.logged
    assert logged["key"] == "train/degraded_images" and logged["step"] == 7 and len(logged["images"]) == 2
    image = logged["images"][1]
    assert image.shape == (64 + 16 * 4, 5 * 64, 3)
    expected_hr = np.round(hr[1].permute(1, 2, 0).numpy() * 255)
    assert np.abs(image[:64, 3 * 64: 4 * 64].astype(float) - expected_hr).max() <= 1  # the HR tile
    lr_tile = torch.nn.functional.interpolate(lr[1:2], scale_factor=4, mode="nearest")[0].permute(1, 2, 0)
    assert np.abs(image[:64, :64].astype(float) - np.round(lr_tile.numpy() * 255)).max() <= 1  # the degraded LR
    assert "training patch 1 (step 7)" in logged["caption"][1] and "degraded LR" in logged["caption"][1]
    callback.on_validation_epoch_end(trainer, module)  # shown once per batch kept
    assert len(recorder.logged) == 1
