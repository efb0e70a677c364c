"""The real entry points, run as a user runs them, on small real images: their functions or
command lines in this process (run_entry, run_cli), and a process of their own where the
process itself is tested (DDP, the exit status as the shell sees it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.hardware import SPEED_OPTIONS, resolve_speed
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import list_nets
from sr_lightning.ops import imresize, rgb_to_ycbcr
from tests.conftest import ROOT, run_cli, run_entry, run_module, shallow_overrides, tiny_args, write_folder


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _check_metrics(m, name="tiny", n=2, min_psnr=15):
    assert set(m) == {name}
    r = m[name]
    assert set(r) == {"psnr", "ssim", "gmsd", "psnr_bicubic", "ssim_bicubic", "num_images"}
    assert r["num_images"] == n
    assert min_psnr < r["psnr"] < 60 and 0 < r["ssim"] <= 1 and 0 <= r["gmsd"] < 1


# The deep networks train here at a few blocks: their full depth is in the shape/gradient tests
# (tests/nets), and 12 steps of the full EDSR's 40 M parameters cost a minute on AVX2 CPUs (4 blocks: 21 s).
@pytest.mark.parametrize("name", [n for n in list_nets() if n != "bicubic"])
def test_train_each_network(tiny_data, tmp_path, name):
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path, f"model={name}", "trainer.max_steps=12",
                                                "data.steps_per_epoch=12", "optimizer.lr=3e-4",
                                                *shallow_overrides(name)))
    _check_metrics(_metrics(tmp_path), min_psnr=5)  # 12 steps: LR-space networks are far from converged
    assert (tmp_path / "checkpoints/last.ckpt").is_file()
    losses = [float(r["train/loss"]) for r in _csv_rows(tmp_path) if r.get("train/loss")]
    assert len(losses) == 12
    assert np.mean(losses[-4:]) < np.mean(losses[:4])  # it learns


def _csv_rows(run_dir):
    import csv

    with open(run_dir / "csv/metrics.csv") as f:
        return list(csv.DictReader(f))


def test_trained_run_leaves_checkpoints_and_metrics(trained_srcnn):
    _check_metrics(_metrics(trained_srcnn))
    ckpts = sorted(p.name for p in (trained_srcnn / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(c.startswith("best-") for c in ckpts)
    rows = _csv_rows(trained_srcnn)
    keys = set().union(*(r.keys() for r in rows))
    assert {"train/loss", "val/psnr", "val/ssim", "val/psnr_best", "val/psnr_bicubic", "test/tiny/psnr",
            "test/tiny/psnr_bicubic"} <= keys


def test_resume_from_last_checkpoint(tiny_data, trained_srcnn, tmp_path):
    last = trained_srcnn / "checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 8
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=srcnn", f"ckpt_path={last}",
                                                "trainer.max_steps=12"))
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 12
    steps = [int(r["step"]) for r in _csv_rows(tmp_path) if r.get("train/loss")]
    assert min(steps) >= 8  # continued, not restarted


def test_last_checkpoint_is_the_latest_state_even_without_a_new_best(tiny_data, tmp_path):
    """With lr 0 val/psnr never improves after the first validation; last.ckpt must still be the final step."""
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=srcnn", "optimizer.lr=0",
                                                "scheduler=none", "trainer.max_steps=12", "test=false"))
    ckpts = tmp_path / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 12
    best = list(ckpts.glob("best-*.ckpt"))
    assert len(best) == 1 and torch.load(best[0], weights_only=True)["global_step"] == 4


def test_eval_recomputes_the_test_table(tiny_data, trained_srcnn, tmp_path):
    """Training tests its final weights (test_ckpt=last): eval of last.ckpt gives the same table."""
    last = trained_srcnn / "checkpoints/last.ckpt"
    proc = run_cli("sr_lightning.eval", f"ckpt_path={last}", "data=folder", "data.train_dir=null",
                   f"+data.test_dirs.tiny={tiny_data['test']}", f"hydra.run.dir={tmp_path}")
    assert "PSNR" in proc.stdout
    m, trained = _metrics(tmp_path), _metrics(trained_srcnn)
    assert m["tiny"]["psnr"] == pytest.approx(trained["tiny"]["psnr"], abs=1e-4)
    assert m["tiny"]["psnr_bicubic"] == pytest.approx(trained["tiny"]["psnr_bicubic"], abs=1e-9)


def test_test_ckpt_best_tests_the_best_checkpoint(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=srcnn", "test_ckpt=best",
                                                     "trainer.max_steps=12"))
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert f"tested: {best}" in proc.stdout
    run_entry("sr_lightning.eval", f"ckpt_path={best}", "data=folder", "data.train_dir=null",
              f"+data.test_dirs.tiny={tiny_data['test']}", f"hydra.run.dir={tmp_path / 'ev'}")
    assert _metrics(run_dir)["tiny"]["psnr"] == pytest.approx(_metrics(tmp_path / "ev")["tiny"]["psnr"], abs=1e-4)
    proc = run_cli("sr_lightning.train", "test_ckpt=median", f"hydra.run.dir={tmp_path / 'bad'}", check=False)
    assert proc.returncode == 2 and "test_ckpt='median' is not one of ('last', 'best')" in proc.stderr


def test_upscale_rgb_image_with_a_y_network(trained_srcnn, tmp_path):
    src = write_folder(tmp_path / "in", 3, (30, 41), seed=5)
    Image.open(src / "img01.png").convert("L").save(src / "gray.png")
    Image.open(src / "img02.png").convert("RGBA").save(src / "alpha.png")
    Image.open(src / "img02.png").convert("P").save(src / "palette.png")
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src / 'img00.png'}",
              f"output={tmp_path / 'out.png'}")
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (60, 82, 3)
    # The standard way: Y through the network, Cb/Cr by MATLAB bicubic, back to RGB.
    to_t = lambda a: torch.from_numpy(a.astype(np.float64) / 255).permute(2, 0, 1)[None]  # noqa: E731
    out_ycc, in_ycc = rgb_to_ycbcr(to_t(out)), rgb_to_ycbcr(to_t(np.asarray(Image.open(src / "img00.png"))))
    unclipped = ((out > 0) & (out < 255)).all(-1)  # RGB clipping moves Y/Cb/Cr; compare elsewhere
    assert unclipped.mean() > 0.5
    with torch.no_grad():
        y = SRLitModule.load_from_checkpoint(ckpt).eval()(in_ycc[:, :1].float()).clamp(0, 1).double()
    expected = torch.cat([y, imresize(in_ycc[:, 1:], 2)], dim=1)
    diff = (out_ycc - expected).abs()[0].permute(1, 2, 0).numpy()[unclipped] * 255
    assert diff.max() < 1.5  # uint8 rounding of R, G, B only
    # a folder of mixed modes
    run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src}", f"output={tmp_path / 'outdir'}")
    outs = {p.name: Image.open(p) for p in (tmp_path / "outdir").iterdir()}
    assert set(outs) == {"img00.png", "img01.png", "img02.png", "gray.png", "alpha.png", "palette.png"}
    assert outs["gray.png"].mode == "L" and outs["gray.png"].size == (82, 60)
    assert outs["alpha.png"].mode == "RGBA"


def test_train_debug_fdr_and_loggers(tiny_data, tmp_path):
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "fdr", "model=unet", "debug=fdr"))
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "tb", "model=srcnn", "logger=tensorboard",
                                                "trainer.max_steps=4", "scheduler=step", "loss=mse",
                                                "optimizer=sgd", "optimizer.lr=0.01", "seed=1", "data.scale=3"))
    assert list((tmp_path / "tb/tensorboard").rglob("events.out.tfevents.*"))
    assert _metrics(tmp_path / "tb")["tiny"]["num_images"] == 2


@pytest.mark.usefixtures("wandb_installed")
def test_train_wandb_offline_run_reads_back(tiny_data, tmp_path):
    """Config (resolved cfg, parameters, FLOPs, git commit), metrics, the validation panel and
    the per-image test table are all in the offline run's files."""
    from tests.wandb_files import read_run

    # A process of its own: W&B's files are complete once the process that logged them has exited.
    run_module("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=srcnn", "logger=wandb",
                                                 "logger.wandb.log_model=true", "trainer.max_steps=4",
                                                 "optimizer.lr=1e-3"))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_run(run_dir)
    assert run["name"] == "srcnn-x2-lr1e-3" and not run["group"]
    cfg = run["config"]
    assert cfg["cfg"]["model"]["_target_"] == "sr_lightning.nets.srcnn.SRCNN"  # the resolved Hydra config
    assert cfg["cfg"]["optimizer"]["lr"] == 1e-3
    speed = resolve_speed({}, "cpu")  # the run records the speed settings it ran with, not `auto`
    assert {k: cfg["cfg"][k] for k in SPEED_OPTIONS} == speed and isinstance(speed["channels_last"], bool)
    assert cfg["num_params"] == 57_281 and cfg["gflops_per_megapixel"] > 100
    assert len(str(cfg["git_commit"])) >= 40
    history = run["history"]
    assert any("train/loss" in h for h in history)
    panels = [h for h in history if "val/images/_type" in h]
    assert panels and panels[0]["val/images/count"] == 1  # the one validation image
    assert "img00: SR" in panels[0]["val/images/captions"][0]
    tables = [f for f in run["files"] if f.startswith("media/table/test/tiny/images")]
    assert len(tables) == 1
    table = json.loads((run_dir / "files" / tables[0]).read_text())
    assert table["columns"] == ["image", "psnr", "ssim", "psnr_bicubic", "gain", "sr"]
    assert sorted(r[0] for r in table["data"]) == ["img00", "img01"]
    metrics = _metrics(tmp_path)["tiny"]
    assert np.mean([r[1] for r in table["data"]]) == pytest.approx(metrics["psnr"], abs=1e-4)
    assert any(h.get("test/tiny/psnr") == pytest.approx(metrics["psnr"], abs=1e-6) for h in history)
    # log_model: the best checkpoint as an artifact, its val/psnr in the metadata
    best = [a["metadata"] for a in run["artifacts"] if a["type"] == "model" and a["metadata"].get("score")]
    assert best and best[0]["original_filename"].startswith("best-")
    assert best[0]["score"] == pytest.approx(max(h["val/psnr"] for h in history if "val/psnr" in h), abs=1e-4)


