"""SRLitModule pieces that the entry-point tests do not isolate: the protocol options,
multi-scale steps, adjustable gradient clipping."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from sr_lightning.lit import SRLitModule
from sr_lightning.lit.evaluation import crop_pixels
from sr_lightning.metrics import psnr, quantize
from sr_lightning.nets import create_net

VDSR = {"name": "vdsr", "scale": 2, "in_channels": 1, "num_features": 8, "num_layers": 3}


def test_crop_border_options():
    assert crop_pixels(None, 3) == 3
    assert crop_pixels("scale", 3) == 3
    assert crop_pixels("scale+6", 3) == 9
    assert crop_pixels(0, 3) == 0
    for bad in ("scale*2", "border", -1, 2.5, True):
        with pytest.raises(ValueError, match="evaluation.crop_border"):
            crop_pixels(bad, 3)
    assert SRLitModule(net=VDSR, evaluation={"crop_border": "scale+6"}).crop_border == 8


def test_gray_images_score_on_their_own_values_or_as_rgb():
    """evaluation.gray: a grayscale HR read as RGB (equal channels) is compared on its own gray
    values (own: luma of the output) or as RGB (rgb: Y = 16 + 219 v of both)."""
    torch.manual_seed(0)
    hr = torch.rand(1, 1, 24, 24).expand(1, 3, 24, 24).clone()
    sr = (hr + 0.05 * torch.randn(1, 3, 24, 24)).clamp(0, 1)
    batch = {"lr": torch.rand(1, 3, 12, 12), "hr": hr, "name": ["bridge"], "gray": [True]}
    scores = {}
    for gray in ("own", "rgb"):
        module = SRLitModule(net={"name": "bicubic", "scale": 2, "in_channels": 3}, evaluation={"gray": gray})
        module.predict_pair = lambda lr, ensemble=False, quantized=True, sr=sr: (sr, sr)  # the output under test
        module._evaluate(batch, module.val_metrics)
        scores[gray] = module.val_metrics.compute()["psnr"]
    own = float(psnr(quantize(sr), hr, crop_border=2, gray=torch.tensor([True])))
    rgb = float(psnr(quantize(sr), hr, crop_border=2))
    assert scores["own"] == pytest.approx(own) and scores["rgb"] == pytest.approx(rgb) and own != pytest.approx(rgb)
    with pytest.raises(ValueError, match="evaluation.gray='luma' is not one of"):
        SRLitModule(net=VDSR, evaluation={"gray": "luma"})


def test_evaluation_options_are_checked():
    with pytest.raises(ValueError, match=r"evaluation\.shave: Key 'shave' not in 'Evaluation' \(the options there: "
                                         r"crop_border, y_channel"):
        SRLitModule(net=VDSR, evaluation={"shave": 2})
    with pytest.raises(ValueError, match="evaluation.bicubic_border='wrap'"):
        SRLitModule(net=VDSR, evaluation={"bicubic_border": "wrap"})
    with pytest.raises(ValueError, match="evaluation.quantize: Value 'maybe' is not a valid bool"):
        SRLitModule(net=VDSR, evaluation={"quantize": "maybe"})
    assert SRLitModule(net=VDSR, evaluation={"quantize": "no"}).quantize is False  # Hydra's bool words, as on a CLI


def test_at_scale_runs_scale_agnostic_nets_at_another_scale():
    net = create_net("vdsr", scale=2, in_channels=1, num_features=8, num_layers=3)
    x = torch.rand(1, 1, 10, 12)
    with net.at_scale(4):
        assert net(x).shape == (1, 1, 40, 48)
    assert net.scale == 2 and net(x).shape == (1, 1, 20, 24)
    unet = create_net("unet", scale=2, in_channels=1, num_features=8)
    with pytest.raises(ValueError, match=r"unet is built for x2 and cannot run at x3: .*drop data.train_scales"):
        with unet.at_scale(3):
            pass


def test_training_step_uses_the_batch_scale():
    module = SRLitModule(net=VDSR, loss={"_target_": "torch.nn.L1Loss"})
    batch = {"lr": torch.rand(2, 1, 8, 8), "hr": torch.rand(2, 1, 24, 24), "scale": 3}
    module.log = lambda *a, **k: None  # no trainer attached
    assert torch.isfinite(module.training_step(batch, 0))


def test_adjustable_clip_bounds_gradients_by_theta_over_lr():
    module = SRLitModule(net=VDSR, adjustable_clip=0.01)
    module.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    for p in module.parameters():
        p.grad = torch.full_like(p, 5.0)
    module.configure_gradient_clipping(opt)
    assert max(p.grad.abs().max().item() for p in module.parameters()) == pytest.approx(0.1)  # 0.01 / 0.1
    opt.param_groups[0]["lr"] = 0.001  # lr / 100 -> bound x 100
    for p in module.parameters():
        p.grad = torch.full_like(p, 5.0)
    module.configure_gradient_clipping(opt)
    assert max(p.grad.abs().max().item() for p in module.parameters()) == pytest.approx(5.0)  # 10 > 5: untouched
    with pytest.raises(ValueError, match="set trainer.gradient_clip_val=null"):
        module.configure_gradient_clipping(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    with pytest.raises(ValueError, match="adjustable_clip=-1 must be > 0"):
        SRLitModule(net=VDSR, adjustable_clip=-1)
