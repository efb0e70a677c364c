"""The comparison figure as papers print it (matplotlib, no pyplot state): the HR image with
the box drawn, then one nearest-neighbour zoomed crop per method (and the HR's) with its name
and PSNR/SSIM underneath; as PNG or PDF bytes."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sr_lightning.comparison.panels import Comparison

CROP_INCHES = 1.9  # a crop's side in the figure
BOX_COLOUR = "#e6194b"


def _show(ax: object, image: np.ndarray) -> None:
    """An uint8 (H, W, C) array drawn pixel for pixel (nearest: never resampled smoothly)."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw(comparison: Comparison) -> Figure:
    """The figure: the HR image (the box in it) on the left, the crops in one or two rows."""
    crops = comparison.crops()
    rows = 2 if len(crops) > 3 else 1
    cols = math.ceil(len(crops) / rows)
    h, w = comparison.hr.shape[:2]
    box = comparison.box
    crop_aspect = box.w / box.h
    hr_width = rows * CROP_INCHES * (w / h)
    fig = Figure(figsize=(hr_width + cols * CROP_INCHES * crop_aspect + 0.3, rows * (CROP_INCHES + 0.45) + 0.1),
                 layout="constrained")
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[hr_width, *[CROP_INCHES * crop_aspect] * cols])
    ax = fig.add_subplot(grid[:, 0])
    _show(ax, comparison.hr)
    ax.add_patch(Rectangle((box.x - 0.5, box.y - 0.5), box.w, box.h, fill=False, edgecolor=BOX_COLOUR,
                           linewidth=1.5))
    ax.set_xlabel(f"{comparison.name} (x{comparison.scale})", fontsize=9)
    captions = ["(PSNR / SSIM)"] + [comparison.caption(m) for m in comparison.methods]
    for i, ((label, crop), caption) in enumerate(zip(crops, captions, strict=True)):
        ax = fig.add_subplot(grid[i // cols, 1 + i % cols])
        _show(ax, crop)
        ax.set_xlabel(f"{label}\n{caption}", fontsize=8)
    return fig


def figure_bytes(comparison: Comparison, fmt: str, dpi: int = 200) -> bytes:
    """The figure as ``fmt`` (``png`` or ``pdf``) bytes."""
    buf = io.BytesIO()
    # No time stamp or version in the file: the same comparison gives the same bytes.
    metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "Producer": None, "Creator": None}
    draw(comparison).savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()
