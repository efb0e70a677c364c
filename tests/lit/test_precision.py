"""The speed options (precision, memory format, torch.compile) compose with every network."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from sr_lightning.data import SRDataModule
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import list_nets
from tests.conftest import SHALLOW

OPTIONS = [("bf16-mixed", True), ("32-true", False), ("32-true", True)]


@pytest.mark.parametrize("name", [n for n in list_nets() if n != "bicubic"])
@pytest.mark.parametrize(("precision", "channels_last"), OPTIONS)
def test_training_step_with_each_precision_and_memory_format(tiny_data, name, precision, channels_last):
    torch.manual_seed(0)
    dm = SRDataModule(train_dir=str(tiny_data["train"]), val_dir=str(tiny_data["val"]),
                      test_sets=[str(tiny_data["test"])], patch_size=12, batch_size=2, steps_per_epoch=1)
    module = SRLitModule(net={"name": name, "scale": 2, "in_channels": 1, **SHALLOW.get(name, {})},
                         loss={"_target_": "torch.nn.L1Loss"},
                         optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
                         channels_last=channels_last)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=1)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=dm)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters(), strict=True))
    val = trainer.callback_metrics["val/psnr"]
    assert val.dtype == torch.float32 and torch.isfinite(val)  # metrics in float32/64, whatever the precision


def test_compile_flag_compiles_in_place():
    module = SRLitModule(net={"name": "srcnn", "scale": 2, "in_channels": 1}, compile_net=True)
    assert module.net._compiled_call_impl is not None
    assert "net.body.0.weight" in module.state_dict()  # checkpoints keep their keys


@pytest.mark.slow
def test_compiled_training_runs(tiny_data, tmp_path):
    from tests.conftest import run_module, tiny_args

    run_module("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=srcnn", "compile=true",
                                                 "trainer.max_steps=2"), timeout=900)
    assert (tmp_path / "metrics.json").is_file()
