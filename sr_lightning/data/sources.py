"""Where HR images come from: a folder of image files, or the bundled sample images.

A location is a folder path or ``sample:<split>`` (``train``, ``val``, ``test``): colour
photographs shipped inside scikit-image, so the default run needs no download.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sr_lightning.data.io import IMAGE_EXTENSIONS, ImageReadError, image_pixels, list_images, read_image
from sr_lightning.errors import UserError

# The fixed split of the bundled sample images (scikit-image's ``skimage.data``).
SAMPLE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left"),
    "val": ("coffee",),
    "test": ("chelsea", "rocket"),
}
SAMPLE_PREFIX = "sample:"


@dataclass(frozen=True)
class HRImage:
    """One HR image: ``pixels`` uint8 (H, W, C) with C = 1 (grayscale) or 3."""

    name: str
    pixels: np.ndarray


def _sample_image(name: str) -> np.ndarray:
    import skimage.data as skd

    if name == "motorcycle_left":
        return skd.stereo_motorcycle()[0]
    return getattr(skd, name)()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels * 255.0).astype(np.uint8)


def load_file(path: Path) -> HRImage:
    """One HR image file (named after its stem), uint8.

    Raises:
        ImageReadError: the file cannot be read as an image (the message names it).
    """
    pixels, _, _ = read_image(path)
    return HRImage(path.stem, _to_uint8(pixels))


def decode_image(name: str, data: bytes) -> HRImage:
    """An HR image from an encoded file's bytes (a shard sample), uint8, as :func:`load_file`."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        pixels, _, _ = image_pixels(im)
    return HRImage(name, _to_uint8(pixels))


def read_header(path: Path, skip_bad_images: bool = False) -> tuple[tuple[int, int], bool] | None:
    """``((width, height), grayscale)`` of an image file from its header (nothing decoded);
    None for an unreadable file when ``skip_bad_images`` (with a warning).

    Raises:
        ImageReadError: an unreadable file, without ``skip_bad_images``.
    """
    try:
        with Image.open(path) as im:
            return im.size, im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")
    except (OSError, SyntaxError, ValueError) as err:
        message = f"cannot read '{path}' as an image ({err})"
        if not skip_bad_images:
            raise ImageReadError(f"{message}; remove it or set data.skip_bad_images=true to skip it") from None
        warnings.warn(f"skipping {message}", stacklevel=2)
        return None


def location_files(location: str, key: str) -> list[Path]:
    """The image files of a folder location, sorted.

    Raises:
        FileNotFoundError: no such folder, or no image in it (the message names ``key``).
    """
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{key}: folder '{folder}' does not exist; set {key} to a folder of HR images")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(
            f"{key}: folder '{folder}' contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def load_location(location: str, key: str, *, skip_bad_images: bool = False) -> list[HRImage]:
    """Load every HR image of a location.

    Args:
        location: a folder path, or ``sample:train|val|test``.
        key: the config key it came from (named in errors), e.g. ``data.train_dir``.
        skip_bad_images: skip unreadable files with a warning instead of failing.
    """
    if location.startswith(SAMPLE_PREFIX):
        split = location[len(SAMPLE_PREFIX):]
        if split not in SAMPLE_SPLITS:
            raise UserError(f"{key}={location!r}: unknown sample split; use one of "
                             + ", ".join(SAMPLE_PREFIX + s for s in SAMPLE_SPLITS))
        return [HRImage(n, _sample_image(n)) for n in SAMPLE_SPLITS[split]]
    images = []
    for f in location_files(location, key):
        try:
            images.append(load_file(f))
        except ImageReadError as err:
            if not skip_bad_images:
                raise ImageReadError(f"{err}; remove it or set data.skip_bad_images=true to skip it") from None
            warnings.warn(f"skipping {err}", stacklevel=2)
    if not images:
        raise FileNotFoundError(f"{key}: no readable image in '{Path(location).expanduser()}'")
    return images


def _looks_like_path(entry: str) -> bool:
    return any(c in entry for c in "/\\") or entry.startswith((".", "~"))


def resolve_test_set(entry: str, benchmark_dir: str | Path | None) -> tuple[str, str]:
    """A ``data.test_sets`` entry as ``(name, location)``.

    An entry is a benchmark name (``Set5``: the folder ``benchmark_dir/Set5``, matched
    case-insensitively when unambiguous), a folder path (named after the folder), or
    ``sample:<split>``.

    Raises:
        FileNotFoundError: the name resolves to no folder; the message lists the folders
            found under ``benchmark_dir``.
    """
    if entry.startswith(SAMPLE_PREFIX):
        return entry[len(SAMPLE_PREFIX):] if entry != "sample:test" else "sample", entry
    if _looks_like_path(entry):
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"data.test_sets: folder '{folder}' does not exist")
        return folder.resolve().name, str(folder)
    if not benchmark_dir or not Path(benchmark_dir).expanduser().is_dir():
        raise FileNotFoundError(
            f"data.test_sets: {entry!r} is looked up in data.benchmark_dir='{benchmark_dir}', which does not exist; "
            f"set SR_DATA_DIR (or paths.data_dir) to the folder that holds benchmark/{entry}, or give a folder path"
        )
    root = Path(benchmark_dir).expanduser()
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if entry in found:
        return entry, str(root / entry)
    folded = [f for f in found if f.lower() == entry.lower()]
    if len(folded) == 1:
        return folded[0], str(root / folded[0])
    raise FileNotFoundError(
        f"data.test_sets: {entry!r} is not a folder under '{root}' (found: {', '.join(found) or 'no folders'}); "
        f"fix the name, put the set's HR images in '{root / entry}', or give a folder path"
    )
