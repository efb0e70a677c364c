"""Local attribution maps: completeness of the path integral, locality (a network that sees
only its own pixel), translation, the diffusion index, the explain command, the callback."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sr_lightning.errors import UserError
from sr_lightning.lam import Window, blur_path, diffusion_index, gini, gradient_detector, local_attribution
from sr_lightning.nets import create_net
from tests.conftest import _crops, run_cli, tiny_args, write_folder


def _image(h: int, w: int, seed: int = 4) -> torch.Tensor:
    """A real photographic crop, (1, 3, h, w) in [0, 1]."""
    return torch.from_numpy(_crops(1, (h, w), seed=seed)[0] / 255.0).float().permute(2, 0, 1)[None]


def _espcn() -> nn.Module:
    torch.manual_seed(0)
    return create_net("espcn", scale=2, in_channels=3).eval()


def test_attributions_sum_to_the_detector_change_and_the_error_falls_with_steps():
    net, lr, window = _espcn(), _image(32, 40), Window(20, 30, 16)
    errors = []
    for steps in (4, 16, 64):
        a = local_attribution(net, lr, window, 2, steps=steps)
        with torch.no_grad():  # the change along the path, computed apart
            path = blur_path(lr, 1.2, steps)
            change = float(gradient_detector(net(path[-1:]), window) - gradient_detector(net(path[:1]), window))
        assert a.detector_change == pytest.approx(change, rel=1e-5)
        errors.append(abs(float(a.map.sum()) - change))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3 * abs(change)


def test_a_network_that_sees_only_its_own_pixel_attributes_only_there():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 12, 1), nn.PixelShuffle(2))  # each output pixel from one LR pixel
    lr, window = _image(32, 32), Window(8, 12, 8)
    a = local_attribution(net, lr, window, 2, steps=8)
    m = a.magnitude
    # the detector's forward differences reach one output pixel past the window
    rows, cols = slice(8 // 2, (8 + 8) // 2 + 1), slice(12 // 2, (12 + 8) // 2 + 1)
    outside = m.clone()
    outside[rows, cols] = 0
    assert float(outside.abs().max()) == 0.0 and float(m[rows, cols].sum()) > 0
    assert a.diffusion_index < 3  # 25 of 1024 pixels at most: about 0
    assert a.diffusion_index < local_attribution(_espcn(), lr, window, 2, steps=8).diffusion_index


def test_moving_the_window_moves_the_map():
    net, lr = _espcn(), _image(48, 48)

    def centre(window: Window) -> np.ndarray:
        m = local_attribution(net, lr, window, 2, steps=8).magnitude.numpy()
        ys, xs = np.indices(m.shape)
        return np.array([(ys * m).sum(), (xs * m).sum()]) / m.sum()

    a, b = centre(Window(20, 20, 16)), centre(Window(40, 52, 16))
    np.testing.assert_allclose(b - a, [10, 16], atol=1.5)  # (20, 32) output pixels = (10, 16) LR pixels


def test_gini_and_the_diffusion_index():
    assert gini(torch.ones(10, 10)) == pytest.approx(0.0, abs=1e-12)
    one_hot = torch.zeros(10, 10)
    one_hot[3, 4] = 5.0
    assert gini(one_hot) == pytest.approx(0.99)  # (n - 1) / n
    assert diffusion_index(torch.ones(4, 4)) == pytest.approx(100.0)
    half = torch.cat([torch.ones(50), torch.zeros(50)])
    assert diffusion_index(half) == pytest.approx(50.0)  # half the pixels used equally: 50


@pytest.mark.parametrize(("window", "message"), [
    ([60, 10, 8], r"window=\[60, 10, 8\] is outside the 64x80 output .* choose y <= 56 and x <= 72"),
    ([-1, 0, 8], "is outside the 64x80 output"),
    ([0, 0, 1], r"the side 1 is smaller than the scale 2, .* use a side >= 2"),
])
def test_bad_windows(window, message):
    with pytest.raises(UserError, match=message):
        local_attribution(_espcn(), _image(32, 40), Window.parse(window), 2, steps=2)


def test_malformed_window_and_options():
    for bad in ([1, 2], [1.5, 2, 3], None, "12"):
        with pytest.raises(UserError, match=r"window=.* must be \[y, x, size\]"):
            Window.parse(bad)
    with pytest.raises(UserError, match="steps=0 must be >= 1"):
        local_attribution(_espcn(), _image(32, 40), Window(0, 0, 8), 2, steps=0)


@pytest.fixture(scope="module")
def espcn_rgb_ckpt(tiny_data, tmp_path_factory):
    from tests.conftest import run_entry

    run_dir = tmp_path_factory.mktemp("lam_run")
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=espcn", "data.channels=3",
                                               "data/degradation=float", "model.in_channels=3", "trainer.max_steps=2",
                                               "test=false"))
    return run_dir / "checkpoints/last.ckpt"


def test_explain_command_writes_the_map_and_prints_the_index(espcn_rgb_ckpt, tmp_path):
    src = write_folder(tmp_path / "in", 1, (40, 48), seed=2) / "img00.png"
    out = tmp_path / "map.png"
    proc = run_cli("sr_lightning.explain", f"ckpt_path={espcn_rgb_ckpt}", f"input={src}", "window=[30,40,16]",
                   f"output={out}", "steps=8")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("diffusion_index=") and 0 < float(last.split("=")[1]) < 100
    image = np.asarray(Image.open(out))
    assert image.shape == (80, 96, 3)
    assert image[30, 40].tolist() == [255, 0, 0] and image[45, 55].tolist() == [255, 0, 0]  # the window's corners
    # from_hr: the image is downscaled first; the same window now lies in a 40x48 output
    proc = run_cli("sr_lightning.explain", f"ckpt_path={espcn_rgb_ckpt}", f"input={src}", "window=[30,40,16]",
                   f"output={out}", "steps=8", "from_hr=true", check=False)
    assert proc.returncode == 2 and "is outside the 40x48 output" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("wandb_installed")
def test_lam_callback_logs_the_map_and_the_index(tiny_data, tmp_path):
    from tests.wandb_files import read_run

    run_cli("sr_lightning.train", *tiny_args(tiny_data, tmp_path, "model=espcn", "logger=wandb",
                                              "trainer.max_steps=4", "test=false",
                                              "callbacks.lam.window=[16,16,16]", "callbacks.lam.steps=4"))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    for _ in range(40):  # W&B's service process may still be writing the run's file on a busy machine
        history = read_run(run_dir)["history"]
        maps = [h for h in history if "val/lam/_type" in h]
        if maps:
            break
        time.sleep(0.25)
    assert maps and "output window [16, 16, 16] at step 4, diffusion index" in maps[-1]["val/lam/captions"][0]
    index = [h["val/diffusion_index"] for h in history if "val/diffusion_index" in h]
    assert index and 0 < index[-1] < 100
