"""Adversarial training: the discriminator, the perceptual loss (weights from a file, never
downloaded), and SRGANModule sharing SRLitModule's code instead of copying it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sr_lightning.gan import PerceptualLoss, SRGANDiscriminator, UNetDiscriminatorSN
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


class _Logits(torch.nn.Module):
    """A stand-in discriminator: fixed logits for an image batch, by the batch's first value."""

    def __init__(self, by_value: dict[int, torch.Tensor]) -> None:
        super().__init__()
        self.by_value = by_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.by_value[int(x.flatten()[0])]


def test_relativistic_average_losses_are_the_papers():
    """ESRGAN's D_Ra(a, b) = sigmoid(C(a) - mean C(b)); each loss is the mean of its real and
    fake terms (the authors' code), computed here from the formula, not through BCE."""
    module = SRGANModule(net={"name": "espcn", "scale": 2, "in_channels": 1}, gan_type="relativistic_average",
                         discriminator={"_target_": "sr_lightning.gan.SRGANDiscriminator", "in_channels": 1,
                                        "num_features": 8})
    real, fake = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([-1.0, 1.0, 0.5])
    d_ra = lambda a, b: torch.sigmoid(a - b.mean())  # noqa: E731
    expected_d = (-torch.log(d_ra(real, fake)).mean() - torch.log(1 - d_ra(fake, real)).mean()) / 2
    assert float(module._discriminator_loss(real, fake)) == pytest.approx(float(expected_d), rel=1e-6)
    module.discriminator = _Logits({1: real, 2: fake})
    hr, sr = torch.ones(3, 1, 8, 8), torch.full((3, 1, 8, 8), 2.0)
    expected_g = (-torch.log(1 - d_ra(real, fake)).mean() - torch.log(d_ra(fake, real)).mean()) / 2
    assert float(module._adversarial_loss(sr, hr)) == pytest.approx(float(expected_g), rel=1e-6)
    with pytest.raises(ValueError, match="module.gan_type='wgan' is not one of"):
        SRGANModule(net={"name": "espcn", "scale": 2, "in_channels": 1}, gan_type="wgan",
                    discriminator={"_target_": "sr_lightning.gan.SRGANDiscriminator"})


def test_perceptual_distance_before_the_activation_in_l1():
    torch.manual_seed(0)
    loss = PerceptualLoss(layer="conv2_2", criterion="l1")
    assert isinstance(loss.features[-1], torch.nn.Conv2d)  # ESRGAN: features before the ReLU
    sr, hr = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert float(loss(sr, hr)) == pytest.approx(float((loss._embed(sr)[0] - loss._embed(hr)[0]).abs().mean()))
    with pytest.raises(ValueError, match="perceptual.criterion='l2' is not one of"):
        PerceptualLoss(criterion="l2")


def test_perceptual_weighted_sum_over_layers():
    """Real-ESRGAN's {layer: weight} form is the weighted sum of the single-layer losses
    (with the same VGG weights)."""
    torch.manual_seed(0)
    both = PerceptualLoss(layer={"conv1_2": 0.1, "conv3_4": 1.0}, criterion="l1")
    sr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    total = 0.0
    for layer, weight in (("conv1_2", 0.1), ("conv3_4", 1.0)):
        single = PerceptualLoss(layer=layer, criterion="l1")
        single.features.load_state_dict({k: v for k, v in both.features.state_dict().items()
                                         if k in single.features.state_dict()})
        total += weight * float(single(sr, hr))
    assert float(both(sr, hr)) == pytest.approx(total, rel=1e-5)
    with pytest.raises(ValueError, match="perceptual.layer='conv9_1' is not a VGG19 layer"):
        PerceptualLoss(layer={"conv1_2": 0.1, "conv9_1": 1.0})
    with pytest.raises(ValueError, match=r"perceptual.layer.conv1_2=-1 must be a weight >= 0"):
        PerceptualLoss(layer={"conv1_2": -1})


def test_unet_discriminator_sn_is_the_authors_layout():
    """Per-pixel logits at the input size; the authors' parameter names and shapes
    (spectral norm on conv1-conv8); 4,376,897 parameters at 64 features."""
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(in_channels=3, num_features=64)
    assert d(torch.rand(2, 3, 48, 64)).shape == (2, 1, 48, 64)
    assert sum(p.numel() for p in d.parameters()) == 4_376_897
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    assert shapes["conv0.weight"] == (64, 3, 3, 3) and shapes["conv9.weight"] == (1, 64, 3, 3)
    assert shapes["conv3.weight_orig"] == (512, 256, 4, 4) and shapes["conv4.weight_orig"] == (256, 512, 3, 3)
    assert {k.split(".")[0] for k in shapes if k.endswith("weight_orig")} == {f"conv{i}" for i in range(1, 9)}
    assert not any(k.endswith("bias") for k in shapes if k.split(".")[0] not in ("conv0", "conv9"))
    for _ in range(30):  # power iterations (train mode): conv1's normalised weight has spectral norm 1
        d(torch.rand(1, 3, 16, 16))
    assert torch.linalg.matrix_norm(d.conv1.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="multiples of 8, not 20x24: choose data.patch_size"):
        d(torch.rand(1, 3, 20, 24))


