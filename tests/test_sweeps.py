"""Multiruns: a grid with its summary, Optuna studies (resume, failed and pruned trials, bad
options), DDP and launchers inside a multirun. Sweeps whose jobs run in this process go
through run_cli; DDP, launchers and W&B keep a process of their own."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from tests.conftest import run_cli, run_module


def _sweep_args(tiny, sweep_dir, *extra):
    return ["-m", "data=folder", f"data.train_dir={tiny['train']}", f"data.val_dir={tiny['val']}",
            f"data.test_sets=[{tiny['test']}]", "data.patch_size=16", "data.batch_size=4", "data.steps_per_epoch=4",
            "trainer.max_steps=4", "trainer.check_val_every_n_epoch=1", "callbacks.progress_bar=null",
            f"hydra.sweep.dir={sweep_dir}", *extra]


def test_grid_runs_every_job_and_writes_a_summary(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("sr_lightning.train", *_sweep_args(tiny_data, sweep, "model=srcnn,vdsr", "optimizer.lr=1e-3,1e-4"))
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


def test_a_grid_whose_jobs_get_bad_input_runs_them_all_and_ends_in_one_line_each(tmp_path):
    """Every job's bad option is its one line (and a logged failure); the sweep still runs the
    second job, and Hydra's report at the end is the first job's line, no traceback."""
    proc = run_cli("sr_lightning.train", "-m", "data.scale=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   check=False)
    assert proc.returncode == 1
    for scale in (0, 1):
        assert f"error: data.scale={scale} is not supported: use an integer >= 2" in proc.stderr
    assert "Error executing job with overrides: ['data.scale=0']" in proc.stdout + proc.stderr
    assert proc.stderr.rstrip().splitlines()[-3] == "data.scale=0 is not supported: use an integer >= 2"
    assert "Traceback" not in proc.stderr and "full_key" not in proc.stderr


@pytest.mark.slow  # 38 s on a 2-core EPYC; DDP (test_ddp_sim_matches_single_process_metrics) and grids run in every run
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


@pytest.mark.slow  # 31 s; a W&B run read back from its files: test_train_wandb_offline_run_reads_back in every run
@pytest.mark.usefixtures("wandb_installed")
def test_wandb_runs_of_a_multirun_are_separate_and_grouped(tiny_data, tmp_path):
    from tests.wandb_files import read_run

    sweep = tmp_path / "sweep"
    run_module("sr_lightning.train", *_sweep_args(tiny_data, sweep, "logger=wandb", "model=srcnn",
                                                   "optimizer.lr=1e-3,2e-4", "callbacks.images.num_images=0"))
    runs = [read_run(d) for job in ("0", "1") for d in (sweep / job / "wandb").glob("offline-run-*")]
    assert sorted(r["name"] for r in runs) == ["srcnn-x2-lr1e-3", "srcnn-x2-lr2e-4"]  # one run per job
    assert runs[0]["group"] == runs[1]["group"] == f"sweep-{sweep.name}"


def _search_args(tiny, sweep_dir, *extra):
    return ["-m", "hparams_search=vdsr_optuna", "data=folder", f"data.train_dir={tiny['train']}",
            f"data.val_dir={tiny['val']}", f"data.test_sets=[{tiny['test']}]", "data.patch_size=16",
            "trainer.max_steps=2", "callbacks.progress_bar=null", f"hydra.sweep.dir={sweep_dir}", *extra]


def _trials(sweep_dir):
    import optuna

    return optuna.load_study(study_name="vdsr_optuna", storage=f"sqlite:///{sweep_dir}/optuna.db").trials


def test_optuna_study_resumes_from_its_storage(tiny_data, tmp_path):
    sweep = tmp_path / "study"
    run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=2"))
    assert [t.state.name for t in _trials(sweep)] == ["COMPLETE"] * 2
    first = {t.number: t.params for t in _trials(sweep)}
    proc = run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=3"))
    assert "2 trial(s) complete or pruned in" in proc.stdout + proc.stderr
    trials = _trials(sweep)
    assert len(trials) == 3 and {t.number: t.params for t in trials[:2]} == first  # resumed, not restarted
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
    assert len(list(csv.DictReader(open(sweep / "summary.csv")))) == 3
    best = max(t.value for t in trials)
    assert float(next(csv.DictReader(open(sweep / "summary.csv")))["val/psnr_best"]) == round(best, 4)


def test_a_failed_trial_does_not_end_the_study(tiny_data, tmp_path):
    sweep = tmp_path / "study"
    space = "hydra.sweeper.params={model.num_layers: 'choice(2)'}"
    run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=2", space,
                                                "data.steps_per_epoch=0"))  # a bad option: every trial fails
    assert [t.state.name for t in _trials(sweep)] == ["FAIL", "FAIL"]
    # Fixed, the same command runs its 2 trials: failed ones do not count toward n_trials.
    proc = run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=2", space))
    assert "0 trial(s) complete or pruned" in proc.stdout + proc.stderr
    assert [t.state.name for t in _trials(sweep)] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    # Another search space for the same study: one line, naming the way out.
    other = "hydra.sweeper.params={model.num_layers: 'choice(3)'}"
    proc = run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=3", other),
                   check=False)
    assert proc.returncode == 2 and "give a new hydra.sweeper.study_name" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [t.state.name for t in _trials(sweep)] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]  # no trial left RUNNING


def test_search_space_keys_must_exist(tiny_data, tmp_path):
    conf = tmp_path / "conf/hparams_search"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - vdsr_optuna\nhydra:\n  sweeper:\n"
                                    "    params:\n      model.num_layerz: choice(4, 6)\n")
    proc = run_cli("sr_lightning.train", "-m", "--config-dir", str(tmp_path / "conf"), "hparams_search=mine",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'model.num_layerz' (did you mean model.num_layers" in proc.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_sampler_that_unpickles_its_storage_is_refused(tmp_path):
    """CmaEsSampler keeps pickled state in the study storage: a storage file is data only."""
    proc = run_cli("sr_lightning.train", "-m", "hparams_search=vdsr_optuna", "hydra/sweeper/sampler=cmaes",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hydra/sweeper/sampler=CmaEsSampler keeps its state pickled in the study storage" in proc.stderr
    assert not (tmp_path / "sweep").exists()


# 40 s (joblib) and 29 s (submitit_local) on a 2-core EPYC: with the slow tests; a launcher whose
# plugin is missing is named in every run (test_missing_plugin_names_the_package).
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers(tiny_data, tmp_path, launcher):
    sweep = tmp_path / "sweep"
    run_module("sr_lightning.train", *_sweep_args(tiny_data, sweep, f"hydra/launcher={launcher}", "model=srcnn",
                                                   "optimizer.lr=1e-3,2e-4"), timeout=600)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    assert len(list(csv.DictReader(open(sweep / "summary.csv")))) == 2


def test_missing_plugin_names_the_package(monkeypatch):
    import importlib.util

    from sr_lightning.cli import missing_plugins

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    assert missing_plugins(["hydra/launcher=joblib", "model=vdsr"]) == [
        "hydra/launcher=joblib needs the Hydra plugin hydra-joblib-launcher: pip install hydra-joblib-launcher "
        "(or pip install 'sr_lightning[joblib]')"]
    assert missing_plugins(["hparams_search=vdsr_optuna"]) == []  # our own sweeper, on Optuna itself
    assert "pip install hydra-submitit-launcher" in missing_plugins(["hydra/launcher=slurm"])[0]


def test_tensorboard_missing_says_what_to_install(monkeypatch):
    import importlib.util

    from sr_lightning.loggers import check_tensorboard

    tensorboard = {"tensorboard": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger"}}
    check_tensorboard(tensorboard)  # installed here (the dev extra)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'sr_lightning\[tensorboard\]'"):
        check_tensorboard(tensorboard)
    check_tensorboard({"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger"}})


@pytest.mark.usefixtures("wandb_installed")
def test_wandb_without_login_says_how_to_go_offline(tiny_data, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / ".wandb"))  # no netrc, no settings
    proc = subprocess.run([sys.executable, "-m", "sr_lightning.train", "logger=wandb",
                           f"hydra.run.dir={tmp_path / 'run'}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not logged in to W&B" in proc.stderr and "WANDB_MODE=offline" in proc.stderr


def test_a_pruned_trial_stops_early_and_the_study_goes_on(tiny_data, tmp_path):
    """Every trial reports val/psnr at each validation; a pruner that prunes every value
    stops each trial at its first validation and the study records it PRUNED."""
    sweep = tmp_path / "study"
    run_cli("sr_lightning.train", *_search_args(tiny_data, sweep, "hydra.sweeper.n_trials=2",
                                                "trainer.max_steps=6", "trainer.val_check_interval=2",
                                                "hydra/sweeper/pruner=none",
                                                "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
                                                "+hydra.sweeper.pruner.lower=1e9"))
    trials = _trials(sweep)
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all(list(t.intermediate_values) == [2] for t in trials)  # reported at step 2, stopped there
    for t in trials:  # of 6 steps
        assert torch.load(sweep / str(t.number) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.parametrize(("override", "message"), [
    ("hydra/sweeper/pruner=sometimes", "Could not find 'hydra/sweeper/pruner/sometimes'"),
    ("hydra.sweeper.storage=nosuchdb://x", "hydra.sweeper.storage='nosuchdb://x': Optuna cannot open it"),
])
def test_bad_sweeper_options_get_one_line(tmp_path, override, message):
    proc = run_cli("sr_lightning.train", "-m", "hparams_search=vdsr_optuna", override,
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", check=False)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
