"""Reading and writing images with Pillow, with errors that name the file.

Every image sr_lightning reads (training, evaluation, upscale, shards) is opened by
:func:`open_image`: the header is checked against a pixel limit before anything is decoded
(a decompression bomb, or a few bytes claiming a huge size, is refused naming the file and
the option that raises the limit), and the EXIF orientation tag is applied, so pixels are
the way the file's owner sees them (a phone photo tagged "rotate 90" is read upright).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_lightning.errors import UserError
from sr_lightning.files import write_atomically

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


# The largest image read by default, in pixels (width x height): 2^27, e.g. 16384 x 8192, more
# than any camera's photo. Options raise it: data.max_image_pixels, upscale's max_image_pixels.
MAX_IMAGE_PIXELS = 2**27
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPED = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


class ImageReadError(UserError):
    """A file could not be read as an image; the message names it."""


def _pillow_open(source: str | Path | IO[bytes]) -> Image.Image:
    """``Image.open`` with Pillow's own bomb check (a warning over 89 megapixels, an error
    over 179) left to :func:`check_size`, which names the file and the option."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def _named_errors(name: str) -> Iterator[None]:
    """Pillow's errors on a file it cannot open or decode, as one :class:`ImageReadError` naming it."""
    try:
        yield
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"image file '{name}' does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"cannot read '{name}' as an image ({err})") from None


def _orientation(im: Image.Image, header_only: bool = False) -> int:
    """The EXIF orientation tag (1: as stored). ``header_only``: without decoding (a PNG's EXIF
    is read when it comes before the pixel data, where Pillow writes it)."""
    if header_only and im.format == "PNG" and "exif" not in im.info:
        return 1
    return im.getexif().get(_EXIF_ORIENTATION, 1)


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of an open image as shown, after its EXIF orientation (header only)."""
    return (im.height, im.width) if _orientation(im, header_only=True) in _SWAPPED else im.size


def check_size(im: Image.Image, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels, before decoding.

    Raises:
        ImageReadError: over the limit (the message names the file and the option).
    """
    w, h = im.size
    if w * h > max_pixels:
        raise ImageReadError(f"'{name}' claims {w}x{h} = {w * h / 1e6:.0f} megapixels, over the limit of "
                             f"{max_pixels / 1e6:.0f} (max_image_pixels; a decompression bomb, or a damaged header); "
                             f"raise max_image_pixels (data.max_image_pixels in training) if the image is real")


@contextmanager
def open_header(source: str | Path | IO[bytes], name: str, max_pixels: int = MAX_IMAGE_PIXELS
                ) -> Iterator[Image.Image]:
    """An image opened (its header read, nothing decoded) and size-checked (:func:`check_size`).

    Args:
        source: a path or a binary file object.
        name: what messages call it (the path, or a shard sample's key).
        max_pixels: the pixel limit.

    Raises:
        ImageReadError: not an image, over the limit, or missing; the message names ``name``.
    """
    with _named_errors(name):
        im = _pillow_open(source)
    with im:
        check_size(im, name, max_pixels)
        yield im


