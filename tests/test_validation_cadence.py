"""Validation in steps: short runs validate (10 times by default), a run that never will is
warned about, sweeps get a value and a summary sorted by the optimised metric."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from sr_lightning.sweep import write_summary
from sr_lightning.train import optimized_value
from tests.conftest import run_entry, tiny_args


def _args(tiny, run_dir, *extra):
    """tiny_args with the configured cadence (no check_val_every_n_epoch) and long epochs."""
    return [a for a in tiny_args(tiny, run_dir, "model=srcnn", *extra)
            if not a.startswith(("trainer.check_val_every_n_epoch", "data.steps_per_epoch"))] + [
        "data.steps_per_epoch=100"]


def test_a_short_run_validates_ten_times_and_keeps_a_best_checkpoint(tiny_data, tmp_path):
    run_entry("sr_lightning.train", *_args(tiny_data, tmp_path, "trainer.max_steps=30"))
    rows = list(csv.DictReader(open(tmp_path / "csv/metrics.csv")))
    assert [int(r["step"]) for r in rows if r.get("val/psnr")] == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]
    assert len(list((tmp_path / "checkpoints").glob("best-*.ckpt"))) == 1


def test_a_run_that_never_validates_is_warned_about_at_its_start(tiny_data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        run_entry("sr_lightning.train", *_args(tiny_data, tmp_path, "trainer.max_steps=6",
                                               "trainer.val_check_interval=50"))
    assert "this run never validates (trainer.val_check_interval=50, trainer.max_steps=6)" in caplog.text
    assert not list((tmp_path / "checkpoints").glob("best-*.ckpt"))


def test_the_optimised_metric_falls_back_to_its_last_value(caplog):
    with caplog.at_level(logging.WARNING):
        assert optimized_value({"val/psnr": 30.5}, "val/psnr_best") == 30.5
    assert "val/psnr_best was never recorded; returning the last val/psnr (30.5000)" in caplog.text
    assert optimized_value({"val/psnr_best": 31.0, "val/psnr": 30.5}, "val/psnr_best") == 31.0
    assert optimized_value({}, "val/psnr_best") is None


@pytest.mark.parametrize(("metric", "direction", "order"), [
    ("val/psnr_best", None, ["b", "a", "c", "none"]),
    ("val/loss", None, ["c", "a", "b", "none"]),
    ("val/psnr_best", "minimize", ["c", "a", "b", "none"]),
])
def test_the_sweep_summary_is_sorted_by_the_optimised_metric(tmp_path, metric, direction, order):
    for job, value in {"a": 30.0, "b": 31.5, "c": 29.0, "none": None}.items():
        (tmp_path / job).mkdir()
        (tmp_path / job / "job_summary.json").write_text(json.dumps(
            {"overrides": [f"seed={job}"], "metric": metric, "value": value, "test_psnr": {}}))
    write_summary(tmp_path, direction)
    assert [r["job"] for r in csv.DictReader(open(tmp_path / "summary.csv"))] == order
