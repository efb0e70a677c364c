"""Where HR images come from: a folder of image files, or the bundled sample images.

A location is a folder path or ``sample:<split>`` (``train``, ``val``, ``test``): colour
photographs shipped inside scikit-image, so the default run needs no download.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_lightning.data.io import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image

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
            raise ValueError(f"{key}={location!r}: unknown sample split; use one of "
                             + ", ".join(SAMPLE_PREFIX + s for s in SAMPLE_SPLITS))
        return [HRImage(n, _sample_image(n)) for n in SAMPLE_SPLITS[split]]
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{key}: folder '{folder}' does not exist; set {key} to a folder of HR images")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(
            f"{key}: folder '{folder}' contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    images = []
    for f in files:
        try:
            pixels, _, _ = read_image(f)
        except ImageReadError as err:
            if not skip_bad_images:
                raise ImageReadError(f"{err}; remove it or set data.skip_bad_images=true to skip it") from None
            warnings.warn(f"skipping {err}", stacklevel=2)
            continue
        images.append(HRImage(f.stem, _to_uint8(pixels)))
    if not images:
        raise FileNotFoundError(f"{key}: no readable image in '{folder}'")
    return images
