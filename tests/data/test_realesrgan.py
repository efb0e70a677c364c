"""Real-ESRGAN's degradation: kernels against their closed forms, noise and JPEG strength
within the configured ranges, reproducible, the right shapes, evaluation sets untouched,
bad options named."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.special
import torch
from kornia.enhance import jpeg_codec_differentiable
from omegaconf import OmegaConf

from sr_lightning.config import CONF_DIR
from sr_lightning.data import SRDataModule
from sr_lightning.data import blur_kernels as bk
from sr_lightning.data.pairs import BENCHMARK_LR
from sr_lightning.data.realesrgan import KERNELS, RealESRGAN
from sr_lightning.errors import UserError
from tests.conftest import _crops

PAPER = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data/degradation/realesrgan.yaml").realesrgan)


def _options(**changes) -> RealESRGAN:
    """The paper's options with dotted-key changes (``{"stage1.noise_sigma": [5, 5]}``)."""
    cfg = copy.deepcopy(PAPER)
    for key, value in changes.items():
        *path, last = key.replace("__", ".").split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = value
    return RealESRGAN.from_config(cfg)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size) - (size - 1) / 2
    return np.meshgrid(r, r, indexing="ij")


def _closed_form(kind: str, sx: float, sy: float, theta: float, beta: float, size: int = 21) -> np.ndarray:
    """The kernel from its definition with the covariance matrix (numpy, float64), normalised."""
    y, x = _grid(size)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T)
    d = np.stack([x, y], -1)
    q = np.einsum("...i,ij,...j->...", d, inv, d)
    k = {"gaussian": np.exp(-q / 2), "generalized": np.exp(-(q ** beta) / 2), "plateau": 1 / (1 + q ** beta)}[kind]
    return k / k.sum()


@pytest.mark.parametrize("kind, beta", [("gaussian", 1.0), ("generalized", 0.6), ("generalized", 3.5),
                                        ("plateau", 1.0), ("plateau", 1.9)])
def test_kernels_match_their_closed_forms(kind, beta):
    sx, sy, theta = torch.tensor([2.5, 1.3]), torch.tensor([0.7, 1.3]), torch.tensor([0.6, 0.0])
    q = bk.quadratic_form(sx, sy, theta, 21)
    b = torch.full((2,), beta)
    shape = {"gaussian": lambda: bk.gaussian(q), "generalized": lambda: bk.generalized_gaussian(q, b),
             "plateau": lambda: bk.plateau(q, b)}[kind]()
    ours = bk.window(shape, torch.tensor([21, 21]))
    for i in range(2):
        expected = _closed_form(kind, float(sx[i]), float(sy[i]), float(theta[i]), beta)
        np.testing.assert_allclose(ours[i].double().numpy(), expected, atol=1e-6)
    assert torch.allclose(ours.sum((-2, -1)), torch.ones(2))
    assert torch.allclose(ours[1], ours[1].T) and torch.allclose(ours[1], ours[1].flip(0))  # isotropic


def test_sinc_kernel_is_the_circular_low_pass():
    omega = torch.tensor([math.pi / 3, 0.8 * math.pi])
    ours = bk.window(bk.sinc(omega, 21), torch.tensor([21, 13]))
    y, x = _grid(21)
    r = np.hypot(x, y)
    for i, (w, size) in enumerate(zip(omega.tolist(), (21, 13), strict=True)):
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(r > 0, w * scipy.special.j1(w * r) / (2 * np.pi * r), w ** 2 / (4 * np.pi))
        k[np.maximum(np.abs(x), np.abs(y)) > (size - 1) / 2] = 0
        np.testing.assert_allclose(ours[i].double().numpy(), k / k.sum(), atol=1e-6)


def test_drawn_kernels_sum_to_one_and_respect_their_sizes():
    d = _options(kernel_size=[7, 11])
    g = torch.Generator().manual_seed(0)
    k = d.kernels(d.stage1, 200, g, torch.device("cpu"))
    assert k.shape == (200, 11, 11)
    assert torch.allclose(k.sum((-2, -1)), torch.ones(200), atol=1e-5)
    outside = k.abs().clone()
    outside[:, 2:9, 2:9] = 0  # sizes 7, 9 or 11: some kernels reach the border, none beyond 11
    assert (outside.flatten(1).amax(1) > 0).any() and (k[:, 2:9, 2:9].flatten(1).amax(1) > 0).all()
    sharp = _options(**{"stage2.blur_prob": 0.0})
    assert torch.equal(sharp.kernels(sharp.stage2, 8, g, torch.device("cpu")), bk.delta(8, 21))


