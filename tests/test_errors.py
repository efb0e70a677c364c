"""Which errors the entry points print as one line, and which keep their traceback."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from sr_lightning.checkpoint import CheckpointError
from sr_lightning.cli import user_errors
from sr_lightning.data.io import ImageReadError
from sr_lightning.errors import UserError, WeightFormatError
from tests.conftest import run_cli


def _entry(error: BaseException):
    @user_errors
    def task(cfg):
        raise error

    return task


@pytest.mark.parametrize("error", [UserError("data.scale=1 is not supported: use an integer >= 2"),
                                   CheckpointError("ckpt_path: x"), ImageReadError("cannot read 'a.png'"),
                                   WeightFormatError("w.mat: no weights"), FileNotFoundError("no such folder")])
def test_bad_input_is_one_line_and_exit_2(error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _entry(error)(OmegaConf.create())
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {error}\n"


@pytest.mark.parametrize("error", [ValueError("shape mismatch inside torch"), TypeError("bad call"),
                                   RuntimeError("CUDA error"), KeyError("x")])
def test_a_genuine_bug_keeps_its_traceback(error, capsys):
    with pytest.raises(type(error)):
        _entry(error)(OmegaConf.create())
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here: trainer.accelerator=gpu is valid")
@pytest.mark.parametrize("module", ["sr_lightning.train", "sr_lightning.eval"])
def test_a_gpu_accelerator_without_cuda_is_one_line(module, tmp_path):
    proc = run_cli(module, "trainer.accelerator=gpu", "model=bicubic", "data.test_sets=[sample:test]",
                   f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: trainer.accelerator=gpu: torch {torch.__version__} (" in proc.stderr
    assert ") finds no CUDA GPU here; use trainer.accelerator=auto (the GPU when there is one) or cpu" in proc.stderr
