"""Any model file loads: a bare state dict (a release, a community file, ours without the
checkpoint around it) goes straight to upscale, eval, export, explain, sr_lightning.load and
train init_from, its network detected from the keys and shapes."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import sr_lightning
from sr_lightning.nets import create_net
from tests.conftest import TouchOnUnpickle, run_cli, run_entry, tiny_args

EDSR = {"num_blocks": 2, "num_features": 16, "scale": 2, "in_channels": 3}


@pytest.fixture(scope="module")
def edsr_files(tmp_path_factory):
    """A small EDSR x2 with random weights, as a .pth state dict (BasicSR's params_ema wrapper)
    and as .safetensors."""
    torch.manual_seed(0)
    net = create_net("edsr", **EDSR).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.02)
    root = tmp_path_factory.mktemp("files")
    torch.save({"params_ema": net.state_dict()}, root / "edsr_x2.pth")
    save_file(net.state_dict(), root / "edsr_x2.safetensors")
    return net, root


@pytest.mark.parametrize("name", ["edsr_x2.pth", "edsr_x2.safetensors"])
def test_the_python_api_loads_a_state_dict_with_no_network_named(edsr_files, name):
    net, root = edsr_files
    model = sr_lightning.load(root / name, device="cpu")
    assert model.scale == 2 and model.channels == 3
    x = torch.rand(1, 3, 20, 26)
    with torch.no_grad():
        torch.testing.assert_close(model.upscale(x, tile=None), net(x).clamp(0, 1))
    assert model.checkpoint.net["name"] == "edsr" and model.checkpoint.net["num_blocks"] == 2


def test_eval_upscale_and_init_from_take_the_file(edsr_files, tiny_data, tmp_path):
    net, root = edsr_files
    pth = root / "edsr_x2.pth"
    results, _ = run_entry("sr_lightning.eval", f"ckpt_path={pth}", f"data.test_sets=[{tiny_data['test']}]",
                           f"hydra.run.dir={tmp_path / 'e'}")
    assert results["test"]["num_images"] == 2 and results["test"]["psnr"] > 0
    written = run_entry("sr_lightning.upscale", f"ckpt_path={pth}", f"input={tiny_data['test'] / 'img00.png'}",
                        f"output={tmp_path / 'up.png'}")
    assert written == [tmp_path / "up.png"]
    run = tmp_path / "ft"
    _, objects = run_entry("sr_lightning.train", *tiny_args(tiny_data, run, f"init_from={pth}", "trainer.max_steps=2",
                                                            "test=false"))
    saved = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["net"]["name"] == "edsr" and saved["hyper_parameters"]["net"]["num_features"] == 16
    assert objects["module"].net.in_channels == 3 and objects["trainer"].global_step == 2


def test_a_file_of_no_known_network_is_one_line_naming_the_closest(tiny_data, tmp_path):
    esrgan = create_net("rrdbnet", num_blocks=1).state_dict()
    del esrgan["conv_hr.weight"], esrgan["conv_hr.bias"]  # an ESRGAN file with a layer missing
    torch.save(esrgan, tmp_path / "broken.pth")
    proc = run_cli("sr_lightning.upscale", f"ckpt_path={tmp_path / 'broken.pth'}",
                   f"input={tiny_data['test'] / 'img00.png'}", f"output={tmp_path / 'b.png'}", check=False)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert line.startswith(f"error: '{tmp_path / 'broken.pth'}' is not a network sr_lightning knows")
    assert "closest: rrdbnet" in line and "missing conv_hr." in line


def test_the_architecture_option_picks_one_of_two_networks_that_fit(tiny_data, tmp_path):
    """A three-layer VDSR has SRCNN's layout with 3x3 kernels: upscale names both and the option;
    architecture=vdsr runs it as VDSR (bicubic first, the residual added), equal to the net."""
    torch.manual_seed(0)
    net = create_net("vdsr", num_layers=3, in_channels=3).eval()
    torch.save(net.state_dict(), tmp_path / "three.pth")
    image = tiny_data["test"] / "img00.png"
    proc = run_cli("sr_lightning.upscale", f"ckpt_path={tmp_path / 'three.pth'}", f"input={image}",
                   f"output={tmp_path / 'a.png'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("pick one with architecture=srcnn or architecture=vdsr")
    run_entry("sr_lightning.upscale", f"ckpt_path={tmp_path / 'three.pth'}", f"input={image}",
              f"output={tmp_path / 'v.png'}", "architecture=vdsr", "scale=3")
    model = sr_lightning.load(tmp_path / "three.pth", architecture="vdsr", scale=3, device="cpu")
    reference = create_net("vdsr", num_layers=3, in_channels=3, scale=3).eval()
    reference.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 12, 14)
    with torch.no_grad():
        torch.testing.assert_close(model.upscale(x, tile=None), reference(x).clamp(0, 1))
    assert model.checkpoint.net["name"] == "vdsr" and model.scale == 3


def test_a_bare_fsrcnn_file_takes_its_scale_from_the_command(tiny_data, tmp_path):
    """FSRCNN's weights do not hold their scale: refused with the options that give it;
    upscale scale=3 and sr_lightning.load(scale=3) run it at x3."""
    torch.manual_seed(0)
    net = create_net("fsrcnn", scale=3, in_channels=1).eval()
    torch.save(net.state_dict(), tmp_path / "fsrcnn.pth")
    with pytest.raises(ValueError, match=r"do not say their scale: give it \(upscale: scale=N; eval, train: data"):
        sr_lightning.load(tmp_path / "fsrcnn.pth", device="cpu")
    model = sr_lightning.load(tmp_path / "fsrcnn.pth", scale=3, device="cpu")
    x = torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        torch.testing.assert_close(model.upscale(x, tile=None), net(x).clamp(0, 1))
    written = run_entry("sr_lightning.upscale", f"ckpt_path={tmp_path / 'fsrcnn.pth'}", "scale=3",
                        f"input={tiny_data['test'] / 'img00.png'}", f"output={tmp_path / 'f.png'}")
    assert written == [tmp_path / "f.png"]


def test_a_pickled_file_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"params": TouchOnUnpickle(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="never unpickles"):
        sr_lightning.load(tmp_path / "evil.pth")
    assert not marker.exists()


def test_inspect_says_what_a_file_holds(tmp_path, capsys):
    """sr-inspect on a 6-block RRDBNet x4 (the anime model's shape, BasicSR's wrapper): the
    architecture, its arguments, the config line that trains it; a missing file: one line, exit 2."""
    from sr_lightning.inspect import main

    torch.save({"params_ema": create_net("rrdbnet", num_blocks=6, scale=4).state_dict()}, tmp_path / "x4.pth")
    assert main([str(tmp_path / "x4.pth")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "architecture: rrdbnet (RRDBNet, Wang et al., ECCVW 2018 (ESRGAN))"
    assert "num_blocks=6" in out[2] and out[3] == "model config: rrdbnet with model.num_blocks=6"
    assert "parameters: 4,467,779" in out and "channels: 3 (RGB)" in out
    assert "train it from scratch: python -m sr_lightning.train model=rrdbnet model.num_blocks=6 data.scale=4 " \
           "data.channels=3" in out
    assert main([str(tmp_path / "none.pth")]) == 2
    assert capsys.readouterr().err.startswith(f"error: FILE='{tmp_path / 'none.pth'}' does not exist")


@pytest.mark.parametrize(("change", "says"), [
    (lambda sd: sd["head.weight"].view(-1).__setitem__(0, float("nan")), "head.weight holds NaN or infinite values"),
    (lambda sd: sd.__setitem__("tail.1.bias", sd["tail.1.bias"].long()), "tail.1.bias holds int64 values where"),
])
def test_weights_that_are_not_finite_floats_are_refused_naming_the_tensor(tmp_path, change, says):
    sd = create_net("edsr", **EDSR).state_dict()
    change(sd)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=f"'{tmp_path / 'bad.pth'}': {says}"):
        sr_lightning.load(tmp_path / "bad.pth")


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    from sr_lightning.checkpoint import save_checkpoint, weights_checkpoint
    from sr_lightning.lit import SRLitModule

    module = SRLitModule(net={"name": "edsr", **EDSR})
    ckpt = weights_checkpoint(module)
    ckpt["state_dict"]["net.head.weight"][0, 0, 0, 0] = float("inf")
    save_checkpoint(ckpt, tmp_path / "nan.ckpt")
    with pytest.raises(ValueError, match="the checkpoint: net.head.weight holds NaN or infinite values"):
        SRLitModule.load_from_checkpoint(tmp_path / "nan.ckpt")


def test_fine_tuning_across_scales_keeps_the_body(edsr_files, tiny_data, tmp_path, caplog):
    """init_from an x2 EDSR file with data.scale=3: the run trains x3, the body starts from the
    file's weights, the upsampler fresh, and the log says so with both scales."""
    net, root = edsr_files
    caplog.set_level("WARNING")
    args = tiny_args(tiny_data, tmp_path / "x3", f"init_from={root / 'edsr_x2.pth'}", "data.scale=3",
                     "trainer.max_steps=1", "test=false")
    _, objects = run_entry("sr_lightning.train", *args)
    module = objects["module"]
    assert module.scale == 3
    said = next(r.getMessage() for r in caplog.records if "fine-tuning across scales" in r.getMessage())
    assert "weights are for x2, this run trains x3" in said and "tail.0.0.weight" in said
    ckpt = torch.load(tmp_path / "x3/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["scale"] == 3
    assert ckpt["state_dict"]["net.tail.0.0.weight"].shape[0] == 16 * 9  # the x3 upsampler
    body = ckpt["state_dict"]["net.body.0.body.0.weight"]  # the file's, one Adam step on
    assert (body - net.body[0].body[0].weight).abs().max() < 5e-3  # a fresh start differs by ~0.1


def test_a_bare_file_is_read_once(edsr_files, monkeypatch):
    """read_model reads the file once whether it is a checkpoint or a bare state dict."""
    import sr_lightning.files

    _, root = edsr_files
    reads = []
    real = sr_lightning.files.read_data
    monkeypatch.setattr(sr_lightning.files, "read_data", lambda path: reads.append(path) or real(path))
    sr_lightning.load(root / "edsr_x2.pth", device="cpu")
    assert reads == [root / "edsr_x2.pth"]
