"""What a comparison figure shows: the HR image, a box in it, and each method's output with
its PSNR/SSIM, as uint8 arrays; crops are nearest-neighbour zoomed by an integer factor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sr_lightning.errors import UserError

# The crops' side in the figure and on the page when no zoom is given (HR pixels x zoom).
CROP_SIDE = 192


@dataclass(frozen=True)
class Box:
    """A region of the HR image in HR pixels: top row ``y``, left column ``x``, height ``h``, width ``w``."""

    y: int
    x: int
    h: int
    w: int

    def of(self, image: np.ndarray) -> np.ndarray:
        """The box's pixels of an (H, W, C) array."""
        return image[self.y: self.y + self.h, self.x: self.x + self.w]

    def check(self, height: int, width: int, scale: int, key: str = "box") -> None:
        """Refuse a box outside a ``height`` x ``width`` image or smaller than the scale.

        Raises:
            UserError: naming the image's size (as scored: modcropped to the scale).
        """
        size = f"the HR image is {width}x{height} (W x H, modcropped to x{scale})"
        if self.h < scale or self.w < scale:
            raise UserError(f"{key}=[{self.y}, {self.x}, {self.h}, {self.w}] is smaller than the scale x{scale}: a "
                            f"box shows at least one LR pixel, give h and w >= {scale} ({size})")
        if self.y < 0 or self.x < 0 or self.y + self.h > height or self.x + self.w > width:
            raise UserError(f"{key}=[{self.y}, {self.x}, {self.h}, {self.w}] ([y, x, h, w]) reaches outside the "
                            f"image: {size}; keep y + h <= {height} and x + w <= {width}")


def parse_box(value: object, key: str = "box") -> Box:
    """``[y, x, h, w]`` (four integers) as a :class:`Box`.

    Raises:
        UserError: anything else.
    """
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 4 \
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return Box(*(int(v) for v in value))
    raise UserError(f"{key}={value!r} must be [y, x, h, w]: four integers in HR pixels, e.g. {key}=[100,120,48,48]")


def zoom_for(box: Box, zoom: int | None = None) -> int:
    """The integer zoom of the crops: ``zoom``, or the one that makes the box's longer side
    about :data:`CROP_SIDE` pixels (at least 1)."""
    if zoom is None:
        return max(1, round(CROP_SIDE / max(box.h, box.w)))
    if not isinstance(zoom, int) or isinstance(zoom, bool) or zoom < 1:
        raise UserError(f"zoom={zoom!r} must be an integer >= 1 (or null: crops about {CROP_SIDE} pixels)")
    return zoom


def zoomed(crop: np.ndarray, zoom: int) -> np.ndarray:
    """Nearest-neighbour zoom of an (h, w, C) array: each pixel a ``zoom`` x ``zoom`` block."""
    return np.repeat(np.repeat(crop, zoom, axis=0), zoom, axis=1)


@dataclass(frozen=True)
class Method:
    """One method's output: ``label``; ``image`` uint8 (H, W, 3) or (H, W, 1), the output as
    scored (a Y network's in colour when the LR was made in colour: its Y with the LR's bicubic
    chroma, as its authors show it); ``psnr``, ``ssim`` of the whole image under the protocol."""

    label: str
    image: np.ndarray
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Comparison:
    """A figure's content: the ``name`` of the image, the ``scale``, the HR uint8 (H, W, C)
    (modcropped to the scale), the ``box``, the crops' integer ``zoom``, the ``methods`` in
    order, and ``notes`` on what is compared (a grayscale HR with RGB models)."""

    name: str
    scale: int
    hr: np.ndarray
    box: Box
    zoom: int
    methods: tuple[Method, ...]
    notes: tuple[str, ...] = ()

    def crops(self) -> list[tuple[str, np.ndarray]]:
        """``(label, zoomed crop)`` of the HR and of every method, in the figure's order."""
        return [("HR", zoomed(self.box.of(self.hr), self.zoom))] + [
            (m.label, zoomed(self.box.of(m.image), self.zoom)) for m in self.methods]

    def caption(self, method: Method) -> str:
        """The line under a method's crop: its PSNR (dB) / SSIM."""
        return f"{method.psnr:.2f} dB / {method.ssim:.4f}"
