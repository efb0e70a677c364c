"""Resuming: Ctrl-C / SIGTERM save a resumable checkpoint; ``resume=RUN`` / ``resume=auto`` /
``ckpt_path=`` go on with the run's own config, in its folder and logger runs, to the result an
uninterrupted run reaches."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from sr_lightning.loggers import WANDB_RUN_FOLDER
from sr_lightning.resume import merge
from tests.conftest import run_cli, tiny_args


class SignalAtStep(L.Callback):
    """Sends this process ``signum`` when training reaches ``step`` (a user's Ctrl-C, SLURM's SIGTERM)."""

    def __init__(self, step: int, signum: str = "SIGINT") -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.Signals[self.signum])


def _killer(step: int, signum: str) -> list[str]:
    return [f"+callbacks.kill._target_={SignalAtStep.__module__}.SignalAtStep", f"+callbacks.kill.step={step}",
            f"+callbacks.kill.signum={signum}"]


def _steps(run: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader(open(run / "csv/metrics.csv")) if r.get("train/loss")]


def test_merge_keeps_the_runs_overrides_and_lets_the_new_ones_win():
    old = ["model=espcn", "+data.test_dirs.a=/x", "trainer.max_steps=9", "hydra.run.dir=/r", "ckpt_path=/c"]
    merged, changes = merge(old, ["trainer.max_steps=20", "data.test_dirs.a=/y", "seed=3"])
    assert merged == ["model=espcn", "+data.test_dirs.a=/y", "trainer.max_steps=20", "seed=3"]
    assert changes == ["trainer.max_steps=20 (was trainer.max_steps=9)",
                       "+data.test_dirs.a=/y (was +data.test_dirs.a=/x)", "seed=3 (new)"]


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tiny_data, tmp_path):
    """Ctrl-C after step 4 (mid-epoch) of an ESPCN run; `resume=RUN` (no other option: the network
    and data come from the run) ends where the run without the interruption ends."""
    args = ["model=espcn", "data.steps_per_epoch=3", "trainer.max_steps=9", "trainer.check_val_every_n_epoch=null",
            "trainer.val_check_interval=3"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_cli("sr_lightning.train", *tiny_args(tiny_data, whole, *args))
    stopped = run_cli("sr_lightning.train", *tiny_args(tiny_data, cut, *args, *_killer(4, "SIGINT")), check=False)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert f"resume={cut}" in stopped.stdout + stopped.stderr
    ckpt = torch.load(cut / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    # The signal came after step 4 had been checked: step 5 finished, then the state was saved.
    assert ckpt["global_step"] == 5 and not (cut / "metrics.json").exists()  # stopped, not tested

    resumed = run_cli("sr_lightning.train", f"resume={cut}")
    assert "model=espcn" in resumed.stderr  # the run's own overrides, replayed and reported
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((cut / "metrics.json").read_text())
    for key in ("psnr", "ssim"):
        assert got["tiny"][key] == pytest.approx(expected["tiny"][key], abs=1e-5)
    assert _steps(cut) == _steps(whole)  # one curve, in the run's own folder, no step twice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "whole"]

    moved = tmp_path / "elsewhere.ckpt"  # no run folder: the network from the file, its options only shown
    moved.write_bytes((cut / "checkpoints/last.ckpt").read_bytes())
    elsewhere = run_cli("sr_lightning.train", f"ckpt_path={moved}", f"hydra.run.dir={tmp_path / 'again'}",
                        "trainer.max_steps=12", "data=folder", f"data.train_dir={tiny_data['train']}",
                        "data.val_dir=null", "test=false")
    shown = (elsewhere.stdout + elsewhere.stderr).split("it was trained with ", 1)[1].split("\n", 1)[0]
    assert "model=espcn" in shown and "options from a file are never run" in shown and "ckpt_path" not in shown
    assert torch.load(tmp_path / "again/checkpoints/last.ckpt", weights_only=True)["hyper_parameters"]["net"][
        "_target_"].endswith("ESPCN")


@pytest.mark.usefixtures("wandb_installed")
def test_sigterm_and_resume_auto_continue_the_same_logger_runs(tiny_data, tmp_path, monkeypatch):
    """SLURM preemption (SIGTERM) at step 2, then `resume=auto` with a longer schedule: the
    same folder, CSV file and W&B run id; the new option is reported and wins."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    logs = tmp_path / "logs"
    args = [a for a in tiny_args(tiny_data, tmp_path, "model=srcnn", "logger=wandb",
                                 "callbacks.images.num_images=0", f"paths.log_dir={logs}") if
            not a.startswith("hydra.run.dir")]
    stopped = run_cli("sr_lightning.train", *args, *_killer(2, "SIGTERM"), check=False)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    (run,) = (logs / "train/runs").iterdir()
    (first,) = (run / "wandb").glob("offline-run-*")

    resumed = run_cli("sr_lightning.train", "resume=auto", f"paths.log_dir={logs}", "trainer.max_steps=10")
    assert "trainer.max_steps=10 (was trainer.max_steps=8)" in resumed.stderr
    assert [p.name for p in (logs / "train/runs").iterdir()] == [run.name]
    assert (run / "metrics.json").is_file()
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 10
    runs = sorted((run / "wandb").glob("offline-run-*"))
    ids = {WANDB_RUN_FOLDER.search(r.name)[2] for r in runs}  # a same-second resume's folder ends in -1
    assert len(runs) == 2 and ids == {WANDB_RUN_FOLDER.search(first.name)[2]}

    again = run_cli("sr_lightning.train", "resume=auto", f"paths.log_dir={logs}", check=False)
    assert again.returncode == 2 and "no unfinished run" in again.stderr  # that run finished


