from __future__ import annotations

import pytest
import torch

from sr_lightning.ops import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def test_matlab_values():
    rgb = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]).view(3, 1, 4)
    ycbcr = rgb_to_ycbcr(rgb) * 255
    # white, black (studio swing 16..235), green and red as MATLAB's rgb2ycbcr gives them
    torch.testing.assert_close(ycbcr[:, 0, 0], torch.tensor([235.0, 128.0, 128.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(ycbcr[:, 0, 1], torch.tensor([16.0, 128.0, 128.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(ycbcr[:, 0, 2], torch.tensor([16 + 128.553, 128 - 74.203, 128 - 93.786]), atol=1e-3,
                               rtol=0)
    torch.testing.assert_close(ycbcr[:, 0, 3], torch.tensor([16 + 65.481, 128 - 37.797, 128 + 112.0]), atol=1e-3,
                               rtol=0)


def test_round_trip_and_y():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb)
    torch.testing.assert_close(rgb_to_y(rgb), rgb_to_ycbcr(rgb)[:, :1])
    assert rgb_to_y(rgb).shape == (2, 1, 5, 7)


def test_wrong_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_y(torch.rand(1, 1, 4, 4))
