from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from sr_lightning.metrics import PSNR, SSIM, psnr, quantize, ssim
from sr_lightning.ops import rgb_to_y


def test_psnr_of_a_known_error():
    hr = torch.full((1, 1, 20, 20), 100 / 255, dtype=torch.float64)
    sr = hr + 5 / 255  # MSE = 25 on the 0..255 scale
    assert psnr(sr, hr, crop_border=2).item() == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)


def test_psnr_uses_y_and_crops_the_border():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 24, 24, dtype=torch.float64)
    sr = hr.clone()
    sr[..., :3, :] = 0  # damage only the top 3 rows: a crop of 3 removes it entirely
    assert torch.isinf(psnr(sr, hr, crop_border=3)).all()
    assert torch.isfinite(psnr(sr, hr, crop_border=2)).all()
    y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    torch.testing.assert_close(psnr(sr, hr, crop_border=2), psnr(y_sr, y_hr, crop_border=2))
    assert not torch.allclose(psnr(sr, hr, crop_border=2), psnr(sr, hr, crop_border=2, y_channel=False))


def test_ssim_matches_an_independent_implementation():
    """skimage's Gaussian SSIM (sigma 1.5, population covariance) cropped to the valid region is Wang's."""
    rng = np.random.default_rng(0)
    hr = rng.random((40, 48))
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1)
    _, ssim_map = structural_similarity(sr * 255, hr * 255, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=255, full=True)
    expected = ssim_map[5:-5, 5:-5].mean()
    got = ssim(torch.from_numpy(sr)[None, None], torch.from_numpy(hr)[None, None], crop_border=0).item()
    assert got == pytest.approx(expected, abs=1e-10)


def test_ssim_of_identical_images_is_one():
    x = torch.rand(3, 1, 30, 30)
    torch.testing.assert_close(ssim(x, x, crop_border=2), torch.ones(3, dtype=torch.float64))


def test_metric_classes_average_per_image_values():
    torch.manual_seed(0)
    hr = torch.rand(5, 1, 32, 32)
    sr = (hr + 0.02 * torch.randn_like(hr)).clamp(0, 1)
    m, s = PSNR(crop_border=2), SSIM(crop_border=2)
    m.update(sr[:2], hr[:2])
    m.update(sr[2:], hr[2:])
    s.update(sr, hr)
    assert m.compute().item() == pytest.approx(psnr(sr, hr, crop_border=2).mean().item(), abs=1e-12)
    assert s.compute().item() == pytest.approx(ssim(sr, hr, crop_border=2).mean().item(), abs=1e-12)
    assert int(m.count) == 5


def test_quantize_rounds_to_the_uint8_grid():
    x = torch.tensor([-0.1, 0.5 / 255, 1.4 / 255, 1.6 / 255, 1.2])
    torch.testing.assert_close(quantize(x) * 255, torch.tensor([0.0, 1.0, 1.0, 2.0, 255.0]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9), crop_border=0)
    with pytest.raises(ValueError, match="crop_border=4 leaves nothing"):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), crop_border=4)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        psnr(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), crop_border=0)


def test_grayscale_images_are_compared_as_their_own_gray_values():
    """A colour network's output for a grayscale image is compared on luma with the gray HR
    (replicated into 3 equal channels), i.e. on the gray values themselves, not on
    16 + 219 v as BT.601 Y of the replicated image would be."""
    g = torch.Generator().manual_seed(0)
    hr_gray = torch.rand(1, 1, 24, 24, generator=g)
    sr_gray = (hr_gray + 0.02 * torch.randn(1, 1, 24, 24, generator=g)).clamp(0, 1)
    hr, sr = hr_gray.expand(1, 3, -1, -1), sr_gray.expand(1, 3, -1, -1)
    own = psnr(sr_gray, hr_gray, crop_border=2)
    flagged = psnr(sr, hr, crop_border=2, gray=torch.tensor([True]))
    unflagged = psnr(sr, hr, crop_border=2)
    torch.testing.assert_close(flagged, own)
    assert float(unflagged - own) == pytest.approx(-20 * math.log10(219 / 255), abs=1e-9)  # Y's range is 219/255
    other_sr, other_hr = torch.rand(1, 3, 24, 24, generator=g), torch.rand(1, 3, 24, 24, generator=g)
    both = torch.cat([sr, other_sr]), torch.cat([hr, other_hr])
    per_image = ssim(*both, crop_border=2, gray=torch.tensor([True, False]))
    torch.testing.assert_close(per_image[0], ssim(sr_gray, hr_gray, crop_border=2)[0])
    torch.testing.assert_close(per_image[1], ssim(both[0][1:], both[1][1:], crop_border=2)[0])


def test_gmsd_is_zero_for_identical_images_and_grows_with_blur():
    from scipy.ndimage import correlate, gaussian_filter

    from sr_lightning.metrics import GMSD, gmsd

    hr = torch.from_numpy(skimage_camera()[:64, :80] / 255.0)[None, None]
    assert float(gmsd(hr, hr, crop_border=2)[0]) == pytest.approx(0.0, abs=1e-12)
    blurred = [torch.from_numpy(gaussian_filter(hr[0, 0].numpy(), s))[None, None] for s in (0.5, 1.0, 2.0)]
    values = [float(gmsd(b, hr, crop_border=2)[0]) for b in blurred]
    assert values[0] < values[1] < values[2]
    # An independent numpy computation of the same definition.
    def mags(x):
        x = x[2:-2, 2:-2] * 255.0
        x = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4
        k = np.array([[1.0, 0.0, -1.0]] * 3) / 3
        gx, gy = correlate(x, k)[1:-1, 1:-1], correlate(x, k.T)[1:-1, 1:-1]
        return np.sqrt(gx**2 + gy**2)
    m1, m2 = mags(blurred[1][0, 0].numpy()), mags(hr[0, 0].numpy())
    ref = ((2 * m1 * m2 + 170) / (m1**2 + m2**2 + 170)).std()
    assert values[1] == pytest.approx(ref, rel=1e-9)
    metric = GMSD(crop_border=2)
    metric.update(torch.cat([blurred[1], hr]).float(), torch.cat([hr, hr]).float())
    assert float(metric.compute()) == pytest.approx(values[1] / 2, rel=1e-5)
    assert not GMSD.higher_is_better


def skimage_camera():
    import skimage.data as skd

    return skd.camera().astype(np.float64)
