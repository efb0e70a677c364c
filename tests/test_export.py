"""Export (python -m sr_lightning.export) and upscale backend=onnx: the exported network runs
at sizes other than the traced one and matches PyTorch; networks whose forward needs a fixed
size are refused with the op named, and export at size=[h,w]; foreign ONNX files are refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.errors import UserError
from sr_lightning.inference import onnx_upscaler, pytorch_upscaler, upscale_tensor
from sr_lightning.inference.export import CHECK_SIZE, export, run_exported
from sr_lightning.inference.onnx_runner import OnnxNet
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import create_net
from sr_lightning.ops import imresize
from sr_lightning.ops.resize import bands
from tests.conftest import SHALLOW, _crops, run_cli, run_entry, tiny_args, write_folder


@pytest.fixture(scope="module")
def espcn_ckpt(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("espcn_run")
    run_entry("sr_lightning.train", *tiny_args(tiny_data, run_dir, "model=espcn", "trainer.max_steps=2", "test=false"))
    return run_dir / "checkpoints/last.ckpt"


def assert_same_after_uint8(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, levels: bool = False) -> None:
    """Equal as 8-bit images but for a few values a float rounding apart sat on either side
    of a half level (differences of ~1e-6 before rounding): at most 1 level, 1 value in 10^4."""
    a, b = (np.asarray(t, np.int32) if levels else np.round(np.asarray(t, np.float64) * 255) for t in (a, b))
    assert np.abs(a - b).max() <= 1 and (a != b).mean() <= 1e-4


def _y(h: int, w: int) -> torch.Tensor:
    """A real photographic crop's first channel, (1, 1, h, w) in [0, 1]."""
    return torch.from_numpy(_crops(1, (h, w), seed=3)[0][..., :1] / 255.0).float().permute(2, 0, 1)[None]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_a_checkpoint_runs_at_any_size(espcn_ckpt, tmp_path, fmt):
    out = tmp_path / f"espcn.{fmt}"
    proc = run_cli("sr_lightning.export", f"ckpt_path={espcn_ckpt}", f"format={fmt}", f"output={out}")
    assert f"dynamic height and width); at {CHECK_SIZE[0]}x{CHECK_SIZE[1]} it matches PyTorch" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1  # the exporter's progress and passes stay out of the way
    net = SRLitModule.load_from_checkpoint(espcn_ckpt).net.eval()
    y = _y(45, 52)
    with torch.no_grad():
        assert (run_exported(out, fmt, y) - net(y)).abs().max() < 1e-5
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left beside it


def test_onnx_metadata_names_the_network(espcn_ckpt, tmp_path):
    run_cli("sr_lightning.export", f"ckpt_path={espcn_ckpt}", f"output={tmp_path / 'e.onnx'}")
    meta = {p.key: p.value for p in onnx.load(tmp_path / "e.onnx").metadata_props}
    assert meta == {"sr_lightning.net": "espcn", "sr_lightning.scale": "2", "sr_lightning.channels": "1"}
    net = OnnxNet(tmp_path / "e.onnx")
    assert (net.name, net.scale, net.in_channels, net.input_size) == ("espcn", 2, 1, None)


def test_upscale_backend_onnx_equals_pytorch_tiled(espcn_ckpt, tmp_path):
    """A colour image through a Y network, tiled: the ONNX run gives PyTorch's PNG."""
    onnx_file = tmp_path / "espcn.onnx"
    run_cli("sr_lightning.export", f"ckpt_path={espcn_ckpt}", f"output={onnx_file}")
    src = write_folder(tmp_path / "in", 1, (70, 90), seed=5) / "img00.png"
    for backend, ckpt in (("pytorch", espcn_ckpt), ("onnx", onnx_file)):
        run_entry("sr_lightning.upscale", f"backend={backend}", f"ckpt_path={ckpt}", f"input={src}",
                  f"output={tmp_path / backend}.png", "tile=32", "tile_overlap=8")
    torch_png, onnx_png = (np.asarray(Image.open(tmp_path / f"{b}.png")) for b in ("pytorch", "onnx"))
    assert onnx_png.shape == (140, 180, 3)
    assert_same_after_uint8(onnx_png, torch_png, levels=True)


@pytest.mark.slow  # 17 s; test_export_of_a_checkpoint_runs_at_any_size[onnx] checks onnxruntime == PyTorch in every run
def test_released_imdn_in_onnxruntime_matches_pytorch_on_set5(sr_data, tmp_path):
    """The issue's check: a released network, a real image, float within 1e-4, uint8 identical."""
    ckpt, onnx_file = tmp_path / "imdn.ckpt", tmp_path / "imdn.onnx"
    convert_main(["--format", "pth", "--net", "imdn", "--scale", "4", str(sr_data / "weights/imdn_official/x4.pth"),
                  str(ckpt)])
    module = SRLitModule.load_from_checkpoint(ckpt).eval()
    assert export(module.net, 3, "onnx", onnx_file) < 1e-4
    hr = torch.from_numpy(np.asarray(Image.open(sr_data / "benchmark/Set5/butterfly.png"), np.float32) / 255.0)
    lr = imresize(hr.permute(2, 0, 1)[None], 0.25).clamp(0, 1)
    torch_sr = upscale_tensor(pytorch_upscaler(module), lr)
    onnx_sr = upscale_tensor(onnx_upscaler(OnnxNet(onnx_file)), lr)
    assert (onnx_sr - torch_sr).abs().max() < 1e-4
    assert_same_after_uint8(onnx_sr, torch_sr)


