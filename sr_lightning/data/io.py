"""Reading and writing images with Pillow, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr_lightning.atomic import write_atomically
from sr_lightning.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


class ImageReadError(UserError):
    """A file could not be read as an image; the message names it."""


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read any image Pillow can: RGB, L, RGBA, LA, P, 16-bit (I;16, I), CMYK, ...

    Returns:
        ``(pixels, alpha, max_value)``: pixels float64 (H, W, C) with C = 1 (grayscale) or
        3 (colour) in [0, 1]; alpha float64 (H, W) in [0, 1] or None; ``max_value`` is 255
        for 8-bit files and 65535 for 16-bit ones (to write the result back alike).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return image_pixels(im)
    except FileNotFoundError:
        raise ImageReadError(f"image file '{path}' does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read '{path}' as an image ({err})") from None


def image_pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """An open (loaded) Pillow image as :func:`read_image` returns it."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "I" and a.max(initial=0) <= 255:  # 8-bit data stored as 32-bit
            return np.clip(a, 0, 255)[..., None] / 255.0, None, 255
        return np.clip(a, 0, 65535)[..., None] / 65535.0, None, 65535
    if im.mode == "F":
        raise ImageReadError(f"'{im.filename}' holds floating-point pixels (mode F), which have no defined range")
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


def write_image(path: str | Path, pixels: np.ndarray, alpha: np.ndarray | None = None, max_value: int = 255) -> None:
    """Write (H, W, C) pixels atomically (no partial file on failure); the pixels as for
    :func:`pil_image`."""
    path = Path(path)
    im = pil_image(pixels, alpha, max_value)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"output '{path}' has no image extension Pillow can write (use e.g. .png)")
    write_atomically(path, lambda tmp: im.save(tmp, format=fmt))