@pytest.mark.slow
def test_esrgan_x4_runs_and_lowers_the_generator_loss(tmp_path):
    """experiment=esrgan_x4 (RRDBNet, relativistic average GAN, VGG features before the
    activation in L1, L1 content) at a small width, on two fixed batches (debug=overfit): the
    generator's reconstruction terms (content, perceptual) fall; the adversarial terms are a
    game between the two networks and are only required to stay finite."""
    small = ["model.num_blocks=1", "model.num_features=16", "model.growth=8", "data.batch_size=4",
             "data.patch_size=16", "trainer.log_every_n_steps=1", "callbacks.progress_bar=null",
             "module.discriminator.num_features=8", "module.perceptual.weights=null",
             "module.perceptual.layer=conv2_2", "test=false", "optimizer.lr=1e-3"]
    run = tmp_path / "esrgan"
    _, objects = run_entry("sr_lightning.train", "experiment=esrgan_x4", "debug=overfit", "trainer.max_steps=100",
                           *small, f"hydra.run.dir={run}")
    module = objects["module"]
    assert type(module) is SRGANModule and module.hparams.gan_type == "relativistic_average"
    assert module.net.name == "rrdbnet" and module.perceptual.distance is torch.nn.functional.l1_loss
    lines = (run / "csv/metrics.csv").read_text().splitlines()

    def series(name: str) -> list[float]:
        col = lines[0].split(",").index(name)
        return [float(r.split(",")[col]) for r in lines[1:] if r.split(",")[col]]

    start_end = {k: (sum(v[:4]) / 4, sum(v[-4:]) / 4) for k, v in
                 ((k, series(f"train/{k}")) for k in ("content", "perceptual"))}
    assert len(series("train/loss")) == 50
    assert start_end["content"][1] < 0.6 * start_end["content"][0], start_end
    assert start_end["perceptual"][1] < 0.7 * start_end["perceptual"][0], start_end
    assert all(math.isfinite(v) for k in ("loss_d", "adversarial") for v in series(f"train/{k}"))


def test_esrgan_without_vgg_weights_says_which_key_to_set(tmp_path):
    with pytest.raises(ValueError, match=r"module.perceptual.weights must be given .*add module.perceptual.weights="):
        run_entry("sr_lightning.train", "experiment=esrgan_x4", f"hydra.run.dir={tmp_path}")


def test_esrgan_x4_trains_a_step_through_the_entry_point(tmp_path):
    """The fast twin of the slow test above: two batches of experiment=esrgan_x4 at a small width."""
    _, objects = run_entry("sr_lightning.train", "experiment=esrgan_x4", "trainer.max_steps=4", "model.num_blocks=1",
                           "model.num_features=8", "model.growth=8", "data.patch_size=8", "data.batch_size=2",
                           "module.discriminator.num_features=8", "module.perceptual.weights=null",
                           "module.perceptual.layer=conv1_2", "callbacks.progress_bar=null", "test=false",
                           f"hydra.run.dir={tmp_path}")
    assert objects["trainer"].global_step == 4 and objects["module"].hparams.gan_type == "relativistic_average"
    assert math.isfinite(float(objects["trainer"].callback_metrics["train/loss"]))


def test_realesrgan_x4_trains_from_a_psnr_checkpoint(tmp_path):
    """Stage 1 (RRDBNet, L1, data/degradation=realesrgan) then experiment=realesrgan_x4 from
    its checkpoint, both at a small width: U-Net SN discriminator, the five weighted VGG
    layers, vanilla GAN at 0.1, EMA of the weights, degraded training batches."""
    small = ["model.num_blocks=1", "model.num_features=8", "model.growth=8", "data.patch_size=8",
             "data.batch_size=2", "callbacks.progress_bar=null", "test=false"]
    psnr_run = tmp_path / "psnr"
    run_entry("sr_lightning.train", "model=rrdbnet", "data.scale=4", "data.channels=3", "data/degradation=realesrgan",
              "trainer.max_steps=2", *small, f"hydra.run.dir={psnr_run}")
    _, objects = run_entry("sr_lightning.train", "experiment=realesrgan_x4",
                           f"init_from={psnr_run}/checkpoints/last.ckpt", "trainer.max_steps=4", *small,
                           "module.discriminator.num_features=8", "module.perceptual.weights=null",
                           f"hydra.run.dir={tmp_path / 'gan'}")
    module, trainer = objects["module"], objects["trainer"]
    assert type(module.discriminator) is UNetDiscriminatorSN and module.hparams.gan_type == "standard"
    assert module.hparams.adversarial_weight == 0.1 and [w for _, w in module.perceptual.taps] == [0.1, 0.1, 1, 1, 1]
    assert objects["datamodule"].online is not None and any(type(c).__name__ == "EMA" for c in trainer.callbacks)
    assert trainer.global_step == 4 and math.isfinite(float(trainer.callback_metrics["train/loss"]))
