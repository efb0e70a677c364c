"""Progress as plain lines when stdout is not a terminal: training, eval and upscale of folders."""

from __future__ import annotations

import re

import pytest

from sr_lightning.callbacks import ProgressLog
from sr_lightning.progress import PlainProgress
from tests.conftest import run_entry, run_module, tiny_args, write_folder


def test_plain_progress_lines(caplog):
    caplog.set_level("INFO")
    p = PlainProgress("step", 3000, every_s=0, unit="steps", done=100)
    line = p.update(400, {"train/loss": 0.02134, "val/psnr": 33.1043})
    assert re.fullmatch(r"step 400/3000 \(13%\) \| train/loss 0\.02134 \| val/psnr 33\.1 \| [\d.e+]+ steps/s \| "
                        r"\S+ left", line), line
    assert line in caplog.text
    assert "done in" in p.update(3000, final=True)
    throttled = PlainProgress("image", 5, every_s=3600, unit="images")
    assert throttled.update(1) is None and throttled.update(2) is None  # within the interval: nothing
    assert throttled.update(5, final=True).startswith("image 5/5 (100%)")
    assert PlainProgress("step", None, 0, "steps").update(7).startswith("step 7 | ")


def test_bad_settings_name_the_option():
    with pytest.raises(ValueError, match="progress when='sometimes' is not one of"):
        ProgressLog(when="sometimes")
    with pytest.raises(ValueError, match="progress every_s=-1 must be >= 0"):
        ProgressLog(every_s=-1)


def test_entry_points_log_progress_lines_into_a_pipe(tiny_data, tmp_path, caplog):
    """stdout is a pipe here, as in `make train | tee log`: the lines are in it (training as a
    subprocess; eval and upscale in-process, where stdout is pytest's capture, not a terminal)."""
    run = tmp_path / "run"
    out = run_module("sr_lightning.train", *tiny_args(tiny_data, run, "model=srcnn", "callbacks.progress_log.every_s=0",
                                                       "test=false")).stdout
    steps = re.findall(r"step (\d+)/8 \(\d+%\) \| train/loss [\d.e-]+ .*steps/s", out)
    assert [int(s) for s in steps] == list(range(1, 9)) + [8], out[-2000:]  # every step, then the final line
    assert re.search(r"step 8/8 \(100%\) .*\| val/psnr [\d.]+ \|.*done in", out)
    ckpt = run / "checkpoints/last.ckpt"
    caplog.set_level("INFO")
    run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", "data=folder", "data.train_dir=null",
              f"+data.test_dirs.tiny={tiny_data['test']}", "progress.every_s=0", f"hydra.run.dir={tmp_path / 'ev'}")
    assert "test batch 2/2 (100%)" in caplog.text
    src = write_folder(tmp_path / "in", 2, (16, 16))
    run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src}", f"output={tmp_path / 'up'}",
              "progress.every_s=0")
    assert "image 1/2 (50%)" in caplog.text and "image 2/2 (100%)" in caplog.text


def test_one_large_image_shows_progress_over_its_tiles(trained_srcnn, tmp_path, caplog):
    src = write_folder(tmp_path / "in", 1, (40, 52)) / "img00.png"
    caplog.set_level("INFO")
    run_entry("sr_lightning.upscale", f"ckpt_path={trained_srcnn / 'checkpoints/last.ckpt'}", f"input={src}",
              f"output={tmp_path / 'up.png'}", "tile=16", "progress.every_s=0")
    assert [int(n) for n in re.findall(r"tile (\d+)/12 \(", caplog.text)] == list(range(1, 13))


def test_the_progress_bar_counts_the_epochs_a_run_bounded_by_steps_takes():
    from types import SimpleNamespace

    from sr_lightning.callbacks import StepsProgressBar

    bar = StepsProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=1752, num_training_batches=100)
    assert bar._get_train_description(3).strip() == "Epoch 3/17"  # Lightning: "Epoch 3/-2"
    bar._trainer = SimpleNamespace(max_epochs=5, max_steps=-1, num_training_batches=100)
    assert bar._get_train_description(3).strip() == "Epoch 3/4"


def test_progress_bar_null_means_no_bar_unless_the_trainer_asks_for_one(tiny_data, tmp_path):
    """callbacks.progress_bar=null: no bar (not Lightning's own, which counts "Epoch 0/-2" in
    a run bounded by steps); trainer.enable_progress_bar=true brings Lightning's back."""
    from lightning.pytorch.callbacks import ProgressBar

    def bars(*extra):
        _, objects = run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / str(len(extra)),
                                                                 "trainer.max_steps=2", "model=srcnn", *extra))
        return [type(c).__name__ for c in objects["trainer"].callbacks if isinstance(c, ProgressBar)]

    assert bars() == []  # tiny_args sets callbacks.progress_bar=null
    assert bars("+trainer.enable_progress_bar=true") in (["RichProgressBar"], ["TQDMProgressBar"])  # Lightning's
