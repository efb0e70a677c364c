"""budget_minutes: the steps that fit in a time budget, measured on this machine before training."""

from __future__ import annotations

import pytest
import torch

from sr_lightning.budget import STEP_SHARE, check_budget, plan, steps_for_budget
from sr_lightning.train import check_max_time
from tests.conftest import run_cli, run_entry, tiny_args


def test_steps_for_budget():
    assert steps_for_budget(6, 0.1, 3000) == 3000  # the cap
    assert steps_for_budget(6, 1.0, 3000) == int(360 * STEP_SHARE)
    assert steps_for_budget(0.001, 5.0, 3000) == 1
    steps, line = plan(6, 1.0, 3000, "32-true")
    assert steps == int(360 * STEP_SHARE)
    assert line.startswith(f"budget: 6 min -> {steps} steps at 1.000 s/step measured on this machine (")
    assert line.endswith(f"32-true); pin them with trainer.max_steps={steps}")
    assert "(the cap, trainer.max_steps)" in plan(6, 0.01, 3000, "bf16-mixed")[1]


@pytest.mark.parametrize("bad", ["six", 0, -2])
def test_a_bad_budget_names_the_option(bad):
    with pytest.raises(ValueError, match=f"budget_minutes={bad!r}" if isinstance(bad, str) else "must be > 0"):
        check_budget(bad)


@pytest.mark.parametrize(("good", "seconds"), [(None, None), ("00:00:15:00", 900), ("1:02:03:04", 93784),
                                               ({"minutes": 10}, 600), ({"hours": 1, "seconds": 30}, 3630)])
def test_max_time_forms_lightning_takes(good, seconds):
    assert check_max_time(good) == seconds  # Lightning's own Timer parses it


@pytest.mark.parametrize("bad", ["15min", "00:15:00", {"mins": 10}, {}, 15])
def test_max_time_in_another_form_says_the_accepted_ones(bad):
    with pytest.raises(ValueError, match=r"is not a form Lightning takes: use 'DD:HH:MM:SS'"):
        check_max_time(bad)


def test_a_budget_sets_the_steps_and_the_schedule(tiny_data, tmp_path, caplog):
    """A tiny budget on tiny data: the steps that fit are trained, the cosine schedule ends at
    them, and the run records them; trainer.max_steps on the command line pins the steps."""
    caplog.set_level("INFO")
    args = [a for a in tiny_args(tiny_data, tmp_path / "b", "model=srcnn", "budget_minutes=0.002", "test=false")
            if not a.startswith("trainer.max_steps=")]  # the cap stays the config's (3000)
    _, objects = run_entry("sr_lightning.train", *args)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("budget: 0.002 min -> "))
    steps = int(line.split(" -> ")[1].split()[0])
    assert 1 <= steps < 3000 and objects["trainer"].global_step == steps
    ckpt = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["scheduler"]["total_steps"] == steps
    proc = run_cli("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "p", "model=srcnn", "budget_minutes=0.05",
                                                     "trainer.max_steps=3", "test=false"))
    assert "trainer.max_steps=3 given, so no calibration" in proc.stdout + proc.stderr
    assert torch.load(tmp_path / "p/checkpoints/last.ckpt", weights_only=True)["global_step"] == 3