def test_bad_resume_options_get_one_line(tmp_path):
    proc = run_cli("sr_lightning.train", f"resume={tmp_path}", check=False)
    assert proc.returncode == 2 and "has no checkpoints/last.ckpt" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("sr_lightning.train", f"resume={tmp_path}", "ckpt_path=x.ckpt", check=False)
    assert proc.returncode == 2 and "keep one" in proc.stderr
    proc = run_cli("sr_lightning.train", "-m", "resume=auto", check=False)
    assert proc.returncode == 2 and "resume= continues one run" in proc.stderr


def test_a_budgeted_run_resumes_with_the_steps_it_planned(tiny_data, tmp_path):
    """`make train` fits trainer.max_steps to a time budget; resumed, the run keeps the steps (and
    so the schedule) it planned instead of timing the machine again."""
    run = tmp_path / "run"
    args = [a for a in tiny_args(tiny_data, run, "model=srcnn", "budget_minutes=0.01", *_killer(2, "SIGINT"))
            if not a.startswith("trainer.max_steps")]  # given, the steps would be pinned: no budget
    assert run_cli("sr_lightning.train", *args, check=False).returncode == 130
    planned = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["sr_lightning"]["max_steps"]
    assert planned > 3
    resumed = run_cli("sr_lightning.train", f"resume={run}")
    assert f"resuming, so the run's own {planned} steps (its schedule) are kept" in resumed.stdout + resumed.stderr
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == planned


def test_a_resumed_tensorboard_run_continues_in_its_folder(tiny_data, tmp_path):
    """logger=tensorboard, stopped at step 2 and resumed: the resumed training writes a new
    event file beside the first, in the same folder (TensorBoard reads them as one run), whose
    steps go on from the stop (the test metrics have a file of their own, as in any run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = tiny_args(tiny_data, run, "model=srcnn", "logger=tensorboard", *_killer(2, "SIGINT"))
    assert run_cli("sr_lightning.train", *args, check=False).returncode == 130
    run_cli("sr_lightning.train", f"resume={run}")
    events = sorted((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent for e in events} == {run / "tensorboard"}
    steps = []
    for event_file in events:
        scalars = EventAccumulator(str(event_file))
        scalars.Reload()
        if "train/loss" in scalars.Tags()["scalars"]:
            steps.append([e.step for e in scalars.Scalars("train/loss")])
    assert len(steps) == 2 and max(steps[0]) < min(steps[1])  # continued, not restarted
    assert sorted(steps[0] + steps[1]) == list(range(8))
