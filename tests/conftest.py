"""Shared fixtures: the benchmark data folder, small real image folders, a trained checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# The deep networks with fewer repeated groups and narrower features (every layer kind kept),
# for the tests that build every network on 2 CPU cores; tests/nets runs and counts each at
# its paper's configuration.
SHALLOW: dict[str, dict[str, Any]] = {
    "edsr": {"num_blocks": 2, "num_features": 64}, "rednet": {"num_layers": 10},
    "rcan": {"num_groups": 2, "num_blocks": 2}, "rrdbnet": {"num_blocks": 2}, "span": {"num_blocks": 2},
    "memnet": {"num_blocks": 2, "num_recursions": 1},
    "swinir": {"embed_dim": 24, "depths": [2, 2], "num_heads": [6, 6]},
    "hat": {"embed_dim": 24, "depths": [2], "num_heads": [2], "squeeze_factor": 8},
    "swin2sr": {"embed_dim": 24, "depths": [2], "num_heads": [6]}, "srvggnet": {"num_convs": 4},
    "plksr": {"num_blocks": 2}, "realplksr": {"num_blocks": 2},
    "drct": {"embed_dim": 24, "depths": [6], "num_heads": [4], "gc": 8},
    "srformer": {"embed_dim": 24, "depths": [2], "num_heads": [6], "window_size": 8},
    "dat": {"embed_dim": 64, "depths": [3], "num_heads": [4], "split_size": [4, 8]},
    "omnisr": {"num_features": 32, "num_groups": 2, "window_size": 4},
    "rgt": {"embed_dim": 64, "depths": [2], "num_heads": [4], "split_size": [4, 8]},
    "ditn": {"num_features": 24, "itl_blocks": 1, "sal_blocks": 1}, "drrn": {"num_units": 3, "num_features": 32},
    "rdn": {"num_blocks": 2, "num_layers": 3, "growth": 16, "num_features": 32},
    "dbpn": {"num_stages": 2, "num_features": 16, "head_features": 32},
    "craft": {"embed_dim": 64, "depths": [1, 1], "num_heads": [4, 4]},
    "atd": {"embed_dim": 24, "depths": [2], "num_heads": [3], "window_size": 8, "num_tokens": 8, "category_size": 16,
            "reducted_dim": 4},
}


def idle_at_its_scale(net: Any, parameter: str) -> bool:
    """Whether a parameter takes no part at the network's scale: CARN's multi-scale upsamplers
    of the other scales."""
    return bool(getattr(net, "multi_scale", False)) and parameter.startswith("upsample.up") \
        and not parameter.startswith(f"upsample.up{net.scale}.")


def shallow_overrides(name: str) -> list[str]:
    """:data:`SHALLOW` as command-line overrides (``model.depths=[2,2]``)."""
    return [f"model.{k}={str(v).replace(' ', '')}" for k, v in SHALLOW.get(name, {}).items()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip, with the reason, where CUDA is absent."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu): run on a GPU machine, see experiments/gpu/README.md")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


def data_dir() -> Path | None:
    """``$SR_DATA_DIR`` if it is a folder, else None."""
    d = os.environ.get("SR_DATA_DIR")
    return Path(d) if d and Path(d).is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and the processes it starts) gets its share of the
    cores instead of one thread per core each: oversubscribed, torch's threads wait on each
    other (on 2 cores, 2 workers of 2 threads ran the tiling and bicubic tests in 70 s, of 1
    thread in 40 s). A thread count the user set (OMP_NUM_THREADS) is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _lr_cache_in_tmp(tmp_path_factory) -> None:
    """Entry points run by tests (and their subprocesses) cache LR images in a temporary
    folder, not in the user's ~/.cache."""
    os.environ["SR_CACHE_DIR"] = str(tmp_path_factory.mktemp("sr_cache"))


@pytest.fixture
def wandb_installed() -> None:
    """For tests that log to W&B: skipped where wandb is not installed (the GPU check,
    experiments/gpu, carries no wandb; it is a dependency everywhere else)."""
    pytest.importorskip("wandb", reason="wandb is not installed here (experiments/gpu/README.md: not carried)")


@pytest.fixture(scope="session")
def sr_data() -> Path:
    """The benchmark data folder; tests using it skip when it is absent."""
    d = data_dir()
    if d is None:
        pytest.skip("SR_DATA_DIR is not set to the benchmark data folder (../shared/data); `make test` sets it")
    return d


