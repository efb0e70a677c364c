"""Device placement: everything the training and evaluation steps run works on the device
its inputs are on.

Without a GPU, PyTorch's ``meta`` device stands in for one: a tensor made on the CPU inside
a forward pass (a constant, a mask, a filter) meets the ``meta`` input and fails with
"Expected all tensors to be on the same device", as it would on CUDA. The tests marked
``gpu`` run on CUDA itself (skipped without it) and compare its numbers with the CPU's.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from sr_lightning.gan.discriminator import SRGANDiscriminator, UNetDiscriminatorSN
from sr_lightning.inference import tiled_forward
from sr_lightning.lit import SRLitModule
from sr_lightning.losses import CharbonnierLoss
from sr_lightning.metrics import gmsd, psnr, ssim
from sr_lightning.nets import NETS, create_net
from sr_lightning.ops.precision import exact_float32
from sr_lightning.ops.resize import imresize
from sr_lightning.ops.self_ensemble import self_ensemble
from tests.conftest import SHALLOW, idle_at_its_scale, run_entry, tiny_args

META = torch.device("meta")


def _net(name: str, scale: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return create_net(name, scale=scale, **SHALLOW.get(name, {}))


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_network_trains_on_the_device_of_its_input(name):
    """Forward and backward with the network and the batch on a non-CPU device."""
    net = _net(name).to(META)
    lr = torch.empty(2, net.in_channels, 24, 24, device=META)
    sr = net(lr)
    assert sr.device == META and tuple(sr.shape) == (2, net.in_channels, 48, 48)
    if any(p.requires_grad for p in net.parameters()):
        nn.functional.l1_loss(sr, torch.empty_like(sr)).backward()
        assert all(p.grad is not None and p.grad.device == META for n, p in net.named_parameters()
                   if p.requires_grad and not idle_at_its_scale(net, n))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.uint8])
def test_imresize_runs_on_the_device_of_its_input(dtype):
    x = torch.empty(2, 3, 17, 23, dtype=dtype, device=META)
    for scale in (0.5, 1 / 3, 2):
        y = imresize(x, scale)
        assert y.device == META and y.dtype == dtype


def test_metrics_losses_and_discriminators_run_on_the_device_of_their_input():
    sr, hr = (torch.empty(2, 3, 40, 40, dtype=torch.float64, device=META) for _ in range(2))
    gray = torch.zeros(2, dtype=torch.bool, device=META)
    for metric in (psnr, ssim, gmsd):
        assert metric(sr, hr, crop_border=2, gray=gray).device == META
    assert CharbonnierLoss()(sr.float(), hr.float()).device == META
    image = torch.empty(2, 3, 96, 96, device=META)
    for disc in (SRGANDiscriminator(), UNetDiscriminatorSN()):
        assert disc.to(META)(image).device == META


def test_evaluation_tiling_and_self_ensemble_run_on_the_device_of_their_input():
    module = SRLitModule(net={"name": "edsr", "scale": 2, "num_blocks": 1,
                              "num_features": 8}).to(META)
    lr = torch.empty(2, 3, 20, 28, device=META)
    sr, bicubic = module.predict_pair(lr, ensemble=True)
    assert sr.device == bicubic.device == META and tuple(sr.shape) == (2, 3, 40, 56)
    assert tiled_forward(module, lr, 2, tile=8, overlap=2).device == META
    assert self_ensemble(module, lr).device == META


# -- on CUDA itself --------------------------------------------------------------------------
CUDA = torch.device("cuda")


@pytest.mark.gpu
def test_imresize_and_metrics_on_cuda_equal_the_cpu_in_float64():
    """The MATLAB bicubic and PSNR/SSIM stay float64 on the GPU: the CPU's numbers to 1e-10."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 96, 80, generator=g, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 0.25, 3):
        assert torch.allclose(imresize(hr.to(CUDA), scale).cpu(), imresize(hr, scale), atol=1e-12, rtol=0)
    u8 = (hr * 255).round().to(torch.uint8)
    assert torch.equal(imresize(u8.to(CUDA), 0.5).cpu(), imresize(u8, 0.5))
    sr = (hr + 0.02 * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for metric in (psnr, ssim, gmsd):
        on_gpu = metric(sr.to(CUDA), hr.to(CUDA), crop_border=2).cpu()
        assert torch.allclose(on_gpu, metric(sr, hr, crop_border=2), atol=1e-10, rtol=0), metric.__name__


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(NETS))
def test_every_network_on_cuda_gives_the_cpu_output(name):
    """fp32 without TF32 (exact_float32): the CPU's output to float rounding; channels_last too."""
    net = _net(name).eval()
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(2, net.in_channels, 24, 24, generator=g)
    with torch.no_grad(), exact_float32(CUDA):
        expected = net(lr)
        net = net.to(CUDA)
        got = net(lr.to(CUDA)).cpu()
        got_cl = net.to(memory_format=torch.channels_last)(lr.to(CUDA).contiguous(
            memory_format=torch.channels_last)).cpu()
    scale = expected.abs().max().item() + 1e-6
    assert (got - expected).abs().max().item() / scale < 1e-4
    assert (got_cl - expected).abs().max().item() / scale < 1e-4


@pytest.mark.gpu
def test_training_on_cuda_runs_in_bf16_and_evaluates_like_the_cpu(tiny_data, tmp_path, caplog):
    """A run on the GPU with the defaults (precision auto: bf16-mixed from compute capability
    8.0), and with compile=true; their bicubic baseline is the CPU evaluation's to 1e-9 dB,
    and the first run's test PSNR the CPU's for its checkpoint to 0.01 dB."""
    caplog.set_level("INFO")
    common = ["model=edsr", "model.num_blocks=2", "model.num_features=16", "trainer.max_steps=8"]
    for name, extra in (("gpu", []), ("gpu_compiled", ["compile=true"])):
        run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / name, *common, "trainer.accelerator=gpu",
                                                    *extra))
    assert "precision bf16-mixed" in caplog.text
    cpu, _ = run_entry("sr_lightning.eval", f"ckpt_path={tmp_path / 'gpu/checkpoints/last.ckpt'}", "data=folder",
                    "data.train_dir=null", f"data.test_sets=[{tiny_data['test']}]", "trainer.accelerator=cpu",
                    f"hydra.run.dir={tmp_path / 'cpu_eval'}")
    for name in ("gpu", "gpu_compiled"):
        on_gpu = json.loads((tmp_path / name / "metrics.json").read_text())["tiny"]
        assert on_gpu["psnr_bicubic"] == pytest.approx(cpu["test"]["psnr_bicubic"], abs=1e-9)
        assert 15 < on_gpu["psnr"] < 60
    # the same weights tested on the GPU (exact float32) and on the CPU: uint8 rounding apart, equal
    gpu_test = json.loads((tmp_path / "gpu" / "metrics.json").read_text())["tiny"]
    assert gpu_test["psnr"] == pytest.approx(cpu["test"]["psnr"], abs=0.01)


@pytest.mark.gpu
def test_bicubic_on_cuda_gives_the_published_rows(sr_data, tmp_path):
    """The float64 evaluation on the GPU: the published bicubic rows to 0.01 dB, as on the CPU."""
    m, _ = run_entry("sr_lightning.eval", "model=bicubic", "data.test_sets=[Set5,Set14,B100]",
                  "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path}")
    for name, r in m.items():
        assert r["psnr"] == pytest.approx(r["published_psnr"], abs=0.01), name
        assert r["ssim"] == pytest.approx(r["published_ssim"], abs=0.001), name
