from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from sr_lightning.ops import Imresize, imresize
from sr_lightning.ops.resize import weight_matrix

SQUARE = np.arange(64, dtype=np.float64).reshape(8, 8)
SMALL = np.arange(16, dtype=np.float64).reshape(4, 4)
I15 = np.arange(225, dtype=np.float64).reshape(15, 15)
TOPLEFT = np.zeros((4, 4))
TOPLEFT[0, 0], TOPLEFT[1, 0], TOPLEFT[0, 1], TOPLEFT[0, 3] = 100, 10, 1, 100
BOTTOMRIGHT = np.zeros((4, 4))
BOTTOMRIGHT[3, 3], BOTTOMRIGHT[2, 3], BOTTOMRIGHT[3, 2], BOTTOMRIGHT[3, 0] = 100, 10, 1, 100
# file stem (without _aa/_noaa) -> (input, output size); see ../shared/data/README.md
CASES = {
    "down_down_small": (SMALL, (3, 3)), "down_down": (SQUARE, (3, 4)), "down_down_irregular": (SQUARE, (5, 7)),
    "up_up_topleft": (TOPLEFT, (5, 5)), "up_up_bottomright": (BOTTOMRIGHT, (5, 5)),
    "up_up_irregular": (SQUARE, (11, 13)), "down_down_butterfly_irregular": (None, (123, 234)),
    "down_down_x2": (SQUARE, (4, 4)), "down_down_x4": (SQUARE, (2, 2)), "down_down_x3": (I15, (5, 5)),
    "down_down_x5": (I15, (3, 3)),
}


def _matlab_cases(sr_data):
    folder = sr_data / "reference/imresize/matlab_r2019b"
    files = sorted(folder.glob("*.mat"))
    assert len(files) == 16
    return folder, files


def test_matches_matlab_r2019b_vectors(sr_data):
    folder, files = _matlab_cases(sr_data)
    butterfly = np.asarray(Image.open(folder / "butterfly.png").convert("RGB"), dtype=np.float64) / 255.0
    for f in files:
        stem, aa = f.stem.rsplit("_", 1)
        x, size = CASES[stem]
        x = butterfly.transpose(2, 0, 1) if x is None else x
        expected = sio.loadmat(f)[f.stem]
        out = imresize(torch.from_numpy(np.ascontiguousarray(x)), size=size, antialias=aa == "aa", border="symmetric")
        out = out.numpy()
        if out.ndim == 3:
            out = out.transpose(1, 2, 0)
        assert out.shape == expected.shape, f.name
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10, err_msg=f.name)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reproduces_benchmark_lr_files_bit_exactly(sr_data, scale):
    for hr_path in sorted((sr_data / "benchmark/Set5").glob("*.png")):
        hr = np.array(Image.open(hr_path))
        h, w = hr.shape[:2]
        hr = np.ascontiguousarray(hr[: h - h % scale, : w - w % scale])
        expected = np.asarray(Image.open(sr_data / f"reference/imresize/benchmark_lr/Set5/x{scale}/{hr_path.name}"))
        lr = imresize(torch.from_numpy(hr).permute(2, 0, 1), 1 / scale, border="clamp").permute(1, 2, 0).numpy()
        assert lr.dtype == np.uint8
        assert np.array_equal(lr, expected), f"{hr_path.name} x{scale}: {(lr != expected).sum()} pixels differ"


def test_clamp_and_symmetric_differ_only_near_borders():
    x = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    a, b = imresize(x, 0.5, border="clamp"), imresize(x, 0.5, border="symmetric")
    diff = (a - b).abs()[0, 0]
    assert diff.max() > 1e-3  # the border modes are really different
    assert diff[3:-3, 3:-3].max() == 0  # but only within the kernel's reach of the edge


def test_batched_shapes_and_dtype():
    x = torch.rand(2, 3, 17, 23)
    assert imresize(x, 2).shape == (2, 3, 34, 46)
    assert imresize(x, 1 / 3).shape == (2, 3, 6, 8)  # ceil, as MATLAB
    assert imresize(x, size=(5, 9)).shape == (2, 3, 5, 9)
    assert imresize(x, 2).dtype == torch.float32
    assert imresize(x.double(), 2).dtype == torch.float64
    # each image of a batch is resized independently
    torch.testing.assert_close(imresize(x, 0.5)[1], imresize(x[1], 0.5))


def test_constant_image_stays_constant_and_rows_sum_to_one():
    x = torch.full((1, 1, 9, 11), 0.3, dtype=torch.float64)
    for scale in (0.25, 0.5, 2, 3):
        torch.testing.assert_close(imresize(x, scale), torch.full_like(imresize(x, scale), 0.3))
    w = weight_matrix(10, 4, 0.4, True, "clamp")
    torch.testing.assert_close(w.sum(1), torch.ones(4, dtype=torch.float64))


def test_uint8_rounds_and_saturates():
    x = torch.zeros(1, 12, 12, dtype=torch.uint8)
    x[:, 4:8, 4:8] = 255  # overshoot of the cubic kernel must saturate, not wrap
    out = imresize(x, 2)
    assert out.dtype == torch.uint8
    ref = imresize(x.double(), 2)
    assert ref.max() > 255 and ref.min() < 0
    assert out.max() == 255 and out.min() == 0


def test_differentiable_and_autocast_safe():
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    imresize(x, 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = imresize(x.detach(), 2)
    torch.testing.assert_close(out, imresize(x.detach(), 2))  # autocast does not reach the weights


def test_module_twin():
    x = torch.rand(1, 3, 10, 10)
    torch.testing.assert_close(Imresize(3, border="symmetric")(x), imresize(x, 3, border="symmetric"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scale": 2, "border": "reflect"}, "border='reflect'"),
    ({}, "exactly one of"),
    ({"scale": -1}, "must be positive"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        imresize(torch.rand(4, 4), **kwargs)


def test_int_tensors_are_rejected():
    with pytest.raises(TypeError, match="float and uint8"):
        imresize(torch.ones(4, 4, dtype=torch.int32), 2)
