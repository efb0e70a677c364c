"""Importing released weights: the layouts (against an independent MATLAB-style reference),
the reproduction of published numbers, the round trip into eval/upscale/train, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image
from scipy.ndimage import correlate

from sr_lightning.convert import convert
from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.lit import SRLitModule
from tests.conftest import TouchOnUnpickle, run_cli, run_entry, tiny_args, write_folder


def _random_srcnn_mat(path, f=(9, 1, 5), n=(8, 4), seed=0):
    """An SRCNN model in the authors' MATLAB layout (column-major f x f filters)."""
    rng = np.random.default_rng(seed)
    mat = {"weights_conv1": rng.normal(0, 0.1, (f[0] ** 2, n[0])), "biases_conv1": rng.normal(0, 0.1, (n[0], 1)),
           "weights_conv2": rng.normal(0, 0.1, (n[0], f[1] ** 2, n[1])), "biases_conv2": rng.normal(0, 0.1, (n[1], 1)),
           "weights_conv3": rng.normal(0, 0.1, (n[1], f[2] ** 2)), "biases_conv3": rng.normal(0, 0.1, (1, 1))}
    sio.savemat(path, mat)
    return mat


def _srcnn_reference(mat, x, f):
    """The authors' SRCNN.m in numpy: imfilter(..., 'same', 'replicate') = correlate(mode='nearest'),
    filters reshaped column-major (order='F')."""
    def filt(img, w, k):
        return correlate(img, w.reshape(k, k, order="F"), mode="nearest")

    n1, n2 = mat["weights_conv1"].shape[1], mat["weights_conv3"].shape[0]
    c1 = [np.maximum(filt(x, mat["weights_conv1"][:, i], f[0]) + mat["biases_conv1"][i, 0], 0) for i in range(n1)]
    c2 = [np.maximum(sum(filt(c1[j], mat["weights_conv2"][j, :, i], f[1]) for j in range(n1))
                     + mat["biases_conv2"][i, 0], 0) for i in range(n2)]
    return sum(filt(c2[i], mat["weights_conv3"][i, :], f[2]) for i in range(n2)) + mat["biases_conv3"][0, 0]


@pytest.mark.parametrize("kernels", [(9, 1, 5), (9, 3, 5), (5, 5, 3)])
def test_srcnn_mat_layout_matches_the_authors_code(tmp_path, kernels):
    mat = _random_srcnn_mat(tmp_path / "x2.mat", f=kernels)
    convert("srcnn-mat", tmp_path / "x2.mat", tmp_path / "m.ckpt")
    module = SRLitModule.load_from_checkpoint(tmp_path / "m.ckpt")
    assert module.net.body[0].kernel_size == (kernels[0],) * 2 and module.scale == 2
    x = np.random.default_rng(1).random((23, 19))
    with torch.no_grad():
        ours = module.net.body(torch.from_numpy(x).float()[None, None])[0, 0].double().numpy()
    np.testing.assert_allclose(ours, _srcnn_reference(mat, x, kernels), atol=1e-5)


def test_converted_checkpoint_has_the_layout_training_writes(tmp_path):
    """convert writes through the module that owns the format: the same hyper_parameters a
    trained SRLitModule saves (compile_net, the registry name, the evaluation protocol), the
    file's provenance under sr_lightning, and no training state."""
    _random_srcnn_mat(tmp_path / "x3.mat", f=(9, 1, 5))
    convert("srcnn-mat", tmp_path / "x3.mat", tmp_path / "m.ckpt")
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=True)
    trained = SRLitModule(net=ckpt["hyper_parameters"]["net"])
    assert ckpt["hyper_parameters"] == dict(trained.hparams)
    assert ckpt["hyper_parameters"]["net"]["name"] == "srcnn" and ckpt["hyper_parameters"]["compile_net"] is False
    assert ckpt["sr_lightning"]["trained_scales"] == [3] and ckpt["sr_lightning"]["degradation"]["source"] == "y"
    assert "optimizer_states" not in ckpt and set(ckpt["state_dict"]) == set(trained.state_dict())
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_vdsr_mat_layout_is_matconvnet(tmp_path):
    """weight{i} is (H, W, C_in, C_out), applied by correlation with zero padding."""
    rng = np.random.default_rng(0)
    layers = [(1, 4), (4, 4), (4, 1)]
    weights = np.empty((1, 3), dtype=object)
    biases = np.empty((1, 3), dtype=object)
    for i, (cin, cout) in enumerate(layers):
        w = rng.normal(0, 0.3, (3, 3, cin, cout))
        weights[0, i] = w[..., 0] if cout == 1 else w  # MATLAB drops the trailing singleton
        biases[0, i] = rng.normal(0, 0.1, (cout, 1))
    sio.savemat(tmp_path / "vdsr.mat", {"model": {"weight": weights, "bias": biases}})
    convert("vdsr-mat", tmp_path / "vdsr.mat", tmp_path / "v.ckpt", scale=3)
    module = SRLitModule.load_from_checkpoint(tmp_path / "v.ckpt")
    x = np.random.default_rng(1).random((11, 13))
    ref = [x]
    for i, (cin, cout) in enumerate(layers):  # MatConvNet vl_nnconv with pad 1
        w = weights[0, i].reshape(3, 3, cin, cout)
        out = [sum(correlate(ref[c], w[:, :, c, o], mode="constant") for c in range(cin)) + biases[0, i][o, 0]
               for o in range(cout)]
        ref = [np.maximum(o, 0) for o in out] if i < len(layers) - 1 else out
    with torch.no_grad():
        ours = module.net.body(torch.from_numpy(x).float()[None, None])[0, 0].double().numpy()
    np.testing.assert_allclose(ours, ref[0], atol=1e-5)
    ckpt = torch.load(tmp_path / "v.ckpt", weights_only=True)
    assert ckpt["sr_lightning"]["trained_scales"] == [2, 3, 4] and module.scale == 3
    src = write_folder(tmp_path / "in", 1, (10, 12))
    run_entry("sr_lightning.upscale", f"ckpt_path={tmp_path / 'v.ckpt'}", "scale=4", f"input={src / 'img00.png'}",
              f"output={tmp_path / 'up4.png'}")  # one model, any trained scale
    assert np.asarray(Image.open(tmp_path / "up4.png")).shape == (40, 48, 3)