@contextmanager
def open_image(source: str | Path | IO[bytes], name: str, max_pixels: int = MAX_IMAGE_PIXELS
               ) -> Iterator[Image.Image]:
    """:func:`open_header`, then decoded (a truncated file fails here, naming ``name``) and
    turned upright by its EXIF orientation (``ImageOps.exif_transpose``)."""
    with open_header(source, name, max_pixels) as im:
        with _named_errors(name):
            im.load()
            upright = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
        yield upright


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read any image Pillow can: RGB, L, RGBA, LA, P, 16-bit (I;16, I), CMYK, ... upright
    (EXIF orientation applied), at most ``max_pixels`` pixels.

    Returns:
        ``(pixels, alpha, max_value)``: pixels float64 (H, W, C) with C = 1 (grayscale) or
        3 (colour) in [0, 1]; alpha float64 (H, W) in [0, 1] or None; ``max_value`` is 255
        for 8-bit files and 65535 for 16-bit ones (to write the result back alike).

    Raises:
        ImageReadError: see :func:`open_image`.
    """
    path = Path(path)
    with open_image(path, str(path), max_pixels) as im:
        return image_pixels(im, str(path))


def image_pixels(im: Image.Image, name: str = "") -> tuple[np.ndarray, np.ndarray | None, int]:
    """An open (loaded) Pillow image as :func:`read_image` returns it (``name``: for messages)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "I" and a.max(initial=0) <= 255:  # 8-bit data stored as 32-bit
            return np.clip(a, 0, 255)[..., None] / 255.0, None, 255
        return np.clip(a, 0, 65535)[..., None] / 65535.0, None, 65535
    if im.mode == "F":
        where = name or getattr(im, "filename", "")
        raise ImageReadError(f"'{where}' holds floating-point pixels (mode F), which have no defined range")
    alpha = None
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.float64) / 255.0
        im = im.convert("RGB" if im.mode != "LA" else "L")
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    a = np.asarray(im, dtype=np.float64) / 255.0
    return (a[..., None] if a.ndim == 2 else a), alpha, 255


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def pil_image(pixels: np.ndarray, alpha: np.ndarray | None = None, max_value: int = 255) -> Image.Image:
    """(H, W, C) pixels (C = 1 or 3) as a Pillow image: float in [0, 1], or already quantised:
    uint8 (as is) or uint16 (16-bit grayscale). ``max_value=65535`` makes float grayscale
    16-bit (Pillow has no 16-bit RGB mode, so 16-bit colour becomes 8-bit). ``alpha``: (H, W)
    float in [0, 1] (8-bit images only)."""
    if pixels.dtype == np.uint16 and pixels.shape[-1] == 1:
        return Image.fromarray(pixels[..., 0])
    if pixels.dtype != np.uint8 and max_value == 65535 and pixels.shape[-1] == 1:
        return Image.fromarray(np.round(np.clip(pixels[..., 0], 0.0, 1.0) * 65535).astype(np.uint16))
    u8 = pixels if pixels.dtype == np.uint8 else np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    im = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
    if alpha is not None:
        im.putalpha(Image.fromarray(np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)))
    return im


def check_max_pixels(value: object, key: str) -> int:
    """A pixel-limit option (``data.max_image_pixels``, ``max_image_pixels``), checked."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}={value!r} must be a positive integer (pixels, width x height)")
    return value


def _format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise UserError(f"output '{path}' has no image extension Pillow can write (use e.g. .png)")
    return fmt


def check_writable(path: str | Path, channels: int, alpha: bool = False, max_value: int = 255) -> None:
    """Refuse, before any work, an output whose format cannot hold such an image (alpha or
    16-bit grayscale in a JPEG, say): a 1x1 image of the same mode is saved to memory.

    Raises:
        UserError: naming the output, what the format lacks and an extension that keeps it.
    """
    path = Path(path)
    fmt = _format(path)
    probe = pil_image(np.zeros((1, 1, channels)), np.zeros((1, 1)) if alpha else None, max_value)
    try:
        probe.save(io.BytesIO(), format=fmt)
    except (OSError, KeyError, ValueError, TypeError):
        what = "an alpha channel" if alpha else f"{probe.mode} pixels" + (" (16 bits)" if max_value == 65535 else "")
        raise UserError(f"output '{path}': {fmt} cannot hold {what}; write .png (or .tif) to keep them") from None


def write_image(path: str | Path, pixels: np.ndarray, alpha: np.ndarray | None = None, max_value: int = 255) -> None:
    """Write (H, W, C) pixels atomically (no partial file on failure; a full disk is one
    line naming the file); the pixels as for :func:`pil_image`.

    Raises:
        UserError: a format that cannot hold the image (see :func:`check_writable`).
        DiskFullError: no room for it.
    """
    path = Path(path)
    check_writable(path, pixels.shape[-1], alpha is not None, 65535 if pixels.dtype == np.uint16 else max_value)
    im = pil_image(pixels, alpha, max_value)
    fmt = _format(path)
    write_atomically(path, lambda tmp: im.save(tmp, format=fmt))
