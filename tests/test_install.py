"""The wheel: configs inside, console scripts that work from any folder, outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_folder

SCRIPTS = ("sr-train", "sr-eval", "sr-upscale", "sr-prepare", "sr-convert", "sr-zoo", "sr-export", "sr-explain",
           "sr-inspect")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the source (setuptools leaves build/ where it builds)."""
    source, out = tmp_path_factory.mktemp("source") / "sr_lightning", tmp_path_factory.mktemp("wheel")
    top = {".git", ".venv", "build", "logs", "data", "outputs", "wandb", ".pytest_cache", ".ruff_cache"}

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = top if Path(folder) == ROOT else set()
        return [n for n in names if n in here or n == "__pycache__" or n.endswith(".egg-info")]

    shutil.copytree(ROOT, source, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("sr_lightning-*.whl"))


def _venv(tmp: Path, wheel: Path, *, deps_from_here: bool) -> Path:
    """A fresh venv with the wheel installed (its dependencies: this environment's, or from pip)."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if deps_from_here:  # a path entry, not a site dir: this environment's editable checkout is not seen
        site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   check=True, capture_output=True, text=True).stdout.strip())
        (site / "deps_from_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
        args = ["--no-deps"]
    else:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "torch==2.13.0"],
                       check=True, capture_output=True)
        args = []
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args, str(wheel)],
                   check=True, capture_output=True)
    return venv


def _run(venv: Path, script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SR_DATA_DIR")}
    proc = subprocess.run([venv / "bin" / script, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**base, "WANDB_MODE": "offline", **env})
    assert proc.returncode == 0, f"{script} {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_the_wheel_holds_every_config_and_the_console_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    conf = ROOT / "sr_lightning" / "conf"
    shipped = {n.removeprefix("sr_lightning/conf/") for n in names if n.startswith("sr_lightning/conf/")}
    assert shipped == {str(p.relative_to(conf)) for p in conf.rglob("*") if p.suffix in (".yaml", ".py")}
    entry_points = next(zipfile.Path(wheel, n) for n in names if n.endswith("entry_points.txt")).read_text()
    assert all(f"{script} = " in entry_points for script in SCRIPTS)
    metadata = next(zipfile.Path(wheel, n) for n in names if n.endswith(".dist-info/METADATA")).read_text()
    assert "License-Expression: MIT" in metadata and any(n.endswith("licenses/LICENSE") for n in names)


def _train_and_eval(venv: Path, tmp: Path) -> None:
    train, test = write_folder(tmp / "train", 3, (64, 64)), write_folder(tmp / "test", 1, (48, 48))
    work = tmp / "project"  # the user's own folder: no conf/, not the checkout
    work.mkdir()
    where = _run(venv, "python", "-c", "import sr_lightning; print(sr_lightning.__file__)", cwd=work).stdout
    assert Path(where.strip()).is_relative_to(venv)
    _run(venv, "sr-train", "data=folder", f"data.train_dir={train}", "data.val_dir=null", f"data.test_sets=[{test}]",
         "model=srcnn", "data.patch_size=12", "data.batch_size=2", "trainer.max_steps=3", "callbacks.progress_bar=null",
         "hydra.run.dir=run", cwd=work)
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert metrics["test"] and (work / "run" / "checkpoints" / "last.ckpt").is_file()
    proc = _run(venv, "sr-eval", "model=bicubic", "data=folder", "data.train_dir=null", f"data.test_sets=[{test}]",
                "hydra.run.dir=bicubic", cwd=work)
    assert "bicubic" in proc.stdout + proc.stderr
    # the user's own network and config folder (--config-dir), beside the shipped configs
    (work / "my_nets.py").write_text("from sr_lightning.nets.srcnn import SRCNN\n\n\n"
                                     "class TinySRCNN(SRCNN):\n    name = 'tiny_srcnn'\n")
    (work / "myconf" / "model").mkdir(parents=True)
    (work / "myconf" / "model" / "tiny.yaml").write_text("defaults:\n  - srcnn\n  - _self_\n"
                                                         "_target_: my_nets.TinySRCNN\nnum_features: [16, 8]\n")
    _run(venv, "sr-train", "--config-dir", "myconf", "model=tiny", "data=folder", f"data.train_dir={train}",
         "data.val_dir=null", "test=false", "data.patch_size=12", "data.batch_size=2", "trainer.max_steps=2",
         "callbacks.progress_bar=null", "hydra.run.dir=mine", cwd=work, PYTHONPATH=str(work))
    ckpt = _run(venv, "python", "-c", "import torch; c = torch.load('mine/checkpoints/last.ckpt', weights_only=True); "
                "print(c['hyper_parameters']['net']['_target_'])", cwd=work).stdout
    assert ckpt.strip() == "my_nets.TinySRCNN"
    zoo = _run(venv, "sr-zoo", cwd=work).stdout
    assert "| vdsr |" in zoo and "| srcnn |" in zoo


@pytest.mark.slow  # 117 s on a 2-core EPYC; the wheel's contents are checked in every run (above)
def test_console_scripts_train_and_evaluate_from_an_installed_wheel(wheel, tmp_path):
    _train_and_eval(_venv(tmp_path, wheel, deps_from_here=True), tmp_path)


@pytest.mark.slow
def test_a_fresh_venv_installs_the_wheel_with_its_dependencies(wheel, tmp_path):
    """pip resolves the wheel's own dependencies (torch from the pin, as `make install`)."""
    _train_and_eval(_venv(tmp_path, wheel, deps_from_here=False), tmp_path)
