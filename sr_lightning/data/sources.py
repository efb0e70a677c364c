"""Where HR images come from: a folder of image files, or the bundled sample images.

A location is a folder path or ``sample:<split>`` (``train``, ``val``, ``test``): colour
photographs shipped inside scikit-image, so the default run needs no download.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_lightning.data.io import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    ImageReadError,
    image_pixels,
    list_images,
    open_header,
    open_image,
    oriented_size,
    read_image,
)
from sr_lightning.errors import UserError

# The fixed split of the bundled sample images (scikit-image's ``skimage.data``).
SAMPLE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left"),
    "val": ("coffee",),
    "test": ("chelsea", "rocket"),
}
SAMPLE_PREFIX = "sample:"
# Folders that hold a benchmark's HR images under the benchmark's own folder (EDSR's
# ``benchmark/Urban100/HR``, ``.../GTmod12``, SelfExSR's ``Urban100/image_SRF_4``): a test set
# given as one is named after its parent.
HR_SUBFOLDER = re.compile(r"hr|gt|gtmod\d+|original|image_srf_\d+", re.IGNORECASE)
# Huang et al.'s SelfExSR layout (where Urban100 is downloaded from): ``image_SRF_4`` holds
# ``img_001_SRF_4_HR.png`` beside its ``..._LR.png``; the LR files are not HR images.
HR_SUFFIX, LR_SUFFIX = "_HR", "_LR"


@dataclass(frozen=True)
class HRImage:
    """One HR image: ``pixels`` uint8 (H, W, C) with C = 1 (grayscale) or 3; ``source``: the
    file (or shard sample) it came from, for messages."""

    name: str
    pixels: np.ndarray
    source: str = ""


def _sample_image(name: str) -> np.ndarray:
    import skimage.data as skd

    if name == "motorcycle_left":
        return skd.stereo_motorcycle()[0]
    return getattr(skd, name)()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels * 255.0).astype(np.uint8)


SKIP_HINT = "remove it or set data.skip_bad_images=true to skip it"


def load_file(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> HRImage:
    """One HR image file (named after its stem), uint8, upright (see :func:`read_image`).

    Raises:
        ImageReadError: the file cannot be read as an image (the message names it).
    """
    pixels, _, _ = read_image(path, max_pixels)
    return HRImage(path.stem, _to_uint8(pixels), str(path))


def decode_image(name: str, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> HRImage:
    """An HR image from an encoded file's bytes (a shard sample), uint8, as :func:`load_file`."""
    with open_image(io.BytesIO(data), name, max_pixels) as im:
        pixels, _, _ = image_pixels(im, name)
    return HRImage(name, _to_uint8(pixels), name)


def skipped(err: ImageReadError, skip_bad_images: bool, hint: str = SKIP_HINT) -> None:
    """Warn that a bad image is skipped, or raise its error with ``hint`` (how to skip it)."""
    if not skip_bad_images:
        raise ImageReadError(f"{err}; {hint}") from None
    warnings.warn(f"skipping {err}", stacklevel=3)


def read_header(path: Path, skip_bad_images: bool = False, min_side: int = 1, max_pixels: int = MAX_IMAGE_PIXELS,
                decode: bool = False) -> tuple[tuple[int, int], bool] | None:
    """``((width, height), grayscale)`` of an image file from its header, upright (EXIF
    orientation applied); None for a bad file when ``skip_bad_images`` (with a warning).

    A file is bad when it cannot be read, when it is over ``max_pixels`` pixels, when a side
    is shorter than ``min_side`` (e.g. the scale), or, with ``decode``, when its data do not
    decode (a truncated file whose header reads).

    Raises:
        ImageReadError: a bad file, without ``skip_bad_images``.
    """
    try:
        with open_header(path, str(path), max_pixels) as im:
            (w, h), gray = oriented_size(im), im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")
        if min(w, h) < min_side:
            raise ImageReadError(f"image '{path}' ({w}x{h}) is too small: a side under {min_side} pixels")
        if decode:
            read_image(path, max_pixels)
    except ImageReadError as err:
        return skipped(err, skip_bad_images)
    return (w, h), gray


def location_files(location: str, key: str) -> list[Path]:
    """The image files of a folder location, sorted.

    Raises:
        FileNotFoundError: no such folder, or no image in it (the message names ``key``).
    """
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{key}: folder '{folder}' does not exist; set {key} to a folder of HR images")
    files = hr_files(list_images(folder))
    if not files:
        raise FileNotFoundError(
            f"{key}: folder '{folder}' contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def hr_files(files: list[Path]) -> list[Path]:
    """A folder's HR images: all of them, or where the names pair ``*_HR`` with ``*_LR``
    files (the SelfExSR layout of Urban100, Manga109, ...) the ``*_HR`` ones only."""
    stems = {f.stem for f in files}
    hr = [f for f in files if f.stem.endswith(HR_SUFFIX)]
    if hr and any(f.stem[: -len(HR_SUFFIX)] + LR_SUFFIX in stems for f in hr):
        return hr
    return files


def load_location(location: str, key: str, *, skip_bad_images: bool = False, min_side: int = 1,
                  max_pixels: int = MAX_IMAGE_PIXELS) -> list[HRImage]:
    """Load every HR image of a location.

    Args:
        location: a folder path, or ``sample:train|val|test``.
        key: the config key it came from (named in errors), e.g. ``data.train_dir``.
        skip_bad_images: skip bad files (unreadable, over ``max_pixels``, a side under
            ``min_side``) with a warning instead of failing.
        min_side: the shortest side an image may have (the scale: smaller ones have no LR).
        max_pixels: the pixel limit (``data.max_image_pixels``).
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
            image = load_file(f, max_pixels)
            h, w = image.pixels.shape[:2]
            if min(h, w) < min_side:
                raise ImageReadError(f"image '{f}' ({w}x{h}) is too small: a side under {min_side} pixels")
            images.append(image)
        except ImageReadError as err:
            skipped(err, skip_bad_images)
    if not images:
        raise FileNotFoundError(f"{key}: no readable image in '{Path(location).expanduser()}'")
    return images


def _looks_like_path(entry: str) -> bool:
    return any(c in entry for c in "/\\") or entry.startswith((".", "~"))


def resolve_test_set(entry: str, benchmark_dir: str | Path | None) -> tuple[str, str]:
    """A ``data.test_sets`` entry as ``(name, location)``.

    An entry is a benchmark name (``Set5``: the folder ``benchmark_dir/Set5``, matched
    case-insensitively when unambiguous), a folder path (named after the folder, or after
    its parent for an HR subfolder: ``Urban100/HR`` and ``Urban100/image_SRF_4`` are
    ``Urban100``), or ``sample:<split>``. The name picks the published row a results table shows.

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
        folder = folder.resolve()
        named = folder.parent if HR_SUBFOLDER.fullmatch(folder.name) else folder
        return named.name, str(folder)
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
