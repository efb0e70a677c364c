"""A network ready to upscale images: a checkpoint's (PyTorch) or an exported one (onnxruntime),
and upscaling an image with it, tile by tile, channels bridged.

A network trained on Y upscales colour images the standard way: SR on Y, MATLAB bicubic on
Cb/Cr, back to RGB; an RGB network upscales a grayscale image as gray RGB. Alpha is upscaled
with bicubic. Outputs are written atomically: a failure leaves no partial file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr_lightning.checkpoint import Checkpoint
from sr_lightning.convert.importer import read_model
from sr_lightning.data.io import MAX_IMAGE_PIXELS, check_writable, read_image, write_image
from sr_lightning.errors import UserError
from sr_lightning.inference.onnx_runner import OnnxNet
from sr_lightning.inference.tiling import Box, tiled_forward
from sr_lightning.lit import SRLitModule, load_module
from sr_lightning.ops import imresize
from sr_lightning.ops.color import colour_of, rgb_to_y
from sr_lightning.ops.self_ensemble import self_ensemble
from sr_lightning.progress import track
from sr_lightning.settings import apply_settings, resolve_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upscaler:
    """What upscaling needs of a network: ``fn`` (1, C, h, w) float in [0, 1] on ``device``
    -> (1, C, s*h, s*w) unclamped, its channels C (1 = Y, 3 = RGB) and scale s."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    channels: int
    scale: int
    device: torch.device = torch.device("cpu")


def pytorch_upscaler(module: SRLitModule, ensemble: bool = False) -> Upscaler:
    """A checkpoint's network (``ensemble``: its x8 self-ensemble)."""
    fn = partial(module.forward_ensemble, option="self_ensemble") if ensemble else module
    return Upscaler(fn, module.net.in_channels, module.scale, module.device)


def onnx_upscaler(net: OnnxNet, ensemble: bool = False) -> Upscaler:
    """An exported ONNX network run by onnxruntime on the CPU (``ensemble``: x8 self-ensemble)."""
    if ensemble:
        size = net.input_size
        if size is not None and size[0] != size[1]:
            raise UserError(f"self_ensemble=true: the ONNX network was exported for {size[0]}x{size[1]} inputs, which "
                            "its rotations do not fit; export it at a square size or with dynamic sizes")
        return Upscaler(partial(self_ensemble, net), net.in_channels, net.scale)
    return Upscaler(net, net.in_channels, net.scale)


