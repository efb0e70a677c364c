"""Tiled inference equals one pass when the overlap covers the receptive field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.inference import tiled_forward
from sr_lightning.metrics import quantize
from sr_lightning.nets import create_net, get_net_class, list_nets
from tests.conftest import SHALLOW, _crops, run_entry

# Smaller than the defaults, for time: RCAN at 2 x 2 blocks (its 10 x 20 took a minute),
# RRDBNet at 2 blocks (23: 18 s), RED-Net at 10 layers (30: 16 s on 2 AVX2 cores); SwinIR at
# 2 x 2 layers of 24 features, whose receptive field the default overlap (48) covers (36 layers' does not).
EXACT = [n for n in list_nets() if n != "unet" and get_net_class(n).tiles_exactly]


@pytest.mark.parametrize("name", EXACT)
def test_tiled_equals_untiled_with_the_default_overlap(name):
    torch.manual_seed(0)
    net = create_net(name, scale=2, in_channels=1, **SHALLOW.get(name, {})).eval()
    lr = torch.from_numpy(_crops(1, (80, 90), seed=4)[0][..., 0] / 255.0).float()[None, None]
    with torch.no_grad():
        whole = net(lr)
        tiled = tiled_forward(net, lr, 2, tile=32, overlap=48)  # 3 x 3 tiles
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() <= 1e-5
    assert torch.equal(quantize(tiled.clamp(0, 1)), quantize(whole.clamp(0, 1)))


# CRAFT's cross-attention mixes channels over all pixels of what it sees: tiles move further.
FURTHER = {"craft": 0.25}


@pytest.mark.parametrize("name", sorted(set(list_nets()) - set(EXACT) - {"unet", "safmn"}))
def test_networks_with_image_wide_statistics_tile_closely(name):
    """Global channel attention (IMDN's contrast pooling) sees each tile's statistics, so a
    tiled result is near one pass (within a few uint8 levels) but not equal to it."""
    torch.manual_seed(0)
    net = create_net(name, scale=2, in_channels=1, **SHALLOW.get(name, {})).eval()
    lr = torch.from_numpy(_crops(1, (80, 90), seed=4)[0][..., 0] / 255.0).float()[None, None]
    with torch.no_grad():
        whole, tiled = net(lr), tiled_forward(net, lr, 2, tile=32, overlap=48)
    assert tiled.shape == whole.shape and 0 < (tiled - whole).abs().max() < FURTHER.get(name, 0.05)


def test_swinir_tiles_exactly_only_on_its_window_grid():
    """Tiles and overlap that are multiples of the 8-pixel window share the image's windows
    (exact, above); a 28-pixel tile does not."""
    torch.manual_seed(0)
    net = create_net("swinir", scale=2, in_channels=1, **SHALLOW["swinir"]).eval()
    lr = torch.rand(1, 1, 112, 112)  # the tile at 84 reads context from 52: off the grid
    with torch.no_grad():
        assert (tiled_forward(net, lr, 2, tile=28, overlap=32) - net(lr)).abs().max() > 1e-4


def test_safmn_tiles_exactly_only_on_its_pooling_grid():
    """SAFMN max-pools to H/2, H/4, H/8: on an image, tiles and overlap that are multiples of
    8 the pooling cells are the image's (equal to one pass); 90 pixels wide they are not."""
    torch.manual_seed(0)
    net = create_net("safmn", scale=2, in_channels=1).eval()
    with torch.no_grad():
        on_grid, off_grid = torch.rand(1, 1, 96, 96), torch.rand(1, 1, 80, 90)
        assert (tiled_forward(net, on_grid, 2, tile=32, overlap=48) - net(on_grid)).abs().max() <= 1e-4
        assert (tiled_forward(net, off_grid, 2, tile=32, overlap=48) - net(off_grid)).abs().max() > 1e-2


def test_too_little_overlap_shows_seams():
    net = create_net("vdsr", scale=2, in_channels=1).eval()
    lr = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        assert (tiled_forward(net, lr, 2, tile=16, overlap=2) - net(lr)).abs().max() > 1e-4


def test_upscale_tiles_large_images(trained_srcnn, tmp_path):
    Image.fromarray(_crops(1, (90, 100), seed=6)[0]).save(tmp_path / "big.png")
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    for tile, out in (("null", "one.png"), ("32", "tiled.png")):
        run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={tmp_path / 'big.png'}",
                  f"output={tmp_path / out}", f"tile={tile}", "tile_overlap=16")
    one, tiled = (np.asarray(Image.open(tmp_path / f)) for f in ("one.png", "tiled.png"))
    assert one.shape == (180, 200, 3) and np.array_equal(one, tiled)
