"""Multiruns: a grid with its summary, and DDP inside a multirun (exactly the expected folders)."""

from __future__ import annotations

import csv
import json

from tests.conftest import run_module


def _sweep_args(tiny, sweep_dir, *extra):
    return ["-m", "data=folder", f"data.train_dir={tiny['train']}", f"data.val_dir={tiny['val']}",
            f"data.test_sets=[{tiny['test']}]", "data.patch_size=16", "data.batch_size=4", "data.steps_per_epoch=4",
            "trainer.max_steps=4", "trainer.check_val_every_n_epoch=1", "callbacks.progress_bar=null",
            f"hydra.sweep.dir={sweep_dir}", *extra]


def test_grid_runs_every_job_and_writes_a_summary(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    run_module("sr_lightning.train", *_sweep_args(tiny_data, sweep, "model=srcnn,vdsr", "optimizer.lr=1e-3,1e-4"))
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1", "2", "3"]
    for job in jobs:
        assert (sweep / job / "metrics.json").is_file() and (sweep / job / "checkpoints/last.ckpt").is_file()
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 4
    assert {r["overrides"] for r in rows} == {f"model={m} optimizer.lr={lr}" for m in ("srcnn", "vdsr")
                                              for lr in ("0.001", "0.0001")}  # as Hydra writes them
    values = [float(r["val/psnr_best"]) for r in rows]
    assert values == sorted(values, reverse=True)  # best first
    for r in rows:
        job = json.loads((sweep / r["job"] / "metrics.json").read_text())
        assert float(r["test/test/psnr"]) == round(job["test"]["psnr"], 4)
    assert (sweep / "summary.md").read_text().startswith("| job | overrides | val/psnr_best |")


def test_ddp_inside_a_multirun_runs_exactly_the_jobs(tiny_data, tmp_path):
    """Lightning re-launches DDP workers; with Hydra they must join their job, not re-run the sweep."""
    sweep = tmp_path / "sweep"
    run_module("sr_lightning.train", *_sweep_args(tiny_data, sweep, "trainer=ddp_sim", "model=srcnn,vdsr"),
               timeout=600)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert not list(tmp_path.glob("logs")) and not (tmp_path / "outputs").exists()
    for job in ("0", "1"):
        m = json.loads((sweep / job / "metrics.json").read_text())
        assert m["test"]["num_images"] == 2  # every test image once, not once per process
        assert len(list((sweep / job / "csv").rglob("metrics.csv"))) == 1  # rank 0 only
    assert len(list(csv.DictReader(open(sweep / "summary.csv")))) == 2


def test_wandb_runs_of_a_multirun_are_separate_and_grouped(tiny_data, tmp_path):
    from tests.wandb_files import read_run

    sweep = tmp_path / "sweep"
    run_module("sr_lightning.train", *_sweep_args(tiny_data, sweep, "logger=wandb", "model=srcnn",
                                                   "optimizer.lr=1e-3,2e-4", "callbacks.images.num_images=0"))
    runs = [read_run(d) for job in ("0", "1") for d in (sweep / job / "wandb").glob("offline-run-*")]
    assert sorted(r["name"] for r in runs) == ["srcnn-x2-lr1e-3", "srcnn-x2-lr2e-4"]  # one run per job
    assert runs[0]["group"] == runs[1]["group"] == f"sweep-{sweep.name}"
