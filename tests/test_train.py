"""sr_lightning.train's shape: resolve -> build -> fit -> test on a copy of the composed config,
the checkpoint read once, the network's scale checked against the data's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sr_lightning.cli import composed
from sr_lightning.errors import UserError
from sr_lightning.train import train
from tests.conftest import run_entry, tiny_args


def test_train_leaves_its_config_as_composed_and_records_what_it_decided(tiny_data, tmp_path):
    """The config train is given is not edited; the one it ran with holds its decisions (the
    speed settings, the validation interval) in place of `auto`."""
    with composed("train", tiny_args(tiny_data, tmp_path / "run", "model=srcnn", "test=false",
                                     "trainer.check_val_every_n_epoch=null")) as cfg:
        before = OmegaConf.to_yaml(cfg)
        _, objects = train(cfg)
        assert OmegaConf.to_yaml(cfg) == before
    ran = objects["cfg"]
    assert cfg.channels_last == "auto" and isinstance(ran.channels_last, bool)
    assert cfg.trainer.val_check_interval == "auto" and ran.trainer.val_check_interval == 1  # a tenth of 8 steps


def test_a_network_scale_other_than_the_data_scale_is_one_line(tiny_data, tmp_path):
    """model.scale=3 with data.scale=2 (a network of one scale): refused before training, naming
    both options (it used to fail mid-step with a message about data.train_scales)."""
    with pytest.raises(UserError, match=r"upscales x3 \(model\.scale=3\) but the data is x2 \(data\.scale=2\)"):
        run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "run", "model=espcn", "model.scale=3"))


def test_a_resume_reads_the_checkpoint_once(trained_srcnn, tiny_data, tmp_path, monkeypatch):
    """Train reads the checkpoint (and checks it) once; the resumed fit restores from what it
    read instead of reading the file again."""
    run = tmp_path / "run"
    shutil.copytree(trained_srcnn, run)
    ckpt = run / "checkpoints/last.ckpt"
    reads = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):  # a path (ours) or an open file (Lightning's fsspec reader)
        name = f if isinstance(f, str | Path) else getattr(f, "path", None) or getattr(f, "name", None)
        if name is not None and Path(str(name)).resolve() == ckpt.resolve():
            reads.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    _, objects = run_entry("sr_lightning.train", *tiny_args(tiny_data, run, "model=srcnn", f"ckpt_path={ckpt}",
                                                            "trainer.max_steps=10", "test=false"))
    assert objects["trainer"].global_step == 10 and len(reads) == 1


def test_train_eval_and_upscale_log_the_same_run_settings_line(trained_srcnn, tiny_data, tmp_path, caplog):
    """One resolver of device, precision and speed (sr_lightning.settings), one log line."""
    caplog.set_level("INFO", logger="sr_lightning.settings")
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", f"data.test_sets=[{tiny_data['test']}]",
              "trainer.accelerator=cpu", f"hydra.run.dir={tmp_path / 'e'}")
    run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={tiny_data['test'] / 'img00.png'}",
              f"output={tmp_path / 'up.png'}", "device=cpu")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run settings: ")]
    assert len(lines) == 2 and all(line.startswith("run settings: cpu (") for line in lines), lines
    assert all("channels_last=True" in line and "threads=" in line for line in lines)