def _flat(value: float = 0.5, n: int = 8, size: int = 64) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_gaussian_noise_strength_is_within_the_range():
    d = _options(**{"stage1.gaussian_noise_prob": 1.0, "stage1.gray_noise_prob": 0.0, "stage1.noise_sigma": [10, 20]})
    g = torch.Generator().manual_seed(1)
    noise = d.noise(_flat(n=32), d.stage1, g) - 0.5
    std = noise.flatten(1).std(1) * 255
    assert (std > 10 * 0.95).all() and (std < 20 * 1.05).all() and std.max() - std.min() > 3
    assert not torch.equal(noise[:, 0], noise[:, 1])  # colour noise: a field per channel
    gray = _options(**{"stage1.gaussian_noise_prob": 1.0, "stage1.gray_noise_prob": 1.0})
    noise = gray.noise(_flat(), gray.stage1, g) - 0.5
    assert torch.equal(noise[:, 0], noise[:, 1]) and torch.equal(noise[:, 1], noise[:, 2])


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_poisson_noise_is_shot_noise_of_256_levels_times_the_scale(scale):
    d = _options(**{"stage1.gaussian_noise_prob": 0.0, "stage1.gray_noise_prob": 0.0,
                    "stage1.poisson_scale": [scale, scale]})
    noise = d.noise(_flat(0.25, n=4, size=128), d.stage1, torch.Generator().manual_seed(2)) - 0.25
    expected = scale * math.sqrt(0.25 / 256)  # Poisson(256 x) / 256 has variance x / 256
    assert noise.std().item() == pytest.approx(expected, rel=0.03)


def test_jpeg_quality_is_drawn_within_the_range():
    """Lower quality, larger error: every image's JPEG error lies between those of the
    range's ends (kornia's codec at qualities 20 and 90)."""
    x = torch.from_numpy(np.stack(_crops(6, (64, 64), seed=9))).permute(0, 3, 1, 2).float() / 255
    d = _options(**{"stage1.jpeg_quality": [20, 90]})
    out = d.jpeg(x, d.stage1, torch.Generator().manual_seed(3))
    err = (out - x).pow(2).flatten(1).mean(1)
    worst = (jpeg_codec_differentiable(x, torch.full((6,), 20.0)) - x).pow(2).flatten(1).mean(1)
    best = (jpeg_codec_differentiable(x, torch.full((6,), 90.0)) - x).pow(2).flatten(1).mean(1)
    assert (err <= worst * 1.001).all() and (err >= best * 0.999).all() and (worst > best * 1.5).all()
    assert (err < worst * 0.95).any() and (err > best * 1.05).any()  # drawn inside, not at the ends


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_levels_and_reproducibility(scale):
    d = _options()
    hr = torch.from_numpy(np.stack(_crops(4, (96, 96), seed=5))).permute(0, 3, 1, 2).float() / 255
    lr = d(hr, scale, torch.Generator().manual_seed(7))
    assert lr.shape == (4, 3, 96 // scale, 96 // scale)
    assert lr.min() >= 0 and lr.max() <= 1 and torch.equal(torch.round(lr * 255) / 255, lr)
    assert torch.equal(d(hr, scale, torch.Generator().manual_seed(7)), lr)
    assert not torch.equal(d(hr, scale, torch.Generator().manual_seed(8)), lr)


def _datamodule(tiny_data, **kw) -> SRDataModule:
    degradation = asdict(BENCHMARK_LR)  # data/degradation=realesrgan's bicubic protocol
    if kw.pop("realesrgan", True):
        degradation["realesrgan"] = copy.deepcopy(PAPER)
    kw = {"scale": 4, "channels": 3, "patch_size": 16, "batch_size": 4, **kw}
    return SRDataModule(train_dir=str(tiny_data["train"]), val_dir=str(tiny_data["val"]),
                        test_dirs={"tiny": str(tiny_data["test"])}, degradation=degradation, **kw)


def _fake_trainer(training: bool, steps: int) -> SimpleNamespace:
    progress = SimpleNamespace(total=SimpleNamespace(ready=steps))
    return SimpleNamespace(training=training, world_size=1, global_rank=0,
                           fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)))