# -- reproduction (fast subset of experiments/paper_tables) -------------------------------

def _eval(tmp_path, name, *args):
    run_entry("sr_lightning.eval", *args, f"hydra.run.dir={tmp_path / name}")
    return json.loads((tmp_path / name / "metrics.json").read_text())


def test_released_srcnn_reproduces_set5(sr_data, tmp_path):
    convert_main(["--format", "srcnn-mat", "--scale", "3", str(sr_data / "weights/srcnn_955_imagenet/x3.mat"),
                  str(tmp_path / "srcnn_x3.ckpt")])
    m = _eval(tmp_path, "ev", f"ckpt_path={tmp_path / 'srcnn_x3.ckpt'}", "data.test_sets=[Set5]")["Set5"]
    assert m["published_psnr"] == 32.75 and m["published_ssim"] == 0.9090
    assert m["psnr"] == pytest.approx(32.75, abs=0.01)
    assert m["ssim"] == pytest.approx(0.9090, abs=0.001)


@pytest.mark.slow  # 27 s; the released SRCNN's Set5 row is checked in every run
def test_released_vdsr_is_one_network_for_all_scales(sr_data, tmp_path):
    convert_main(["--format", "vdsr-mat", "--scale", "2", str(sr_data / "weights/vdsr_official/vdsr_official.mat"),
                  str(tmp_path / "vdsr.ckpt")])
    m = _eval(tmp_path, "ev", f"ckpt_path={tmp_path / 'vdsr.ckpt'}", "data.scale=4", "data.test_sets=[Set5]")["Set5"]
    assert m["psnr"] == pytest.approx(31.35, abs=0.01)
    assert m["ssim"] == pytest.approx(0.8838, abs=0.001)
    with pytest.raises(ValueError, match="data.scale=5: this checkpoint was trained for x2, x3, x4 only"):
        run_entry("sr_lightning.eval", f"ckpt_path={tmp_path / 'vdsr.ckpt'}", "data.scale=5", "data.test_sets=[Set5]",
                  f"hydra.run.dir={tmp_path / 'x5'}")


# -- round trip: an imported checkpoint is an ordinary checkpoint -------------------------------

def test_imported_checkpoint_evaluates_upscales_and_fine_tunes(tmp_path, tiny_data, caplog):
    _random_srcnn_mat(tmp_path / "x2.mat", f=(9, 1, 5))
    ckpt = tmp_path / "srcnn_x2.ckpt"
    assert convert_main(["--format", "srcnn-mat", str(tmp_path / "x2.mat"), str(ckpt)]) == 0  # scale from the name
    assert isinstance(SRLitModule.load_from_checkpoint(ckpt), SRLitModule)
    m = _eval(tmp_path, "ev", f"ckpt_path={ckpt}", "data=folder", "data.train_dir=null",
              f"data.test_sets=[{tiny_data['test']}]")["test"]
    assert m["num_images"] == 2 and np.isfinite(m["psnr"])
    src = write_folder(tmp_path / "in", 1, (20, 24))
    run_entry("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src / 'img00.png'}",
              f"output={tmp_path / 'up.png'}")
    assert np.asarray(Image.open(tmp_path / "up.png")).shape == (40, 48, 3)
    proc = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", "scale=3", f"input={src / 'img00.png'}",
                   f"output={tmp_path / 'up3.png'}", check=False)
    assert proc.returncode == 2 and "scale=3: this checkpoint was trained for x2 only" in proc.stderr
    before = torch.load(ckpt, weights_only=True)["state_dict"]
    for key in ("ckpt_path", "init_from"):  # weights-only ckpt_path starts a new run, like init_from
        run = tmp_path / key
        caplog.clear()
        caplog.set_level("INFO")
        run_entry("sr_lightning.train", *tiny_args(tiny_data, run, f"{key}={ckpt}", "trainer.max_steps=3"))
        assert ("starting a new run from them" in caplog.text) == (key == "ckpt_path")
        after = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
        assert after["hyper_parameters"]["net"]["kernel_sizes"] == [9, 1, 5]  # the imported architecture
        assert after["global_step"] == 3
        w0, w1 = before["net.body.0.weight"], after["state_dict"]["net.body.0.weight"]
        assert not torch.equal(w0, w1) and (w1 - w0).abs().max() < 0.1  # fine-tuned from, not re-initialised


