"""Zero-shot SR: pairs made from the image itself (data.internal), the paper's learning-rate
policy, and experiment=zssr from the command line (trains, writes the upscaled image)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.callbacks import ZSSRLearningRate
from sr_lightning.data.internal import InternalOptions, InternalPairs, load_internal_image
from sr_lightning.errors import UserError
from sr_lightning.ops import imresize
from sr_lightning.ops.self_ensemble import transform
from tests.conftest import _crops, run_cli, write_folder


def _image(h: int = 60, w: int = 76) -> torch.Tensor:
    return torch.from_numpy(_crops(1, (h, w), seed=6)[0] / 255.0).float().permute(2, 0, 1).contiguous()


def _pairs(**options) -> InternalPairs:
    return InternalPairs(_image(), "img", 2, InternalOptions(image="img.png", crop=32, **options), length=10, seed=3)


def test_a_pair_is_a_crop_and_its_matlab_bicubic_son():
    item = _pairs()[0]
    assert item["hr"].shape == (1, 3, 32, 32) and item["lr"].shape == (1, 3, 16, 16)
    assert torch.allclose(item["lr"], imresize(item["hr"], 0.5).clamp(0, 1), atol=1e-6)
    assert 0 <= float(item["hr"].min()) and float(item["hr"].max()) <= 1
    assert torch.equal(_pairs()[4]["hr"], _pairs()[4]["hr"])  # batch g depends on (seed, g) alone
    assert not torch.equal(_pairs()[4]["hr"], _pairs()[5]["hr"])


def _is_crop(hr: torch.Tensor, image: torch.Tensor) -> bool:
    c = hr.shape[-1]
    windows = image.unfold(1, c, 1).unfold(2, c, 1)  # (C, H-c+1, W-c+1, c, c)
    return bool(((windows - hr[:, None, None]).abs().amax(dim=(0, 3, 4)) == 0).any())


def test_the_three_kinds_of_augmentation():
    image = _image()
    as_is = _pairs(leave_as_is=1.0, no_interpolation=0.0)
    assert all(_is_crop(as_is[g]["hr"][0], image) for g in range(5))
    flipped = _pairs(leave_as_is=0.0, no_interpolation=1.0)
    kinds = set()
    for g in range(10):
        hr = flipped[g]["hr"][0]
        (k,) = [k for k in range(8) if _is_crop(hr, transform(image, k))][:1]
        kinds.add(k)
    assert len(kinds) > 2  # several of the 8 flips/rotations drawn
    warped = _pairs(leave_as_is=0.0, no_interpolation=0.0)
    hrs = [warped[g]["hr"][0] for g in range(5)]
    assert not any(_is_crop(hr, transform(image, k)) for hr in hrs for k in range(8))  # interpolated
    # a warp keeps the image's statistics (no black fill, no blow-up)
    assert all(abs(float(hr.mean()) - float(image.mean())) < 0.2 for hr in hrs)


def test_small_images_and_bad_options_are_refused(tmp_path):
    Image.fromarray(_crops(1, (12, 40), seed=1)[0]).save(tmp_path / "small.png")
    with pytest.raises(UserError, match=r"is 40x12 pixels: zero-shot SR at x2 needs at least 16 pixels a side"):
        load_internal_image(tmp_path / "small.png", 3, 2)
    for bad, message in (({"image": "x", "crop": 4}, "crop=4 must be >= 16"),
                         ({"image": "x", "leave_as_is": 1.5}, r"leave_as_is=1.5 must be a probability"),
                         ({"image": "x", "leave_as_is": 0.6, "no_interpolation": 0.6}, "must be <= 1"),
                         ({"image": "x", "min_scale": 0}, r"min_scale=0.0 must be in \(0, 1\]"),
                         ({"image": "x", "zoom": 2}, r"data.internal.zoom: Key 'zoom' not in 'InternalOptions'"),
                         ({"image": None}, "data.internal.image is not set")):
        with pytest.raises(UserError, match=message):
            InternalOptions.from_config(bad)


class _Policy:
    """ZSSRLearningRate driven by a given reconstruction-error sequence."""

    def __init__(self, errors, **kw):
        self.cb = ZSSRLearningRate(**kw)
        self.errors = iter(errors)
        self.cb.reconstruction_mse = lambda trainer, module: next(self.errors)
        param = torch.nn.Parameter(torch.zeros(1))
        self.trainer = SimpleNamespace(global_step=0, should_stop=False,
                                       optimizers=[torch.optim.Adam([param], lr=1e-3)])
        self.module = SimpleNamespace(log=lambda *a, **k: None)

    def run(self, steps: int) -> list[float]:
        lrs = []
        for _ in range(steps):
            self.trainer.global_step += 1
            self.cb.on_train_batch_end(self.trainer, self.module, None, None, 0)
            lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            if self.trainer.should_stop:
                break
        return lrs


def test_learning_rate_policy_divides_by_ten_when_the_error_stops_falling():
    falling = _Policy(1.0 / (1 + np.arange(100)), test_every=10, check_every=12, min_steps=40, fit_steps=60)
    assert set(falling.run(300)) == {1e-3}  # a clear downward slope: kept
    rng = np.random.default_rng(0)
    flat = _Policy(0.01 + 1e-4 * rng.standard_normal(100), test_every=10, check_every=12, min_steps=40, fit_steps=60)
    lrs = flat.run(300)
    first = lrs.index(1e-4)
    assert 40 < first <= 60 and lrs[first - 1] == 1e-3  # the first check after min_steps
    assert flat.trainer.should_stop and lrs[-1] == pytest.approx(1e-6)  # 1e-3 -> ... -> 1e-6 < 9e-6: stop
    with pytest.raises(UserError, match="fewer than 4 errors"):
        ZSSRLearningRate(test_every=50, fit_steps=100)


def test_experiment_zssr_trains_on_the_image_and_writes_it_upscaled(tmp_path):
    src = write_folder(tmp_path / "in", 1, (40, 44), seed=8) / "img00.png"
    out = tmp_path / "sr.png"
    proc = run_cli("sr_lightning.train", "experiment=zssr", f"input={src}", f"output={out}", "trainer.max_steps=6",
                   "data.internal.crop=32", "callbacks.zssr_lr.test_every=1", "callbacks.zssr_lr.fit_steps=4",
                   "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path / 'run'}")
    assert f"wrote {out}" in proc.stdout
    sr = np.asarray(Image.open(out))
    assert sr.shape == (80, 88, 3)
    lr = torch.from_numpy(np.asarray(Image.open(src))).permute(2, 0, 1)[None].float() / 255
    bicubic = np.round(imresize(lr, 2).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255)
    assert np.abs(sr.astype(float) - bicubic).mean() > 0.1  # the trained residual changed it
    small = write_folder(tmp_path / "small", 1, (12, 40), seed=1) / "img00.png"
    proc = run_cli("sr_lightning.train", "experiment=zssr", f"input={small}", f"hydra.run.dir={tmp_path / 'r2'}",
                   check=False)
    assert proc.returncode == 2 and "needs at least 16 pixels a side" in proc.stderr