class TouchOnUnpickle:
    """Unpickling this creates the file ``path``: a harmless stand-in for a malicious pickle
    (``torch.save(TouchOnUnpickle(marker), f)``; loading ``f`` with ``weights_only=False``
    creates ``marker``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def run_module(module: str, *args: str, cwd: Path | None = None, check: bool = True,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` the way a user does; returns the finished process."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


@dataclass
class CliRun:
    """What a command run by :func:`run_cli` left: its exit status and printed output."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(module: str, *args: str, check: bool = True) -> CliRun:
    """Run a console script's ``cli()`` (``python -m <module> args...``) in this process: the
    same argv checks, Hydra main, one-line errors and exit status, without paying a new
    interpreter's imports. Output is captured; the process's logging, argv, Hydra state and
    environment are restored afterwards. Keep :func:`run_module` for what needs a process of
    its own (DDP, launchers, the exit status as the shell sees it). ``check``: a non-zero
    status fails the test with the output."""
    import contextlib
    import importlib
    import io
    import logging

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    entry = importlib.import_module(module)
    root = logging.getLogger()
    saved_logging, saved_argv = (root.handlers[:], root.level), sys.argv
    saved_env = {k: os.environ.get(k) for k in ("WANDB_MODE", "HYDRA_FULL_ERROR")}
    os.environ.update(WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [module, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry.cli()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved_argv
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        root.handlers[:] = saved_logging[0]
        root.setLevel(saved_logging[1])
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    if check and code != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed ({code}):\n{out.getvalue()[-3000:]}\n"
                             f"{err.getvalue()[-5000:]}")
    return CliRun(code, out.getvalue(), err.getvalue())


ENTRY_POINTS = {"sr_lightning.train": "train", "sr_lightning.eval": "eval", "sr_lightning.upscale": "upscale",
                "sr_lightning.compare": "compare"}


def run_entry(module: str, *args: str) -> Any:
    """Run an entry point's function in this process, as its command line would: the config
    composed from ``args`` (numeric choices quoted), ``HydraConfig`` set, ``hydra.run.dir``
    as the output folder. Returns what the function returns. For runs whose files and
    metrics a test reads; exit codes, printed output and multirun stay with :func:`run_module`
    (each subprocess pays the imports, ~8 s on an AVX2 CPU)."""
    from sr_lightning.cli import composed
    from sr_lightning.compare import compare
    from sr_lightning.eval import evaluate
    from sr_lightning.train import train
    from sr_lightning.upscale import upscale

    task = {"train": train, "eval": evaluate, "upscale": upscale, "compare": compare}[ENTRY_POINTS[module]]
    with composed(ENTRY_POINTS[module], args) as cfg:
        return task(cfg)


def _crops(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Real photographic crops (from scikit-image's bundled images), not noise."""
    import skimage.data as skd

    sources = [skd.astronaut(), skd.coffee(), skd.chelsea(), skd.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        y = int(rng.integers(0, img.shape[0] - size[0]))
        x = int(rng.integers(0, img.shape[1] - size[1]))
        out.append(img[y: y + size[0], x: x + size[1]])
    return out


def write_folder(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, crop in enumerate(_crops(n, size, seed)):
        Image.fromarray(crop).save(folder / f"img{i:02d}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """Folders of small real crops: train (4 x 96x80), val (1 x 64x64), test (2 x 62x70, odd-ish sizes)."""
    root = tmp_path_factory.mktemp("tiny")
    return {"train": write_folder(root / "train", 4, (96, 80), 0), "val": write_folder(root / "val", 1, (64, 64), 1),
            "test": write_folder(root / "test", 2, (62, 70), 2)}


def tiny_args(tiny: dict[str, Path], run_dir: Path, *extra: str) -> list[str]:
    """Overrides for a few-second training run on ``tiny_data``."""
    return ["data=folder", f"data.train_dir={tiny['train']}", f"data.val_dir={tiny['val']}",
            f"+data.test_dirs.tiny={tiny['test']}", "data.patch_size=16", "data.batch_size=4",
            "data.steps_per_epoch=4", "trainer.max_steps=8", "trainer.check_val_every_n_epoch=1",
            "trainer.log_every_n_steps=1", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}", *extra]


@pytest.fixture(scope="session")
def trained_srcnn(tiny_data, tmp_path_factory) -> Path:
    """A run folder of a short real SRCNN training on tiny_data (Y channel, x2)."""
    run_dir = tmp_path_factory.mktemp("srcnn_run")
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=srcnn"))
    return run_dir
