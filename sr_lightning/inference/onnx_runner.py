"""Run an ONNX file written by ``python -m sr_lightning.export`` with onnxruntime: the
``upscale backend=onnx`` network and the zoo's onnxruntime latency.

Ours means: one input ``lr`` (1, C, h, w) and one output ``sr`` (1, C, s*h, s*w), both
float32 in [0, 1], and the metadata the export writes (``sr_lightning.scale``,
``sr_lightning.channels``, ``sr_lightning.net``, and ``sr_lightning.input_size`` "h,w" for
a network exported at a fixed size). Anything else is refused in one line.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sr_lightning.errors import UserError

ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
META = "sr_lightning."


def need_onnx(option: str) -> None:
    """Refuse ``option`` in one line when the ``export`` extra is not installed."""
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"{option} needs {', '.join(missing)}: pip install 'sr_lightning[export]'")


class OnnxNet:
    """An exported network as a callable: (1, C, h, w) float in [0, 1] -> (1, C, s*h, s*w).

    Attributes:
        name: the exported network's name.
        scale: its upscaling factor.
        in_channels: 1 (Y) or 3 (RGB).
        input_size: (h, w) of a fixed-size export (inputs no larger are mirror-padded to it
            and the output cropped), or None for dynamic height and width.
    """

    def __init__(self, path: str | Path, option: str = "ckpt_path", threads: int | None = None) -> None:
        need_onnx("backend=onnx")
        import onnxruntime as ort

        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{option}='{path}' does not exist; give an .onnx file from python -m "
                                    "sr_lightning.export format=onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 4  # errors reach the caller as exceptions
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... for any unreadable file
            raise UserError(f"{option}='{path}' is not an ONNX model onnxruntime can load "
                            f"({str(err).strip().splitlines()[0][:200]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        meta = self.session.get_modelmeta().custom_metadata_map
        fix = "export it with python -m sr_lightning.export format=onnx"
        if [i.name for i in inputs] != ["lr"] or [o.name for o in outputs] != ["sr"]:
            raise UserError(f"{option}='{path}' has inputs {[i.name for i in inputs]} and outputs "
                            f"{[o.name for o in outputs]}, not ['lr'] and ['sr']: not an sr_lightning export; {fix}")
        if f"{META}scale" not in meta or f"{META}channels" not in meta:
            raise UserError(f"{option}='{path}' carries no sr_lightning metadata (scale, channels); {fix}")
        self.name = meta.get(f"{META}net", path.stem)
        self.scale = _meta_int(meta, "scale", (1, 16), option, path, fix)
        self.in_channels = _meta_int(meta, "channels", (1, 3), option, path, fix)
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise UserError(f"{option}='{path}': input 'lr' has shape {shape}, not (1, {self.in_channels}, h, w) "
                            f"as its metadata says; {fix}")
        size = meta.get(f"{META}input_size")
        if size and not re.fullmatch(r"\d{1,6},\d{1,6}", size):
            raise UserError(f"{option}='{path}': metadata {META}input_size={size!r} is not 'h,w'; {fix}")
        self.input_size = tuple(int(v) for v in size.split(",")) if size else None

    def __call__(self, lr: Tensor) -> Tensor:
        """(1, C, h, w) -> (1, C, s*h, s*w) float32 on the CPU."""
        if lr.shape[0] != 1 or lr.shape[1] != self.in_channels:
            raise UserError(f"the ONNX network takes (1, {self.in_channels}, h, w), got {tuple(lr.shape)}")
        h, w = lr.shape[-2:]
        x = lr.detach().float().cpu()
        if self.input_size is not None:
            fh, fw = self.input_size
            if h > fh or w > fw:
                raise UserError(f"the ONNX network was exported for {fh}x{fw} LR inputs and got {h}x{w}: set "
                                f"tile and tile_overlap so that tile + 2 * tile_overlap <= {min(fh, fw)}, or "
                                "export with dynamic sizes")
            pad = (0, fw - w, 0, fh - h)
            x = F.pad(x, pad, mode="reflect" if fw - w < w and fh - h < h else "replicate")
        out = self.session.run(None, {"lr": np.ascontiguousarray(x.numpy())})[0]
        return torch.from_numpy(out)[..., : self.scale * h, : self.scale * w]


def _meta_int(meta: dict[str, str], key: str, bounds: tuple[int, int], option: str, path: Path, fix: str) -> int:
    """An integer of the export's metadata (``sr_lightning.<key>``), within ``bounds``."""
    value = meta[f"{META}{key}"]
    if not re.fullmatch(r"\d{1,3}", value) or not bounds[0] <= int(value) <= bounds[1]:
        raise UserError(f"{option}='{path}': metadata {META}{key}={value!r} is not an integer in "
                        f"{bounds[0]}..{bounds[1]}; {fix}")
    return int(value)
