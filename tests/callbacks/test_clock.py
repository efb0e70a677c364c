"""TrainingClock: time/train_s counts training and leaves validation out."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch

from sr_lightning.callbacks import TrainingClock
from sr_lightning.data import SRDataModule
from sr_lightning.lit import SRLitModule

VAL_PAUSE = 0.4


class _SlowValidation(L.Callback):
    def on_validation_batch_end(self, *args) -> None:
        time.sleep(VAL_PAUSE)


class _Record(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.values.append(float(trainer.callback_metrics["time/train_s"]))


def _fit(tiny_data, clock: TrainingClock, steps: int) -> tuple[_Record, float]:
    torch.manual_seed(0)
    dm = SRDataModule(train_dir=str(tiny_data["train"]), val_dir=str(tiny_data["val"]), patch_size=12, batch_size=2,
                      steps_per_epoch=2)
    module = SRLitModule(net={"name": "srcnn", "scale": 2, "in_channels": 1}, loss={"_target_": "torch.nn.L1Loss"},
                         optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4})
    record = _Record()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        num_sanity_val_steps=0, callbacks=[clock, _SlowValidation(), record])
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return record, time.perf_counter() - t0


def test_train_seconds_leave_validation_out_and_grow(tiny_data):
    record, wall = _fit(tiny_data, TrainingClock(), steps=6)
    assert len(record.values) == 3  # one validation every 2 steps
    assert 0 < record.values[0] < record.values[1] < record.values[2]
    assert record.values[2] < wall - 3 * VAL_PAUSE  # the three slow validations are not counted


def test_a_resumed_clock_goes_on_from_the_checkpoint_value(tiny_data):
    clock = TrainingClock()
    clock.load_state_dict({"train_s": 1000.0})
    record, _ = _fit(tiny_data, clock, steps=2)
    assert record.values[0] == pytest.approx(1000.0, abs=60)
    assert record.values[0] > 1000.0
    assert TrainingClock().state_dict() == {"train_s": 0.0}
