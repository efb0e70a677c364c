"""The Python API: a trained network from a file, and what the command line does with it.

``model = sr_lightning.load("x.ckpt")`` (a checkpoint of ``sr_lightning.train`` or
``sr_lightning.convert``, or an ``.onnx`` file of ``sr_lightning.export``), then
``model.upscale(image)`` and ``model.evaluate(["Set5"])``: the functions
``python -m sr_lightning.upscale`` and ``python -m sr_lightning.eval`` run.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from sr_lightning.checkpoint import Checkpoint
from sr_lightning.convert.importer import read_model
from sr_lightning.data.io import image_pixels, pil_image, read_image
from sr_lightning.errors import UserError
from sr_lightning.inference import Upscaler, load_upscaler, tile_progress, tiled_forward, upscale_pixels, upscale_tensor

# ``load(device=...)`` as Lightning's trainer.accelerator (for evaluate).
ACCELERATORS = {"cuda": "gpu"}
ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class SRModel:
    """A network loaded by :func:`load`: ``scale``, ``channels`` (1: a Y network, 3: RGB),
    ``path`` and ``backend`` (``pytorch`` or ``onnx``); ``checkpoint`` (the file as read, for
    a PyTorch one), ``device`` and ``self_ensemble``, which :meth:`evaluate` uses too."""

    upscaler: Upscaler
    path: Path
    backend: str
    checkpoint: Checkpoint | None = None
    device: str = "auto"
    self_ensemble: bool = False

    @property
    def scale(self) -> int:
        return self.upscaler.scale

    @property
    def channels(self) -> int:
        return self.upscaler.channels

    def upscale(self, image: str | Path | ImageLike, *, tile: int | None = 256, tile_overlap: int = 48,
                progress: bool = False) -> Image.Image | ImageLike:
        """Upscale an image by :attr:`scale`, as ``python -m sr_lightning.upscale`` does: tile by
        tile (bounded memory; ``tile=None``: one pass), a Y network upscaling a colour image's
        Y (Cb/Cr and alpha by bicubic), an RGB network a grayscale one.

        Args:
            image: a file path (returns a PIL image); a PIL image (any mode Pillow reads:
                returns RGB, RGBA, L or 16-bit I;16); a uint8/uint16 array (H, W) or
                (H, W, C) (returns one alike); or a float tensor (C, H, W) or (N, C, H, W) in
                [0, 1], C = 1 or 3 (returns float32 on its device, same rank).
            tile: LR pixels of each tile's core (None: one pass).
            tile_overlap: LR pixels of context around each tile.
            progress: show progress over the tiles.
        """
        if isinstance(image, torch.Tensor):
            return self._upscale_tensor(image, tile, tile_overlap)
        if isinstance(image, str | Path):
            pixels, alpha, max_value = read_image(image)
            name = Path(image).name
        elif isinstance(image, Image.Image):
            pixels, alpha, max_value = image_pixels(image)
            name = "image"
        elif isinstance(image, np.ndarray):
            out = np.asarray(self.upscale(_array_image(image), tile=tile, tile_overlap=tile_overlap,
                                          progress=progress))
            return out[..., None] if image.ndim == 3 and out.ndim == 2 else out
        else:
            raise UserError(f"upscale(image): a {type(image).__name__} is not an image; give a path, a PIL image, a "
                            f"uint8/uint16 array or a float tensor in [0, 1]")
        sr, alpha = upscale_pixels(self.upscaler, pixels, alpha, max_value, tile, tile_overlap,
                                   tile_progress(name) if progress else None)
        return pil_image(sr, alpha, max_value)

    def _upscale_tensor(self, x: torch.Tensor, tile: int | None, tile_overlap: int) -> torch.Tensor:
        if not x.is_floating_point() or x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
            raise UserError(f"upscale(tensor): got {x.dtype} of shape {tuple(x.shape)}; give a float tensor (C, H, W) "
                            f"or (N, C, H, W) in [0, 1] with C = 1 or 3")
        batch = x if x.ndim == 4 else x.unsqueeze(0)
        fn = partial(upscale_tensor, self.upscaler)
        out = torch.cat([tiled_forward(fn, batch[i: i + 1].float(), self.scale, tile, tile_overlap)
                         for i in range(batch.shape[0])]).to(x.device)
        return out if x.ndim == 4 else out[0]

    def evaluate(self, test_sets: str | Sequence[str], *, overrides: Sequence[str] = (),
                 output_dir: str | Path | None = None, show_table: bool = True) -> dict[str, dict[str, float]]:
        """Score the network on test sets as ``python -m sr_lightning.eval`` does (the
        literature's protocol: Y channel, border shaved, uint8; ``overrides`` as on its command
        line, e.g. ``["evaluation.gray=rgb"]``), on the device it was loaded for and as loaded
        (``self_ensemble=True``: the x8 self-ensemble is scored); the table is printed.

        Args:
            test_sets: benchmark names under ``$SR_DATA_DIR/benchmark`` (``Set5``) or folders of
                HR images.
            output_dir: where ``metrics.json`` goes (None: a temporary folder, removed).
            show_table: print the results table (as the command does).

        Returns:
            ``{set: {"psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "num_images", ...}}``.
        """
        if self.backend != "pytorch":
            raise UserError(f"evaluate() runs checkpoints; '{self.path}' is an {self.backend} file (evaluate the "
                            f"checkpoint it was exported from)")
        from sr_lightning.cli import composed, quoted
        from sr_lightning.eval import evaluate

        sets = [test_sets] if isinstance(test_sets, str) else list(test_sets)
        args = [f"ckpt_path={quoted(self.path)}", f"data.test_sets=[{','.join(quoted(s) for s in sets)}]",
                f"data.scale={self.scale}", f"trainer.accelerator={ACCELERATORS.get(self.device, self.device)}",
                f"evaluation.self_ensemble={str(self.self_ensemble).lower()}", *overrides]
        quiet = contextlib.nullcontext() if show_table else contextlib.redirect_stdout(io.StringIO())
        with tempfile.TemporaryDirectory() as tmp, composed("eval", args, output_dir or tmp) as cfg, quiet:
            results, _ = evaluate(cfg, self.checkpoint)
        return results


def load(path: str | Path, *, device: str = "auto", scale: int | None = None, self_ensemble: bool = False,
         trusted_nets: Collection[str] = (), architecture: str | None = None) -> SRModel:
    """A trained network from a file: a ``.ckpt`` (run in PyTorch on ``device``: ``auto``,
    ``cpu``, ``cuda``, ``mps``) or an ``.onnx`` export (onnxruntime, CPU). Nothing in the
    file is unpickled or imported (docs/security.md).

    Args:
        scale: None (the network's) or another scale a scale-agnostic checkpoint (SRCNN,
            VDSR) was trained for.
        self_ensemble: the x8 self-ensemble (8x the time; the papers' "+" rows).
        trusted_nets: network classes of your own (dotted paths) the checkpoint may name.
        architecture: the network of a bare weights file (``.pth``, ``.safetensors``) that
            several fit (the error names them).
    """
    path = Path(path).expanduser()
    if path.suffix.lower() == ".onnx":
        return SRModel(load_upscaler(path, "onnx", device, scale, self_ensemble), path.resolve(), "onnx",
                       device=device, self_ensemble=self_ensemble)
    checkpoint = read_model(path, "path", list(trusted_nets), architecture, scale)
    upscaler = load_upscaler(checkpoint, "pytorch", device, scale, self_ensemble)
    return SRModel(upscaler, path.resolve(), "pytorch", checkpoint, device, self_ensemble)


def _array_image(a: np.ndarray) -> Image.Image:
    """A uint8/uint16 (H, W[, C]) array as a PIL image."""
    if a.dtype not in (np.uint8, np.uint16) or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise UserError(f"upscale(array): got {a.dtype} of shape {a.shape}; give uint8 (H, W), (H, W, 3) or (H, W, 4), "
                        f"or uint16 (H, W); float data as a tensor in [0, 1]")
    if a.dtype == np.uint16 and a.ndim == 3:
        raise UserError("upscale(array): 16-bit arrays must be grayscale (H, W); convert colour to uint8")
    return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a)


__all__ = ["SRModel", "load"]
