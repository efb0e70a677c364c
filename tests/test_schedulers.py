from __future__ import annotations

import math

import pytest
import torch

from sr_lightning.schedulers import warmup_cosine


def _lrs(steps: int, **kw) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, total_steps=steps, **kw)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine():
    lrs = _lrs(100, warmup_steps=10, min_factor=0.01)
    assert lrs[0] == pytest.approx(0.2) and lrs[9] == pytest.approx(2.0)  # linear warmup to the peak
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10], strict=True))
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:], strict=True))  # then it only decays
    assert lrs[55] == pytest.approx(2.0 * (0.01 + 0.99 * 0.5), rel=1e-6)  # half way: the mean
    assert lrs[-1] == pytest.approx(2.0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 89 / 90))), rel=1e-9)
    assert lrs[-1] < 0.021  # close to the floor of 0.01 x 2.0


def test_no_warmup_starts_at_the_peak():
    assert _lrs(10)[0] == pytest.approx(2.0)


def test_warmup_is_capped_at_a_tenth_of_the_run():
    lrs = _lrs(50, warmup_steps=200)
    assert lrs[4] == pytest.approx(2.0) and lrs[3] < 2.0  # 5 warmup steps, not 200
    assert _lrs(1, warmup_steps=200)[0] == pytest.approx(2.0)  # a one-step run has none


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps >= 1"):
        _lrs(0)
    with pytest.raises(ValueError, match="warmup_steps >= 0"):
        _lrs(5, warmup_steps=-1)
