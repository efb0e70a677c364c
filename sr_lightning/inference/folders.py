"""Upscaling files and folders: which output each input gets (nothing is ever lost), and a
folder's run that goes on past a bad image and reports each one."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sr_lightning.data.io import MAX_IMAGE_PIXELS, list_images
from sr_lightning.errors import UserError
from sr_lightning.files import DiskFullError
from sr_lightning.inference.upscaler import Upscaler, tile_progress, upscale_file
from sr_lightning.progress import track

log = logging.getLogger(__name__)


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


def upscale_files(net: Upscaler, pairs: list[tuple[Path, Path]], tile: int | None = None, tile_overlap: int = 48,
                  progress: Mapping[str, Any] | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> list[Path]:
    """Upscale each (input, output) of :func:`output_pairs` (see
    :func:`~sr_lightning.inference.upscaler.upscale_file`); progress over the images (over the
    tiles for one image: ``progress`` holds ``every_s`` and ``when``). Returns the outputs.

    Raises:
        UserError: the one image failed, or (several images) those that failed, each named,
            after the others were written.
        DiskFullError: at once, for any image.
    """
    shown = track(pairs, len(pairs), "upscaling", "image", "images", progress, show=len(pairs) > 1)
    failed: list[str] = []
    for f, out in shown:  # one image: progress over its tiles
        try:
            upscale_file(net, f, out, tile, tile_overlap, tile_progress(f.name, progress) if len(pairs) == 1 else None,
                         max_pixels)
        except DiskFullError:
            raise
        except UserError as err:
            if len(pairs) == 1:
                raise
            log.error("failed: %s", err)
            failed.append(f"{f.name} ({err})")
    if failed:
        raise UserError(f"{len(failed)} of {len(pairs)} image(s) failed, the other {len(pairs) - len(failed)} "
                        f"written to '{pairs[0][1].parent}': {'; '.join(failed)}")
    return [out for _, out in pairs]