# -- bad input ---------------------------------------------------------------------------------

def _convert_error(capsys, *argv):
    assert convert_main(list(argv)) == 2
    return capsys.readouterr().err


def test_bad_files_and_options(tmp_path, capsys):
    _random_srcnn_mat(tmp_path / "x3.mat")
    (tmp_path / "notes.mat").write_text("not a mat file")
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "notes.mat"), str(tmp_path / "o.ckpt"))
    assert "notes.mat' is not a readable MATLAB .mat file" in err
    torch.save(TouchOnUnpickle(tmp_path / "marker"), tmp_path / "pickled_x2.mat")  # a pickle is never run
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "pickled_x2.mat"), str(tmp_path / "o.ckpt"))
    assert "pickled_x2.mat' is a zip archive (a PyTorch torch.save file?), not a MATLAB .mat file" in err
    assert not (tmp_path / "marker").exists()
    err = _convert_error(capsys, "--format", "vdsr-mat", "--scale", "2", str(tmp_path / "x3.mat"),
                         str(tmp_path / "o.ckpt"))
    assert "is not a VDSR MatConvNet model: found biases_conv1 (8, 1)" in err and "expected a struct `model`" in err
    err = _convert_error(capsys, "--format", "srcnn-mat", "--scale", "2", str(tmp_path / "x3.mat"),
                         str(tmp_path / "o.ckpt"))
    assert "--scale 2: 'x3.mat' is the x3 SRCNN model" in err
    bad = {k: v for k, v in sio.loadmat(tmp_path / "x3.mat").items() if not k.startswith("__")}
    bad["weights_conv1"] = bad["weights_conv1"][:80]
    sio.savemat(tmp_path / "x4.mat", bad)
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "x4.mat"), str(tmp_path / "o.ckpt"))
    assert "weights_conv1 has 80 taps per filter, not the square of an odd kernel size" in err
    assert "found biases_conv1 (8, 1)" in err and "expected weights_conv1 (f1*f1, n1)" in err
    del bad["biases_conv2"]
    sio.savemat(tmp_path / "x2.mat", bad)
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "x2.mat"), str(tmp_path / "o.ckpt"))
    assert "is not an SRCNN MATLAB model: biases_conv2 missing" in err
    (tmp_path / "o.ckpt").write_bytes(b"")
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "x3.mat"), str(tmp_path / "o.ckpt"))
    assert "o.ckpt' exists; choose another output path or pass --force" in err
    _random_srcnn_mat(tmp_path / "model.mat")
    err = _convert_error(capsys, "--format", "srcnn-mat", str(tmp_path / "model.mat"), str(tmp_path / "p.ckpt"))
    assert "does not say its scale (SRCNN models are per scale): pass --scale" in err
    with pytest.raises(SystemExit):  # argparse: unknown format
        convert_main(["--format", "edsr-pt", str(tmp_path / "x3.mat"), str(tmp_path / "q.ckpt")])
    assert "invalid choice: 'edsr-pt'" in capsys.readouterr().err


def test_vdsr_shapes_and_scale_are_checked(tmp_path, capsys):
    weights, biases = np.empty((1, 2), dtype=object), np.empty((1, 2), dtype=object)
    weights[0, 0], weights[0, 1] = np.zeros((3, 3, 1, 4)), np.zeros((5, 5, 4))
    biases[0, 0], biases[0, 1] = np.zeros((4, 1)), np.zeros((1, 1))
    sio.savemat(tmp_path / "v.mat", {"model": {"weight": weights, "bias": biases}})
    err = _convert_error(capsys, "--format", "vdsr-mat", "--scale", "2", str(tmp_path / "v.mat"), str(tmp_path / "o"))
    assert "layer 2 has weight (5, 5, 4, 1) and bias (1, 1); expected weight (3, 3, 4, 1)" in err
    weights[0, 1] = np.zeros((3, 3, 4))
    sio.savemat(tmp_path / "v.mat", {"model": {"weight": weights, "bias": biases}})
    err = _convert_error(capsys, "--format", "vdsr-mat", "--scale", "5", str(tmp_path / "v.mat"), str(tmp_path / "o"))
    assert "--scale 5: the VDSR model was trained for x2, x3 and x4 only" in err
