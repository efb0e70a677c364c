"""Export: a checkpoint's network as TorchScript (ONNX needs the `export` extra), checked at
another input size; a network whose graph depends on the traced size is refused, op named."""

from __future__ import annotations

import pytest
import torch

from sr_lightning.errors import UserError
from sr_lightning.export import CHECK_SIZE, export, run_exported
from sr_lightning.nets import create_net
from tests.conftest import SHALLOW, _crops, run_cli, run_entry, tiny_args


def test_torchscript_export_of_a_checkpoint_runs_at_any_size(tiny_data, tmp_path):
    run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "run", "model=espcn", "trainer.max_steps=2",
                                               "test=false"))
    ckpt, out = tmp_path / "run/checkpoints/last.ckpt", tmp_path / "espcn.pt"
    proc = run_cli("sr_lightning.export", f"ckpt_path={ckpt}", "format=torchscript", f"output={out}")
    assert f"at {CHECK_SIZE[0]}x{CHECK_SIZE[1]} it matches PyTorch" in proc.stdout
    from sr_lightning.lit import SRLitModule

    net = SRLitModule.load_from_checkpoint(ckpt).net.eval()
    y = torch.from_numpy(_crops(1, (45, 52), seed=3)[0][..., :1] / 255.0).float().permute(2, 0, 1)[None]
    with torch.no_grad():
        assert (run_exported(out, "torchscript", y) - net(y)).abs().max() < 1e-5


def test_a_size_dependent_graph_is_refused_and_not_kept(tmp_path):
    net = create_net("swinir", scale=2, in_channels=3, **SHALLOW["swinir"])
    with pytest.raises(UserError, match=r"does not run at another input size \(RuntimeError: shape .* is invalid"):
        export(net, 3, "torchscript", tmp_path / "swinir.pt")
    assert not (tmp_path / "swinir.pt").exists()


def test_bad_format_and_folder(tmp_path):
    net = create_net("espcn", scale=2, in_channels=1)
    with pytest.raises(UserError, match=r"format='tflite' is not one of \('onnx', 'torchscript'\)"):
        export(net, 1, "tflite", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        export(net, 1, "torchscript", tmp_path / "none" / "x.pt")