@torch.inference_mode()
def upscale_tensor(net: Upscaler, image: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) float in [0, 1] (C = 1 or 3) -> (1, C, s*h, s*w) float in [0, 1].

    Bridges the image's channels and the network's: a Y network on RGB works on Y and
    upscales Cb/Cr with bicubic; an RGB network on grayscale averages its output.
    """
    image = image.to(net.device, torch.float32)
    if net.channels == image.shape[1]:
        out = net.fn(image)
    elif net.channels == 1:  # colour image, Y network
        out = colour_of(net.fn(rgb_to_y(image)).to(image.device), image)
    else:  # grayscale image, RGB network
        out = net.fn(image.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
    return out.clamp(0.0, 1.0)


TileProgress = Callable[[list[Box]], Iterable[Box]]


def upscale_pixels(net: Upscaler, pixels: np.ndarray, alpha: np.ndarray | None = None, max_value: int = 255,
                   tile: int | None = None, tile_overlap: int = 48,
                   progress: TileProgress | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Upscale an image as :func:`~sr_lightning.data.io.read_image` returns it, tile by tile when
    tiled (the same as on the whole image when the overlap covers the network's receptive
    field); memory is bounded by the tile, the output kept as integers.

    Args:
        pixels: (H, W, C) float in [0, 1], C = 1 or 3.
        alpha: (H, W) float in [0, 1] or None (upscaled with bicubic).
        max_value: 255 (8-bit) or 65535 (16-bit grayscale: the output keeps 16 bits).
        progress: reports progress over the tiles (see :func:`tiled_forward`).

    Returns:
        ``(sr, alpha)``: sr (s*H, s*W, C) uint8 (uint16 for 16-bit grayscale); alpha (s*H, s*W)
        float in [0, 1] or None.
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).unsqueeze(0)
    levels = 65535 if (max_value == 65535 and pixels.shape[-1] == 1) else 255

    def quantized(t: torch.Tensor) -> torch.Tensor:  # the whole pipeline per tile, stored as integers
        q = torch.round(upscale_tensor(net, t) * levels).cpu()
        return q.to(torch.uint8) if levels == 255 else q.to(torch.int32)

    sr = tiled_forward(quantized, x, net.scale, tile, tile_overlap, progress)[0].permute(1, 2, 0).numpy()
    sr = sr if levels == 255 else sr.astype(np.uint16)
    if alpha is not None:
        alpha = imresize(torch.from_numpy(alpha), net.scale).clamp(0, 1).numpy()
    return sr, alpha


def tile_progress(name: str, settings: Mapping[str, Any] | None = None) -> TileProgress:
    """Progress over one image's tiles: a bar on a terminal, else plain lines (``settings``:
    ``every_s``, ``when``)."""
    return lambda boxes: track(boxes, len(boxes), f"upscaling {name}", "tile", "tiles", settings,
                               show=len(boxes) > 1)


def upscale_file(net: Upscaler, src: Path, dst: Path, tile: int | None = None, tile_overlap: int = 48,
                 progress: TileProgress | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Upscale one image file into ``dst`` (written atomically; see :func:`upscale_pixels`).

    Raises:
        ImageReadError: ``src`` is not an image, or is over ``max_pixels``.
        UserError: ``dst``'s format cannot hold the result (alpha or 16 bits in a JPEG), or
            the one pass of ``tile=null`` runs out of memory (the message says to tile).
    """
    pixels, alpha, max_value = read_image(src, max_pixels)
    check_writable(dst, pixels.shape[-1], alpha is not None, max_value)
    try:
        sr, alpha = upscale_pixels(net, pixels, alpha, max_value, tile, tile_overlap, progress)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
        if tile is not None or not is_out_of_memory(err):
            raise
        h, w = pixels.shape[:2]
        raise UserError(f"out of memory upscaling '{src}' ({w}x{h}) in one pass (tile=null): set tile=256 "
                        f"(or smaller) to run it tile by tile with the same result") from None
    write_image(dst, sr, alpha, max_value)
    log.info("%s (%dx%d) -> %s (%dx%d)", src, pixels.shape[1], pixels.shape[0], dst, sr.shape[1], sr.shape[0])


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure (the CPU's or a GPU's)."""
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError | MemoryError) or any(
        s in text for s in ("can't allocate memory", "not enough memory", "out of memory", "Cannot allocate memory"))


def load_upscaler(path: str | Path | Checkpoint, backend: str = "pytorch", device: str = "auto",
                  scale: int | None = None, ensemble: bool = False, trusted_nets: Collection[str] = (),
                  architecture: str | None = None) -> Upscaler:
    """The network a file holds, ready to upscale: a checkpoint (a path, or one already read)
    run in PyTorch on ``device``, or (``backend="onnx"``) an exported ONNX file run by
    onnxruntime on the CPU.

    Args:
        scale: None (the network's) or another scale a scale-agnostic checkpoint was trained for.
        ensemble: the x8 self-ensemble.
        trusted_nets: network classes of the user's own a checkpoint may name.
        architecture: the network of a bare weights file that several fit.
    """
    if backend == "onnx":
        if device not in ("auto", "cpu"):
            raise UserError(f"backend=onnx runs on the CPU (onnxruntime); drop device={device} or use "
                            "backend=pytorch")
        net = OnnxNet(path)
        if scale is not None and int(scale) != net.scale:
            raise UserError(f"scale={scale}: the ONNX network '{path}' upscales x{net.scale} only; "
                            f"drop scale or export the checkpoint at x{scale}")
        return onnx_upscaler(net, ensemble)
    if backend != "pytorch":
        raise UserError(f"backend={backend!r} is not one of ('pytorch', 'onnx')")
    if not isinstance(path, Checkpoint) and Path(path).suffix.lower() == ".onnx":
        raise UserError(f"ckpt_path='{path}' is an ONNX file: add backend=onnx to run it with onnxruntime")
    ckpt = path if isinstance(path, Checkpoint) else read_model(path, "ckpt_path", trusted_nets, architecture, scale)
    settings = apply_settings(resolve_settings({"channels_last": ckpt.module_arguments["channels_last"]}, device,
                                                 option="device"))
    module = load_module(ckpt, device=settings.device,
                         net_overrides=ckpt.rescale(int(scale), "scale") if scale is not None else None).eval()
    return pytorch_upscaler(module, ensemble)
