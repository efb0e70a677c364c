"""Export a checkpoint's network for deployment:
``python -m sr_lightning.export ckpt_path=PATH format=onnx|torchscript output=FILE``.

The network is exported as it runs in evaluation (SPAN's branches folded), with dynamic
height and width, input ``lr`` (1, C, h, w) in [0, 1] and output ``sr`` (1, C, s*h, s*w).
The exported file is checked before it is kept: run at a size other than the one traced,
it must give PyTorch's output (max difference under ``tolerance``); a network whose graph
only runs at the traced size is refused with the failing op named.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from sr_lightning.atomic import write_atomically
from sr_lightning.checkpoint import config_trusted_nets, read_checkpoint
from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.errors import UserError
from sr_lightning.lit import SRLitModule

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
# The traced input and the size the export is checked at (different on purpose: odd, not
# square, not a multiple of any window).
TRACE_SIZE, CHECK_SIZE = (64, 64), (37, 61)
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def _need_onnx() -> None:
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"format=onnx needs {', '.join(missing)}: pip install 'sr_lightning[export]'")


def export_onnx(net: nn.Module, path: Path, channels: int) -> None:
    """Write ``net`` as ONNX (torch's dynamo exporter) with dynamic height and width."""
    _need_onnx()
    h, w = torch.export.Dim("height", min=2, max=8192), torch.export.Dim("width", min=2, max=8192)
    example = torch.rand(1, channels, *TRACE_SIZE)
    try:
        program = torch.onnx.export(net, (example,), input_names=["lr"], output_names=["sr"], dynamo=True,
                                    dynamic_shapes=({2: h, 3: w},))
    except torch.onnx.errors.OnnxExporterError as err:  # torch.export could not trace it with free sizes
        cause = err.__cause__ or err
        first = next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
        raise UserError(f"format=onnx: {type(net).__name__} cannot be exported with dynamic height and width "
                        f"({first[:300]}); try format=torchscript or a fixed input size") from None
    write_atomically(path, lambda tmp: program.save(tmp))


def export_torchscript(net: nn.Module, path: Path, channels: int) -> None:
    """Write ``net`` traced to TorchScript."""
    example = torch.rand(1, channels, *TRACE_SIZE)
    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)
    write_atomically(path, lambda tmp: traced.save(tmp))


def run_exported(path: Path, fmt: str, lr: Tensor) -> Tensor:
    """Run an exported file on ``lr`` (1, C, h, w) on the CPU."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: lr.numpy()})[0])
    model = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return model(lr)


def check_export(net: nn.Module, path: Path, fmt: str, channels: int, tolerance: float) -> float:
    """The exported file against PyTorch at :data:`CHECK_SIZE`; returns the max difference.

    Raises:
        UserError: the file does not run at that size (the op named), or differs.
    """
    torch.manual_seed(0)
    lr = torch.rand(1, channels, *CHECK_SIZE)
    with torch.no_grad():
        expected = net(lr)
    try:
        got = run_exported(path, fmt, lr)
    except Exception as err:  # onnxruntime / TorchScript raise many kinds; the message names the op
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        # onnxruntime names the node on its first line; TorchScript's interpreter ends with the error
        first = (lines[0] if fmt == "onnx" else lines[-1])[:300] if lines else type(err).__name__
        raise UserError(f"format={fmt}: the exported network does not run at another input size ({first}); its "
                        f"forward depends on the traced size: try "
                        f"{'format=torchscript' if fmt == 'onnx' else 'format=onnx'} or a fixed input size") from None
    if got.shape != expected.shape:
        raise UserError(f"format={fmt}: the exported network gives {tuple(got.shape)} for a {CHECK_SIZE} input, "
                        f"PyTorch {tuple(expected.shape)}: its forward depends on the traced size")
    diff = float((got - expected).abs().max())
    if not np.isfinite(diff) or diff > tolerance:
        raise UserError(f"format={fmt}: the exported network differs from PyTorch by {diff:.2e} (> {tolerance:g}) "
                        f"at another input size: its forward depends on the traced size")
    return diff


def export(net: nn.Module, channels: int, fmt: str, output: str | Path, tolerance: float = 1e-4) -> float:
    """Export ``net`` (eval mode) to ``output`` in ``fmt`` and check it; returns the max
    difference to PyTorch. A file that fails the check is removed."""
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not one of {FORMATS}")
    path = Path(output).expanduser()
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output='{path}': folder '{path.parent}' does not exist")
    net = net.eval()
    (export_onnx if fmt == "onnx" else export_torchscript)(net, path, channels)
    try:
        return check_export(net, path, fmt, channels, tolerance)
    except UserError:
        path.unlink(missing_ok=True)
        raise


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    trusted = config_trusted_nets(cfg)
    module = SRLitModule.load_from_checkpoint(read_checkpoint(cfg.ckpt_path, "ckpt_path", trusted),
                                              trusted_nets=trusted)
    diff = export(module.net, module.net.in_channels, str(cfg.format), cfg.output, float(cfg.tolerance))
    print(f"wrote {cfg.output} ({cfg.format}, {module.net.name} x{module.scale}, {module.net.in_channels} channel(s), "
          f"dynamic height and width); at {CHECK_SIZE[0]}x{CHECK_SIZE[1]} it matches PyTorch to {diff:.1e}")


def cli() -> None:
    """``python -m sr_lightning.export`` and the ``sr-export`` console script."""
    sys.argv = prepare_argv(sys.argv)
    main()


if __name__ == "__main__":
    cli()