@pytest.mark.slow  # 21 s; test_vdsr_names_the_op_and_exports_at_a_fixed_size checks a refused export in every run
def test_a_size_dependent_graph_is_refused_and_not_kept(tmp_path):
    net = create_net("swinir", scale=2, in_channels=3, **SHALLOW["swinir"])
    with pytest.raises(UserError, match=r"does not run at another input size \(RuntimeError: shape .* is invalid"):
        export(net, 3, "torchscript", tmp_path / "swinir.pt")
    safmn = create_net("safmn", scale=2, in_channels=3, **SHALLOW.get("safmn", {}))  # exported with static sizes
    with pytest.raises(UserError, match=r"format=onnx: the exported network does not run at another input size "
                                        r"\(.*invalid dimensions for input: lr.*\).*try format=torchscript or a fixed"):
        export(safmn, 3, "onnx", tmp_path / "safmn.onnx")
    assert list(tmp_path.iterdir()) == []


def test_vdsr_names_the_op_and_exports_at_a_fixed_size(tmp_path):
    """VDSR's MATLAB bicubic builds its weights from the input size in Python: refused with
    the line named, exported at size=[h,w], and the export leaves imresize's cache sound."""
    net = create_net("vdsr", scale=2, in_channels=1, num_layers=4)
    with pytest.raises(UserError, match=r"VDSR cannot be exported with dynamic height and width \(.*at resize\.py:"
                                        r"\d+ `.*contributions\(.*\)`\); try format=torchscript or a fixed input size"):
        export(net, 1, "onnx", tmp_path / "v.onnx")
    x = torch.rand(1, 1, 40, 50)
    expected = imresize(x, 2)
    bands.cache_clear()  # the export traces the first resize at 40x50: nothing it makes may be cached
    assert export(net, 1, "onnx", tmp_path / "v.onnx", size=[40, 50]) < 1e-4
    assert torch.equal(imresize(x, 2), expected)
    onnx_net = OnnxNet(tmp_path / "v.onnx")
    assert onnx_net.input_size == (40, 50)
    y = _y(40, 50)
    with torch.no_grad():
        assert (onnx_net(y) - net.eval()(y)).abs().max() < 1e-4
        # a smaller tile is mirror-padded to the exported size and cropped
        assert onnx_net(y[..., :30, :44]).shape == (1, 1, 60, 88)
    with pytest.raises(UserError, match=r"exported for 40x50 LR inputs and got 41x50: set tile and tile_overlap so "
                                        r"that tile \+ 2 \* tile_overlap <= 40"):
        onnx_net(_y(41, 50))


def test_foreign_onnx_files_are_refused(tmp_path):
    torch.onnx.export(torch.nn.Conv2d(3, 3, 3, padding=1), (torch.rand(1, 3, 8, 8),), str(tmp_path / "x.onnx"),
                      dynamo=True, input_names=["x"], output_names=["y"])
    with pytest.raises(UserError, match=r"has inputs \['x'\] and outputs \['y'\], not \['lr'\] and \['sr'\]: not an "
                                        r"sr_lightning export"):
        OnnxNet(tmp_path / "x.onnx")
    torch.onnx.export(torch.nn.PixelShuffle(2), (torch.rand(1, 12, 8, 8),), str(tmp_path / "named.onnx"),
                      dynamo=True, input_names=["lr"], output_names=["sr"])
    with pytest.raises(UserError, match="carries no sr_lightning metadata"):
        OnnxNet(tmp_path / "named.onnx")
    model = onnx.load(tmp_path / "named.onnx")  # ours in name only: says 3 channels, takes 12
    for key, value in (("sr_lightning.scale", "2"), ("sr_lightning.channels", "3")):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, tmp_path / "lying.onnx")
    with pytest.raises(UserError, match=r"input 'lr' has shape \[1, 12, 8, 8\], not \(1, 3, h, w\)"):
        OnnxNet(tmp_path / "lying.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(UserError, match="text.onnx' is not an ONNX model onnxruntime can load"):
        OnnxNet(tmp_path / "text.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist; give an .onnx file"):
        OnnxNet(tmp_path / "none.onnx")


def test_upscale_backend_options(espcn_ckpt, tmp_path):
    src = write_folder(tmp_path / "in", 1, (20, 24)) / "img00.png"
    proc = run_cli("sr_lightning.upscale", "backend=tensorrt", f"ckpt_path={espcn_ckpt}", f"input={src}",
                   f"output={tmp_path / 'o.png'}", check=False)
    assert proc.returncode != 0 and "backend='tensorrt' is not one of ('pytorch', 'onnx')" in proc.stderr
    run_cli("sr_lightning.export", f"ckpt_path={espcn_ckpt}", f"output={tmp_path / 'e.onnx'}")
    proc = run_cli("sr_lightning.upscale", "backend=onnx", f"ckpt_path={tmp_path / 'e.onnx'}", "scale=3",
                   f"input={src}", f"output={tmp_path / 'o.png'}", check=False)
    assert "scale=3: the ONNX network" in proc.stderr and "upscales x2 only" in proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_bad_format_size_and_folder(tmp_path):
    net = create_net("espcn", scale=2, in_channels=1)
    with pytest.raises(UserError, match=r"format='tflite' is not one of \('onnx', 'torchscript'\)"):
        export(net, 1, "tflite", tmp_path / "x")
    with pytest.raises(UserError, match=r"size=\[40\] must be \[height, width\]"):
        export(net, 1, "onnx", tmp_path / "x", size=[40])
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        export(net, 1, "torchscript", tmp_path / "none" / "x.pt")
