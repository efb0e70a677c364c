"""The export core: a network to ONNX (torch's dynamo exporter) or TorchScript, checked before
the file is kept (run at another size than the traced one, it must give PyTorch's output).
The ONNX file carries the network's name, scale and channels as metadata
(:data:`~sr_lightning.inference.onnx_runner.META`), which ``upscale backend=onnx`` checks."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.files import write_atomically
from sr_lightning.inference.onnx_runner import META, OnnxNet, need_onnx

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
# The traced input and the size a dynamic export is checked at (different on purpose: odd,
# not square, not a multiple of any window).
TRACE_SIZE, CHECK_SIZE = (64, 64), (37, 61)


def _where(err: BaseException) -> str:
    """The innermost line of sr_lightning's code in ``err``'s traceback (the op that failed),
    else ``err``'s first line."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f"{os.sep}sr_lightning{os.sep}" in f.filename]
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)[:200]
    if not frames:
        return first
    f = frames[-1]
    return f"{first}, at {Path(f.filename).name}:{f.lineno} `{(f.line or '').strip()}`"


def export_onnx(net: nn.Module, path: str, channels: int, size: tuple[int, int] | None) -> None:
    """Write ``net`` as ONNX (torch's dynamo exporter): dynamic height and width, or the
    fixed ``size`` (h, w)."""
    need_onnx("format=onnx")
    example = torch.rand(1, channels, *(size or TRACE_SIZE))
    dynamic = None
    if size is None:
        dynamic = ({2: torch.export.Dim("height", min=2, max=8192), 3: torch.export.Dim("width", min=2, max=8192)},)
    try:
        with warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), input_names=["lr"], output_names=["sr"], dynamo=True,
                                        dynamic_shapes=dynamic, verbose=False)
    except torch.onnx.errors.OnnxExporterError as err:  # torch.export could not trace it
        cause = err.__cause__ or err
        how = "with dynamic height and width" if size is None else f"at {size[0]}x{size[1]}"
        fix = "try format=torchscript or a fixed input size (size=[h,w])" if size is None else "try format=torchscript"
        raise UserError(f"format=onnx: {type(net).__name__} cannot be exported {how} ({_where(cause)}); "
                        f"{fix}") from None
    program.model.metadata_props.update({f"{META}{k}": v for k, v in _metadata(net, channels, size).items()})
    program.save(path)


def export_torchscript(net: nn.Module, path: str, channels: int, size: tuple[int, int] | None) -> None:
    """Write ``net`` traced to TorchScript (at ``size`` (h, w), or checked at another size)."""
    example = torch.rand(1, channels, *(size or TRACE_SIZE))
    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)
    traced.save(path, _extra_files={f"{META}{k}": v for k, v in _metadata(net, channels, size).items()})


def _metadata(net: nn.Module, channels: int, size: tuple[int, int] | None) -> dict[str, str]:
    meta = {"net": str(getattr(net, "name", type(net).__name__)), "scale": str(net.scale), "channels": str(channels)}
    if size is not None:
        meta["input_size"] = f"{size[0]},{size[1]}"
    return meta


# The exporter's chatty loggers (progress, the graph passes, torchvision's missing ops).
EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines and its passes' notes go to the debug log, not the user."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        log.debug("%s", out.getvalue())


def run_exported(path: str | Path, fmt: str, lr: Tensor) -> Tensor:
    """Run an exported file on ``lr`` (1, C, h, w) on the CPU."""
    if fmt == "onnx":
        return OnnxNet(path, "output")(lr)
    model = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return model(lr)


def check_export(net: nn.Module, path: str | Path, fmt: str, channels: int, tolerance: float,
                 size: tuple[int, int] | None = None) -> float:
    """The exported file against PyTorch on a random input of another size than the traced
    one (:data:`CHECK_SIZE`; the same size for a fixed-size export); returns the max difference.

    Raises:
        UserError: the file does not run at that size (the op named), or differs.
    """
    torch.manual_seed(0)
    lr = torch.rand(1, channels, *(size or CHECK_SIZE))
    with torch.no_grad():
        expected = net(lr)
    other = "format=torchscript" if fmt == "onnx" else "format=onnx"
    try:
        got = run_exported(path, fmt, lr)
    except UserError:
        raise
    except Exception as err:  # onnxruntime / TorchScript raise many kinds; the message names the op
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        # onnxruntime names the node on its first line; TorchScript's interpreter ends with the error
        first = (lines[0] if fmt == "onnx" else lines[-1])[:300] if lines else type(err).__name__
        raise UserError(f"format={fmt}: the exported network does not run at another input size ({first}); its "
                        f"forward depends on the traced size: try {other} or a fixed input size (size=[h,w])") from None
    if got.shape != expected.shape:
        raise UserError(f"format={fmt}: the exported network gives {tuple(got.shape)} for a {tuple(lr.shape[-2:])} "
                        f"input, PyTorch {tuple(expected.shape)}: its forward depends on the traced size; try "
                        f"{other} or a fixed input size (size=[h,w])")
    diff = float((got - expected).abs().max())
    if not np.isfinite(diff) or diff > tolerance:
        raise UserError(f"format={fmt}: the exported network differs from PyTorch by {diff:.2e} (> {tolerance:g}) "
                        f"at another input size: its forward depends on the traced size; try {other} or a fixed "
                        "input size (size=[h,w])")
    return diff


def export(net: nn.Module, channels: int, fmt: str, output: str | Path, tolerance: float = 1e-4,
           size: Sequence[int] | None = None) -> float:
    """Export ``net`` (eval mode) to ``output`` in ``fmt`` and check it; returns the max
    difference to PyTorch. The file appears only once it passed the check.

    Args:
        size: None for dynamic height and width, or the fixed LR (h, w) to export at.
    """
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not one of {FORMATS}")
    if size is not None:
        if len(size) != 2 or any(not isinstance(v, int) or v < 2 for v in size):
            raise UserError(f"size={list(size)} must be [height, width] in LR pixels (integers >= 2), or null "
                            "for dynamic sizes")
        size = (int(size[0]), int(size[1]))
    path = Path(output).expanduser()
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output='{path}': folder '{path.parent}' does not exist")
    net = net.eval()
    diff = 0.0

    def write(tmp: str) -> None:
        nonlocal diff
        (export_onnx if fmt == "onnx" else export_torchscript)(net, tmp, channels, size)
        diff = check_export(net, tmp, fmt, channels, tolerance, size)

    write_atomically(path, write)
    return diff
