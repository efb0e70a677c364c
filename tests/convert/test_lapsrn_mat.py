"""LapSRN's MatConvNet DagNN releases (--format lapsrn-mat): the authors' LapSRN x2 reproduces
its published row under its own test protocol; any number of levels and MS-LapSRN's shared
layout import to the network that computes the same; bad files get one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import torch

from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.errors import UserError
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import create_net
from tests.conftest import run_entry


def _struct_array(rows: list[dict]) -> np.ndarray:
    """A MATLAB 1 x n struct array (what DagNN's saveobj writes) of ``rows``."""
    out = np.empty((1, len(rows)), dtype=[(k, object) for k in rows[0]])
    for i, row in enumerate(rows):
        for k, v in row.items():
            out[0, i][k] = v
    return out


def _dagnn(net, path, crop=(0, 1, 0, 1)) -> None:
    """Write our LapSRN as the authors' DagNN parameters (their names, MatConvNet's filter
    layout), with the transposed-convolution layers that say their crops."""
    shared = bool(net.recursions)
    params = {}

    def put(name, weight, bias=None):
        params[f"{name}_f"] = weight.detach().double().permute(2, 3, 1, 0).numpy()  # (H, W, C_in, C_out)
        if bias is not None:
            params[f"{name}_b"] = bias.detach().double().numpy()

    put("input_conv", net.head.weight, net.head.bias)
    for i, level in enumerate(net.levels):
        prefix = "" if shared else f"level{i + 1}_"
        convs = [m for m in level.features.body if isinstance(m, torch.nn.Conv2d)]
        for d, c in enumerate(convs, start=1):
            put(f"{prefix}conv{d}", c.weight, c.bias)
        put(f"{prefix}upconv", level.features.up.weight, level.features.up.bias)
        put(f"{prefix}residual_conv", level.residual.weight, level.residual.bias)
        put(f"{prefix}img_up", level.image_up.weight)
    layers = [{"name": "level1_upconv", "type": "dagnn.ConvTranspose",
               "block": {"size": np.array([3, 3, 64, 64]), "upsample": np.array([2, 2]), "crop": np.array(crop)}},
              {"name": "level1_img_up", "type": "dagnn.ConvTranspose",
               "block": {"size": np.array([4, 4, 1, 1]), "upsample": np.array([2, 2]), "crop": np.array([1, 1, 1, 1])}},
              {"name": "input_relu", "type": "dagnn.ReLU", "block": {"leak": 0.2}}]
    scipy.io.savemat(path, {"net": {"params": _struct_array([{"name": k, "value": v} for k, v in params.items()]),
                                    "layers": _struct_array(layers), "meta": {}}})


@pytest.mark.parametrize(("kwargs", "scale"), [({"scale": 4, "depth": 2}, None), ({"scale": 8, "depth": 1}, None),
                                               ({"scale": 4, "depth": 2, "recursions": 8}, 4)])
def test_a_dagnn_model_imports_to_the_network_that_computes_the_same(tmp_path, kwargs, scale):
    """Levels and depth read off the parameter names (LapSRN x4, x8; MS-LapSRN shared)."""
    torch.manual_seed(0)
    ours = create_net("lapsrn", in_channels=1, num_features=64, **kwargs).eval()
    _dagnn(ours, tmp_path / "m.mat")
    args = ["--format", "lapsrn-mat", str(tmp_path / "m.mat"), str(tmp_path / "m.ckpt")]
    assert convert_main(args + (["--scale", str(scale)] if scale else [])) == 0
    module = SRLitModule.load_from_checkpoint(tmp_path / "m.ckpt").eval()
    assert module.net.num_levels == ours.num_levels and module.net.recursions == ours.recursions  # MS: D5R8's 8
    x = torch.rand(1, 1, 15, 17)
    with torch.no_grad():
        torch.testing.assert_close(module(x), ours(x))


def test_bad_dagnn_files_get_one_line(tmp_path, capsys):
    ours = create_net("lapsrn", scale=4, in_channels=1, depth=2)
    _dagnn(ours, tmp_path / "x4.mat")
    assert convert_main(["--format", "lapsrn-mat", "--scale", "2", str(tmp_path / "x4.mat"),
                         str(tmp_path / "o.ckpt")]) == 2
    assert "--scale 2 does not fit 'x4.mat': its 2 pyramid level(s) make x4; use --scale 4" in capsys.readouterr().err
    _dagnn(ours, tmp_path / "crop.mat", crop=(1, 1, 1, 1))
    assert convert_main(["--format", "lapsrn-mat", str(tmp_path / "crop.mat"), str(tmp_path / "o.ckpt")]) == 2
    assert "layer level1_upconv (3x3) crops [1, 1, 1, 1]" in capsys.readouterr().err
    shared = create_net("lapsrn", scale=4, in_channels=1, depth=2, recursions=2)
    _dagnn(shared, tmp_path / "ms.mat")
    assert convert_main(["--format", "lapsrn-mat", str(tmp_path / "ms.mat"), str(tmp_path / "o.ckpt")]) == 2
    assert "is an MS-LapSRN model (one set of weights for x2, x4 and x8): give --scale 2, 4 or 8" in \
        capsys.readouterr().err
    scipy.io.savemat(tmp_path / "other.mat", {"weights": np.zeros((3, 3))})
    assert convert_main(["--format", "lapsrn-mat", str(tmp_path / "other.mat"), str(tmp_path / "o.ckpt")]) == 2
    assert "is not a MatConvNet DagNN network: found weights (3, 3)" in capsys.readouterr().err
    assert not (tmp_path / "o.ckpt").exists()


def test_the_authors_lapsrn_x2_reproduces_set5_under_its_test_protocol(sr_data, tmp_path):
    """weights/lapsrn_official/LapSRN_x2.mat: Set5 x2 37.52 / 0.9591 when scored as the authors'
    code saves the result (the Y output with the LR's bicubic chroma, quantised in RGB:
    evaluation.y_output=rgb); scoring the quantised Y directly gives 0.03 dB less."""
    assert convert_main(["--format", "lapsrn-mat", str(sr_data / "weights/lapsrn_official/LapSRN_x2.mat"),
                         str(tmp_path / "lapsrn.ckpt")]) == 0
    for y_output in ("rgb", "y"):
        run_entry("sr_lightning.eval", f"ckpt_path={tmp_path / 'lapsrn.ckpt'}", "data.test_sets=[Set5]",
                  f"evaluation.y_output={y_output}", f"hydra.run.dir={tmp_path / y_output}")
    rgb, y = (json.loads((tmp_path / name / "metrics.json").read_text())["Set5"] for name in ("rgb", "y"))
    assert rgb["published_psnr"] == 37.52
    assert rgb["psnr"] == pytest.approx(37.52, abs=0.01) and rgb["ssim"] == pytest.approx(0.9591, abs=0.0005)
    assert y["psnr"] < rgb["psnr"] - 0.02


def test_y_output_rgb_needs_the_lr_in_colour(sr_data, tmp_path):
    ckpt = tmp_path / "lapsrn.ckpt"
    convert_main(["--format", "lapsrn-mat", str(sr_data / "weights/lapsrn_official/LapSRN_x2.mat"), str(ckpt)])
    with pytest.raises(UserError, match=r"evaluation.y_output=rgb scores a Y network's output in colour, but the "
                                        r"test LR was made from the Y channel: set data.degradation.source=rgb_float"):
        run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", "data.test_sets=[Set5]", "evaluation.y_output=rgb",
                  "data.degradation.source=y", f"hydra.run.dir={tmp_path / 'ev'}")
