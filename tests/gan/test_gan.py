"""Adversarial training: the discriminator, the perceptual loss (weights from a file, never
downloaded), and SRGANModule sharing SRLitModule's code instead of copying it."""

from __future__ import annotations

import json

import pytest
import torch

from sr_lightning.gan import PerceptualLoss, SRGANDiscriminator
from sr_lightning.lit import SRGANModule, SRLitModule
from tests.conftest import TouchOnUnpickle, run_entry


@pytest.mark.parametrize("size", [24, 96, 50])
def test_discriminator_takes_any_patch_size(size):
    d = SRGANDiscriminator(in_channels=3, num_features=8)
    assert d(torch.rand(2, 3, size, size)).shape == (2,)


def test_perceptual_loss_reads_its_weights_from_a_file(tmp_path):
    torch.manual_seed(0)
    random_a, random_b = PerceptualLoss(layer="relu2_2"), PerceptualLoss(layer="relu2_2")
    sr, hr = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert float(random_a(sr, hr)) != float(random_b(sr, hr))  # random init differs
    # A torchvision-style state dict ("features.<i>.weight"), saved as a plain file.
    torch.save({f"features.{k}": v for k, v in random_a.features.state_dict().items()}, tmp_path / "vgg.pth")
    loaded = PerceptualLoss(layer="relu2_2", weights=str(tmp_path / "vgg.pth"))
    assert float(loaded(sr, hr)) == pytest.approx(float(random_a(sr, hr)))
    assert float(loaded(hr, hr)) == 0.0
    assert all(not p.requires_grad for p in loaded.parameters())
    y = torch.rand(1, 1, 32, 32)  # a Y network's output works too
    assert float(loaded(y, y)) == 0.0
    with pytest.raises(ValueError, match="perceptual.layer='relu9_9' is not a VGG19 layer"):
        PerceptualLoss(layer="relu9_9")
    with pytest.raises(FileNotFoundError, match="perceptual.weights='.*none.pth' does not exist"):
        PerceptualLoss(weights=str(tmp_path / "none.pth"))
    torch.save({"features.0.weight": TouchOnUnpickle(tmp_path / "marker")}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="pickled.pth' is not a readable checkpoint"):
        PerceptualLoss(weights=str(tmp_path / "pickled.pth"))
    assert not (tmp_path / "marker").exists()
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not hold VGG19 features"):
        PerceptualLoss(layer="relu1_1", weights=str(tmp_path / "other.pth"))


def test_gan_module_shares_the_evaluation_code():
    """Only the training step and optimizers are its own: data, metrics, logging are SRLitModule's."""
    own = set(vars(SRGANModule))
    shared = {"validation_step", "test_step", "on_validation_epoch_end", "on_test_epoch_end", "on_test_start",
              "predict_pair", "_evaluate", "forward", "on_save_checkpoint"}
    assert not own & shared
    assert issubclass(SRGANModule, SRLitModule)


def test_srgan_x4_runs_end_to_end_and_its_generator_evaluates(tmp_path):
    """experiment=srgan_x4 on the default (sample) data, starting from a PSNR-trained SRResNet."""
    small = ["model.num_blocks=2", "model.num_features=16", "data.batch_size=2", "data.steps_per_epoch=3",
             "trainer.check_val_every_n_epoch=1", "trainer.log_every_n_steps=1", "callbacks.progress_bar=null"]
    psnr_run = tmp_path / "psnr"
    run_entry("sr_lightning.train", "model=srresnet", "data.scale=4", "data.channels=3",
              "data/degradation=benchmark_lr", "trainer.max_steps=2", "test=false", *small,
              f"hydra.run.dir={psnr_run}")
    gan_run = tmp_path / "gan"
    run_entry("sr_lightning.train", "experiment=srgan_x4", f"init_from={psnr_run / 'checkpoints/last.ckpt'}",
              "trainer.max_steps=6", "module.discriminator.num_features=8", *small, f"hydra.run.dir={gan_run}")
    rows = (gan_run / "csv/metrics.csv").read_text()
    for key in ("train/loss_d", "train/adversarial", "train/content", "val/gmsd", "val/psnr"):
        assert key in rows.splitlines()[0], key
    m = json.loads((gan_run / "metrics.json").read_text())["sample"]
    assert m["num_images"] == 2 and 0 <= m["gmsd"] < 1
    ckpt = torch.load(gan_run / "checkpoints/last.ckpt", weights_only=True)
    assert any(k.startswith("discriminator.") for k in ckpt["state_dict"])
    # The generator of a GAN checkpoint evaluates like any network.
    run_entry("sr_lightning.eval", f"ckpt_path={gan_run / 'checkpoints/last.ckpt'}",
              f"hydra.run.dir={tmp_path / 'ev'}")
    ev = json.loads((tmp_path / "ev/metrics.json").read_text())["sample"]
    assert ev["psnr"] == pytest.approx(m["psnr"], abs=1e-4)