def test_tensorboard_gets_the_same_panels(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=srcnn", "logger=tensorboard",
                                                "trainer.max_steps=4"))
    images = []
    for events in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0})
        acc.Reload()
        if "val/images/img00" in acc.Tags()["images"]:
            images += acc.Images("val/images/img00")
    assert images
    image = images[0]
    assert image.width == 5 * 64 and image.height == 64 + 48  # 5 tiles of 64x64; 48-pixel crops below


def test_ddp_sim_matches_single_process_metrics(tiny_data, tmp_path):
    """3 test images over 2 processes: the reduced metrics equal one process's on the same checkpoint."""
    test3 = write_folder(tmp_path / "test3", 3, (62, 70), seed=3)
    run_dir = tmp_path / "ddp"
    run_module("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=srcnn", "trainer=ddp_sim",
                                                 "trainer.max_steps=8", f"+data.test_dirs.three={test3}"), timeout=400)
    ddp = _metrics(run_dir)
    assert ddp["three"]["num_images"] == 3 and ddp["tiny"]["num_images"] == 2  # none dropped or duplicated
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".json")) == ["job_summary.json",
                                                                                     "metrics.json"]  # rank 0 only
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    run_entry("sr_lightning.eval", f"ckpt_path={best}", "data=folder", "data.train_dir=null",
              f"+data.test_dirs.tiny={tiny_data['test']}", f"+data.test_dirs.three={test3}",
              f"hydra.run.dir={tmp_path / 'single'}")
    single = _metrics(tmp_path / "single")
    for name in ("tiny", "three"):
        for key in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic"):
            assert ddp[name][key] == pytest.approx(single[name][key], abs=1e-6), (name, key)


