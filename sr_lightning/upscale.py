"""Upscale images with a trained checkpoint:
``python -m sr_lightning.upscale ckpt_path=PATH input=IMG output=OUT.png`` (or folders).

Any image Pillow reads works (RGB, L, RGBA, P, 16-bit). A network trained on Y upscales
colour images the standard way: SR on Y, MATLAB bicubic on Cb/Cr, back to RGB. Alpha is
upscaled with bicubic. Outputs are written atomically: a failure leaves no partial file.
``backend=onnx ckpt_path=FILE.onnx`` runs a network exported by ``python -m
sr_lightning.export`` with onnxruntime instead, tiled the same way.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from sr_lightning.callbacks import track
from sr_lightning.checkpoint import config_trusted_nets, read_checkpoint, rescale_overrides
from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.data.io import (
    MAX_IMAGE_PIXELS,
    check_max_pixels,
    check_writable,
    list_images,
    read_image,
    write_image,
)
from sr_lightning.errors import UserError
from sr_lightning.files import DiskFullError
from sr_lightning.lit import SRLitModule
from sr_lightning.onnx_net import OnnxNet
from sr_lightning.ops import imresize, rgb_to_ycbcr, ycbcr_to_rgb
from sr_lightning.ops.self_ensemble import self_ensemble
from sr_lightning.tiling import Box, tiled_forward

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
        ycbcr = rgb_to_ycbcr(image)
        y = net.fn(ycbcr[:, :1]).to(image.device)
        cbcr = imresize(ycbcr[:, 1:], net.scale)
        out = ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
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


def output_pairs(src: Path, dst: Path, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """The (input, output) files of an upscale, checked so that nothing is lost: no output is
    an input, no two inputs share an output, no existing file is replaced unless
    ``overwrite``. A folder's outputs are ``<stem>.png`` in ``dst``; inputs sharing a stem
    (``photo.jpg``, ``photo.png``) are written as ``<stem>_<ext>.png``.

    Raises:
        FileNotFoundError: no images, or no output folder.
        UserError: an output that is an input, shared, or existing without ``overwrite``.
    """
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise FileNotFoundError(f"input='{src}' contains no images")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"output='{dst}' is a file but input is a folder; give a folder as output")
        stems = Counter(f.stem.lower() for f in files)
        pairs = [(f, dst / (f"{f.stem}.png" if stems[f.stem.lower()] == 1 else f"{f.stem}_{f.suffix[1:]}.png"))
                 for f in files]
    else:
        if dst.is_dir():
            dst = dst / f"{src.stem}.png"
        if not dst.parent.is_dir():
            raise FileNotFoundError(f"output='{dst}': folder '{dst.parent}' does not exist")
        pairs = [(src, dst)]
    inputs = {f.resolve() for f, _ in pairs}
    outputs = Counter(out.resolve() for _, out in pairs)
    for _, out in pairs:
        if out.resolve() in inputs:
            raise UserError(f"output '{out}' is an input image, which upscale never replaces; give another output "
                            f"file or folder")
        if outputs[out.resolve()] > 1:
            raise UserError(f"two inputs would be written to '{out}'; rename one of them")
        if out.exists() and not overwrite:
            raise UserError(f"output '{out}' exists; set overwrite=true to replace it, or give another output")
    return pairs


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``mps``, or ``auto`` (cuda when available, else cpu)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_upscaler(path: str | Path, backend: str = "pytorch", device: str = "auto", scale: int | None = None,
                  ensemble: bool = False, trusted_nets: Collection[str] = ()) -> Upscaler:
    """The network a file holds, ready to upscale: a checkpoint run in PyTorch on ``device``,
    or (``backend="onnx"``) an exported ONNX file run by onnxruntime on the CPU.

    Args:
        scale: None (the network's) or another scale a scale-agnostic checkpoint was trained for.
        ensemble: the x8 self-ensemble.
        trusted_nets: network classes of the user's own a checkpoint may name.
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
    if Path(path).suffix.lower() == ".onnx":
        raise UserError(f"ckpt_path='{path}' is an ONNX file: add backend=onnx to run it with onnxruntime")
    ckpt = read_checkpoint(path, "ckpt_path", trusted_nets)
    overrides = rescale_overrides(ckpt, int(scale), "scale", trusted_nets) if scale is not None else {}
    module = SRLitModule.load_from_checkpoint(ckpt, resolve_device(device), net_overrides=overrides,
                                              trusted_nets=trusted_nets).eval()
    return pytorch_upscaler(module, ensemble)


def upscale(cfg: DictConfig) -> list[Path]:
    """Upscale ``cfg.input`` (a file or a folder) into ``cfg.output``; returns the files written."""
    src, dst = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"input='{src}' does not exist; give an image file or a folder of images")
    ensemble = cfg.get("self_ensemble", False)
    if not isinstance(ensemble, bool):
        raise UserError(f"self_ensemble={ensemble!r} must be true or false")
    net = load_upscaler(cfg.ckpt_path, cfg.get("backend", "pytorch"), cfg.get("device", "auto"), cfg.get("scale"),
                        ensemble, config_trusted_nets(cfg))
    overwrite = cfg.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise UserError(f"overwrite={overwrite!r} must be true or false")
    max_pixels = check_max_pixels(cfg.get("max_image_pixels", MAX_IMAGE_PIXELS), "max_image_pixels")
    pairs = output_pairs(src, dst, overwrite)
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    shown = track(pairs, len(pairs), "upscaling", "image", "images", cfg.get("progress"), show=len(pairs) > 1)
    failed: list[str] = []
    for f, out in shown:  # one image: progress over its tiles
        try:
            upscale_file(net, f, out, cfg.get("tile"), cfg.get("tile_overlap", 48),
                         tile_progress(f.name, cfg.get("progress")) if len(pairs) == 1 else None, max_pixels)
        except DiskFullError:
            raise
        except UserError as err:
            if len(pairs) == 1:
                raise
            log.error("failed: %s", err)
            failed.append(f"{f.name} ({err})")
    if failed:
        raise UserError(f"{len(failed)} of {len(pairs)} image(s) failed, the other {len(pairs) - len(failed)} "
                        f"written to '{dst}': {'; '.join(failed)}")
    return [out for _, out in pairs]


@hydra.main(version_base="1.3", config_path="conf", config_name="upscale")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    written = upscale(cfg)
    print(f"wrote {len(written)} image(s): {written[0] if len(written) == 1 else written[0].parent}")


def cli() -> None:
    """``python -m sr_lightning.upscale`` and the ``sr-upscale`` console script."""
    sys.argv = prepare_argv(sys.argv)  # numeric choices quoted; plugins present
    main()


if __name__ == "__main__":
    cli()