def test_training_batches_are_degraded_by_their_index_and_evaluation_keeps_bicubic(tiny_data):
    real, plain = _datamodule(tiny_data, seed=0), _datamodule(tiny_data, seed=0, realesrgan=False)
    for dm in (real, plain):
        dm.setup("fit")
        dm.setup("test")
    batch = next(iter(real.train_dataloader()))
    real.trainer = _fake_trainer(True, 1)
    first = real.on_after_batch_transfer(dict(batch), 0)
    assert first["degraded"] and first["lr"].shape == batch["lr"].shape == (4, 3, 16, 16)
    assert not torch.equal(first["lr"], batch["lr"])
    assert torch.equal(real.on_after_batch_transfer(dict(batch), 0)["lr"], first["lr"])  # the same batch index
    real.trainer = _fake_trainer(True, 2)
    assert not torch.equal(real.on_after_batch_transfer(dict(batch), 0)["lr"], first["lr"])
    real.trainer = _fake_trainer(False, 2)  # validation / test: untouched
    assert real.on_after_batch_transfer(dict(batch), 0) == dict(batch)
    for a, b in zip(real.test_dataloader()[0], plain.test_dataloader()[0], strict=True):
        assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_training_under_realesrgan_makes_no_bicubic_lr(tiny_data, monkeypatch, storage):
    """The online degradation makes each training batch's LR on the device: the training images'
    bicubic LR is never made (only the validation set's, which keeps the bicubic protocol)."""
    import sr_lightning.data.datasets as datasets

    made = []
    real_make_lr = datasets.make_lr
    monkeypatch.setattr(datasets, "make_lr", lambda x, *a, **k: made.append(tuple(x.shape)) or real_make_lr(x, *a, **k))
    counts = []
    for online in (True, False):
        made.clear()
        dm = _datamodule(tiny_data, seed=0, storage=storage, cache_dir=None, realesrgan=online)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["lr"].shape == (4, 3, 16, 16) and batch["hr"].shape == (4, 3, 64, 64)
        counts.append(sum(shape != (3, 64, 64) for shape in made))  # the 64x64 image is the validation set's
    assert counts[0] == 0 and counts[1] > 0  # realesrgan: no training LR; bicubic training: its LR


def test_realesrgan_needs_rgb(tiny_data):
    with pytest.raises(UserError, match=r"realesrgan degrades RGB images but data\.channels=1: it needs RGB"):
        _datamodule(tiny_data, channels=1)


@pytest.mark.parametrize("change, message", [
    ({"stage1.sigma": []}, r"stage1\.sigma=\[\] must be a range \[low, high\]"),
    ({"stage2.noise_sigma": [25, 1]}, r"stage2\.noise_sigma=\[25\.0, 1\.0\] is inverted: write it \[low, high\]"),
    ({"stage1.jpeg_quality": [30, 120]}, r"stage1\.jpeg_quality=\[30\.0, 120\.0\] must lie within \[1\.0, 100\.0\]"),
    ({"stage2.blur_prob": 1.5}, r"stage2\.blur_prob=1\.5 is a probability: give a number in \[0, 1\]"),
    ({"final_sinc_prob": -0.1}, r"final_sinc_prob=-0\.1 is a probability"),
    ({"stage1.kernels": {"iso": 0.5, "box": 0.5}}, r"stage1\.kernels: unknown \['box'\]; known: " + ", ".join(KERNELS)),
    ({"stage1.kernels": {"iso": 0.5, "aniso": 0.4}}, r"stage1\.kernels probabilities sum to 0\.9, not 1"),
    ({"stage1.resize": {"up": 0.5, "sideways": 0.5}}, r"stage1\.resize: unknown \['sideways'\]; known: up, down, keep"),
    ({"kernel_size": [7, 20]}, r"kernel_size=\[7, 20\] must be odd integers"),
    ({"resize_modes": ["nearest"]}, r"resize_modes=\['nearest'\]: give a non-empty list of area, bilinear, bicubic"),
    ({"stage1.blur": 1.0}, r"stage1\.blur: Key 'blur' not in 'Stage' \(the options there: kernels, blur_prob"),
])
def test_bad_options_are_named(change, message):
    with pytest.raises(UserError, match=r"^data\.degradation\.realesrgan\." + message):
        _options(**change)


@pytest.mark.gpu
def test_training_batches_are_degraded_on_the_gpu_they_were_moved_to(tiny_data):
    """On CUDA the draws come from a CUDA generator: the batch stays there, 8-bit levels,
    the same batch index gives the same LR, another index another."""
    dm = _datamodule(tiny_data, seed=0)
    dm.setup("fit")
    batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in next(iter(dm.train_dataloader())).items()}
    dm.trainer = _fake_trainer(True, 1)
    lr = dm.on_after_batch_transfer(dict(batch), 0)["lr"]
    assert lr.device.type == "cuda" and lr.shape == (4, 3, 16, 16)
    assert lr.min() >= 0 and lr.max() <= 1 and torch.equal(torch.round(lr * 255) / 255, lr)
    assert torch.equal(dm.on_after_batch_transfer(dict(batch), 0)["lr"], lr)
    dm.trainer = _fake_trainer(True, 2)
    assert not torch.equal(dm.on_after_batch_transfer(dict(batch), 0)["lr"], lr)