# -- bad input ----------------------------------------------------------------------------------

def test_unknown_model_lists_the_known_ones(tmp_path):
    proc = run_cli("sr_lightning.train", "model=edsr9", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "Could not find 'model/edsr9'" in proc.stderr
    for name in list_nets():
        assert name in proc.stderr


def test_a_config_dir_that_does_not_exist_is_named(tmp_path):
    proc = run_cli("sr_lightning.train", "--config-dir", str(tmp_path / "myconf"), f"hydra.run.dir={tmp_path}",
                   check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"Additional config directory '{tmp_path / 'myconf'}' not found" in proc.stderr


def test_unknown_data_lists_the_known_ones(tmp_path):
    proc = run_cli("sr_lightning.train", "data=imagenet", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "folder" in proc.stderr and "sample" in proc.stderr


def test_a_run_shows_its_config_data_and_table_without_library_noise(tiny_data, tmp_path, recwarn):
    """The composed config as a tree at the start, the training images counted, an RGB network
    on Y warned about, the final table in train.log too; not Lightning's litlogger tip nor its
    LeafSpec FutureWarning."""
    proc = run_cli("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=edsr_baseline",
                                                    *shallow_overrides("edsr")))
    out = proc.stdout + proc.stderr
    assert "config (saved in <run>/.hydra/config.yaml)" in out and "_target_: sr_lightning.nets.edsr.EDSR" in out
    assert "training data: 4 images from" in out and "batches of 4, 4 steps an epoch" in out
    assert "edsr was published on RGB (data.channels=3" in out
    assert "litlogger" not in out
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
    log = (tmp_path / "train.log").read_text()
    assert "PSNR (dB)" in log and f"metrics: {tmp_path / 'metrics.json'}" in log


def test_eval_of_a_folder_needs_no_training_folder(tiny_data, tmp_path):
    proc = run_cli("sr_lightning.eval", "data=folder", f"data.test_sets=[{tiny_data['test']}]",
                   f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert _metrics(tmp_path)["test"]["num_images"] == 2
    proc = run_cli("sr_lightning.train", "data=folder", f"hydra.run.dir={tmp_path / 'train'}", check=False)
    assert proc.returncode == 2 and "error: data.train_dir must be given" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_make_help_shows_the_values(tmp_path):
    out = run_module_make("help", "TORCH_SPEC=torch==9.9", "BUDGET=3")
    assert "install torch (torch==9.9)" in out and "fitted to 3 minutes" in out and "$(" not in out


def test_the_package_is_mit_licensed():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()


def run_module_make(*args: str) -> str:
    """``make ARGS`` in the checkout; its output."""
    import subprocess

    return subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_missing_data_folder_names_the_key(tmp_path):
    proc = run_cli("sr_lightning.train", "data=folder", f"data.train_dir={tmp_path / 'nope'}",
                   f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2
    assert f"error: data.train_dir: folder '{tmp_path / 'nope'}' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_checkpoint_paths(tmp_path):
    proc = run_cli("sr_lightning.eval", f"ckpt_path={tmp_path / 'none.ckpt'}", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    proc = run_cli("sr_lightning.train", f"ckpt_path={tmp_path / 'junk.ckpt'}", f"hydra.run.dir={tmp_path}",
                   check=False)
    assert proc.returncode == 2 and "is not a readable checkpoint" in proc.stderr


def test_hydra_rerun_from_a_pickle_is_refused(tmp_path):
    """train and eval share prepare_argv: one of them as a subprocess shows the exit code."""
    (tmp_path / "config.pickle").write_bytes(b"")
    proc = run_module("sr_lightning.eval", "--experimental-rerun", str(tmp_path / "config.pickle"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--experimental-rerun unpickles the file it is given" in proc.stderr


def test_eval_of_a_trainable_model_without_checkpoint(tmp_path):
    proc = run_cli("sr_lightning.eval", "model=vdsr", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "no ckpt_path was given" in proc.stderr


def test_eval_at_a_scale_the_checkpoint_cannot_do(tiny_data, tmp_path):
    run_dir = tmp_path / "unet"
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=unet", "trainer.max_steps=2",
                                                "model.num_features=8", "test=false"))
    proc = run_cli("sr_lightning.eval", f"ckpt_path={run_dir / 'checkpoints/last.ckpt'}", "data.scale=3",
                   f"hydra.run.dir={tmp_path / 'ev'}", check=False)
    assert proc.returncode == 2 and "data.scale=3 is not supported by this unet checkpoint" in proc.stderr


def test_upscale_errors_leave_no_output(trained_srcnn, tmp_path):
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    proc = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={tmp_path / 'missing.png'}",
                   f"output={tmp_path / 'o.png'}", check=False)
    assert proc.returncode == 2 and "input=" in proc.stderr and "does not exist" in proc.stderr
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    proc = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={bad}", f"output={tmp_path / 'o.png'}",
                   check=False)
    assert proc.returncode == 2 and "bad.png" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_lightning_load_from_checkpoint_needs_no_hydra(trained_srcnn):
    """The network is stored as its config, so the module rebuilds from the file alone."""
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    module = SRLitModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    assert module.net.name == "srcnn" and module.scale == 2
    assert module.criterion is None  # the recorded loss is never built
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.testing.assert_close(module.net.body[0].weight, state["net.body.0.weight"])


def test_eval_adopts_the_checkpoints_data_pipeline(tiny_data, tmp_path):
    """An RGB network trained on the benchmark-LR pipeline evaluates with it, without being told."""
    run_dir = tmp_path / "edsr"
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=edsr", "model.num_features=8",
                                                "model.num_blocks=1", "data.channels=3",
                                                "data/degradation=benchmark_lr", "trainer.max_steps=3"))
    ckpt = run_dir / "checkpoints/last.ckpt"
    assert torch.load(ckpt, weights_only=True)["sr_lightning"]["degradation"]["source"] == "rgb_uint8"
    run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", "data=folder", "data.train_dir=null",
              f"+data.test_dirs.tiny={tiny_data['test']}", f"hydra.run.dir={tmp_path / 'ev'}")
    assert _metrics(tmp_path / "ev")["tiny"]["psnr"] == pytest.approx(_metrics(run_dir)["tiny"]["psnr"], abs=1e-4)
