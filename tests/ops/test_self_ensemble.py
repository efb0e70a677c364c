"""x8 self-ensemble: an equivariant network is unchanged by it, any other gets the mean of
its 8 flipped/rotated passes; eval, test and upscale (tiled too) use it when asked."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sr_lightning.errors import UserError
from sr_lightning.lit import SRLitModule
from sr_lightning.nets.espcn import ESPCN
from sr_lightning.ops.self_ensemble import check_rotatable, self_ensemble, transform, untransform
from tests.conftest import _crops, run_entry, write_folder


def _photo(h: int = 21, w: int = 30) -> torch.Tensor:
    return torch.from_numpy(_crops(1, (h, w), seed=3)[0] / 255.0).float().permute(2, 0, 1)[None]


class _Symmetric(nn.Module):
    """Nearest x2 upsampling, then a 3x3 convolution with a kernel symmetric under the
    square's 8 flips/rotations, a ReLU and another such convolution: it commutes with every
    flip and rotation exactly (zero padding is symmetric too)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        a, b, c = torch.rand(3, 3, 3, 1, 1).unbind(0)
        k = torch.cat([torch.cat([a, b, a], -1), torch.cat([b, c, b], -1), torch.cat([a, b, a], -1)], -2)
        self.k1, self.k2 = k, k.flip(0, 1).transpose(0, 1).contiguous()  # both symmetric in space

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
        return nn.functional.conv2d(torch.relu(nn.functional.conv2d(x, self.k1, padding=1)), self.k2, padding=1)


def _by_hand(fn, lr: torch.Tensor) -> torch.Tensor:
    """The mean over the 8 maps x -> (transpose?) (flip rows?) (flip columns?), each undone
    in reverse order on the output: the same group, enumerated another way."""
    outs = []
    for t, fr, fc in itertools.product((False, True), repeat=3):
        x = lr.transpose(-2, -1) if t else lr
        x = x.flip(-2) if fr else x
        x = x.flip(-1) if fc else x
        y = fn(x)
        y = y.flip(-1) if fc else y
        y = y.flip(-2) if fr else y
        outs.append(y.transpose(-2, -1) if t else y)
    return torch.stack(outs).mean(0)


def test_the_eight_transforms_are_distinct_and_undone():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    seen = {tuple(transform(x, k).flatten().tolist()) + tuple(transform(x, k).shape) for k in range(8)}
    assert len(seen) == 8
    for k in range(8):
        assert torch.equal(untransform(transform(x, k), k), x)


def test_an_equivariant_network_is_unchanged():
    net, lr = _Symmetric(), _photo()
    with torch.no_grad():
        one = net(lr)
        for k in range(8):  # the premise: it commutes with each transform
            torch.testing.assert_close(net(transform(lr, k)), transform(one, k), rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(self_ensemble(net, lr), one, rtol=1e-6, atol=1e-5)


def test_another_network_gets_the_mean_of_its_eight_passes():
    torch.manual_seed(0)
    net = ESPCN(scale=3, in_channels=3).eval()  # learned, unsymmetric kernels
    lr = _photo()
    with torch.no_grad():
        one, ensemble = net(lr), self_ensemble(net, lr)
        expected = _by_hand(net, lr)
    assert ensemble.shape == one.shape == (1, 3, 63, 90)
    assert (ensemble - one).abs().max() > 1e-3
    torch.testing.assert_close(ensemble, expected, rtol=0, atol=1e-6)


class _FixedSize(ESPCN):
    name = "fixed_espcn"
    fixed_input_size = (21, 30)


def test_a_network_of_one_input_size_is_refused():
    message = (r"^evaluation\.self_ensemble: fixed_espcn takes only 21x30 LR inputs.*rotations of this 21x30 "
               r"input \(30x21\).*set evaluation\.self_ensemble=false")
    with pytest.raises(UserError, match=message):
        check_rotatable("fixed_espcn", _FixedSize.fixed_input_size, (21, 30), "evaluation.self_ensemble")
    check_rotatable("fixed_espcn", (16, 16), (16, 16), "self_ensemble")  # square and its size: fine
    module = SRLitModule(net={"_target_": f"{__name__}._FixedSize", "scale": 3, "in_channels": 3},
                         evaluation={"self_ensemble": True})
    with pytest.raises(UserError, match="fixed_espcn takes only 21x30"):
        module.predict_pair(_photo(), ensemble=True)
    with pytest.raises(UserError, match=r"evaluation\.self_ensemble: Value 'always' is not a valid bool"):
        SRLitModule(net={"name": "espcn", "scale": 3, "in_channels": 3}, evaluation={"self_ensemble": "always"})


def _metrics(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_eval_scores_the_ensemble(tiny_data, trained_srcnn, tmp_path, capsys):
    """model=bicubic is flip/rotation-equivariant (MATLAB's kernel is symmetric): the same
    table; the trained SRCNN is not: a different one."""
    common = ["data=folder", "data.train_dir=null", f"+data.test_dirs.tiny={tiny_data['test']}"]
    for ensemble in (False, True):
        run_entry("sr_lightning.eval", "model=bicubic", *common, f"evaluation.self_ensemble={ensemble}",
                  f"hydra.run.dir={tmp_path / f'bicubic_{ensemble}'}")
        run_entry("sr_lightning.eval", f"ckpt_path={trained_srcnn / 'checkpoints/last.ckpt'}", *common,
                  f"evaluation.self_ensemble={ensemble}", f"hydra.run.dir={tmp_path / f'srcnn_{ensemble}'}")
    assert _metrics(tmp_path / "bicubic_True")["tiny"]["psnr"] == pytest.approx(
        _metrics(tmp_path / "bicubic_False")["tiny"]["psnr"], abs=1e-6)
    single, ensemble = _metrics(tmp_path / "srcnn_False")["tiny"], _metrics(tmp_path / "srcnn_True")["tiny"]
    assert ensemble["psnr"] != pytest.approx(single["psnr"], abs=1e-3)
    assert ensemble["psnr_bicubic"] == single["psnr_bicubic"]
    assert "srcnn + x8 self-ensemble x2" in capsys.readouterr().out


def test_upscale_ensemble_tiled_equals_whole(trained_srcnn, tmp_path):
    """SRCNN sees 6 LR pixels around an output (9-5-5 at x2, pre-upsampled): with a 16-pixel
    overlap the tile-by-tile ensemble is the whole image's, and it differs from one pass."""
    src = write_folder(tmp_path / "in", 1, (40, 52), seed=7) / "img00.png"
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    out = {}
    for name, extra in {"one": ["self_ensemble=false", "tile=null"], "whole": ["self_ensemble=true", "tile=null"],
                        "tiled": ["self_ensemble=true", "tile=16", "tile_overlap=16"]}.items():
        run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src}", f"output={tmp_path / name}.png",
                  *extra)
        out[name] = np.asarray(Image.open(tmp_path / f"{name}.png")).astype(int)
    assert out["whole"].shape == (80, 104, 3)
    assert np.array_equal(out["tiled"], out["whole"])
    assert np.abs(out["whole"] - out["one"]).max() > 0
