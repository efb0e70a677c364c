"""Dashboard panels: the fixed error colour scale, the layout, and no cost without an image logger."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger

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
