"""EMA of the weights (callbacks.ema): checkpoints and evaluation use the average, a resumed
run goes on exactly, bad options are named."""

from __future__ import annotations

import pytest
import torch

from sr_lightning.callbacks import EMA
from sr_lightning.errors import UserError
from tests.conftest import run_entry, tiny_args

EMA_ON = "+callbacks.ema._target_=sr_lightning.callbacks.EMA"


@pytest.mark.parametrize("option, value", [("decay", 1.0), ("decay", 0.0), ("decay", -0.5), ("update_every", 0),
                                           ("start_step", -1), ("update_every", 1.5)])
def test_bad_options_are_named(option, value):
    with pytest.raises(UserError, match=rf"callbacks\.ema\.{option}={value} must be"):
        EMA(**{option: value})


def _fit(tiny_data, run_dir, *extra):
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=srcnn", "scheduler=none", "test=false",
                                               EMA_ON, *extra))
    return torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_hold_the_average_and_resume_exactly(tiny_data, tmp_path):
    """8 steps in one run == 4 steps (a checkpoint, then the process ends) + resume to 8: the
    same weights and the same average; the checkpoint's state_dict is the average."""
    whole = _fit(tiny_data, tmp_path / "whole", "trainer.max_steps=8", "+callbacks.ema.decay=0.5")
    part = _fit(tiny_data, tmp_path / "part", "trainer.max_steps=4", "+callbacks.ema.decay=0.5")
    resumed = _fit(tiny_data, tmp_path / "resumed", "trainer.max_steps=8", "+callbacks.ema.decay=0.5",
                   f"ckpt_path={tmp_path / 'part/checkpoints/last.ckpt'}")
    assert not _close(whole["state_dict"], whole["current_model_state"])  # the average is not the weights
    assert _close(resumed["current_model_state"], whole["current_model_state"])
    assert _close(resumed["state_dict"], whole["state_dict"])
    assert not _close(part["state_dict"], whole["state_dict"])


def test_the_average_is_the_ema_of_the_weights(tiny_data, tmp_path):
    """decay 0.5 from step 2: the average after step 3 is 0.5 * (weights after step 2) + 0.5 *
    (weights after step 3), and before step 2 it is the weights themselves."""
    run = {}
    for steps in (2, 3):
        run[steps] = _fit(tiny_data, tmp_path / f"s{steps}", f"trainer.max_steps={steps}", "+callbacks.ema.decay=0.5",
                          "+callbacks.ema.start_step=2", "+callbacks.ema.warmup=false",
                          "data.steps_per_epoch=1")
    assert _close(run[2]["state_dict"], run[2]["current_model_state"])
    for key, average in run[3]["state_dict"].items():
        expected = 0.5 * run[2]["current_model_state"][key] + 0.5 * run[3]["current_model_state"][key]
        torch.testing.assert_close(average, expected)
