"""Tiled inference: any image size with bounded memory, same output as one pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor

from sr_lightning.errors import UserError

# A tile's core in LR pixels: (y0, x0, y1, x1).
Box = tuple[int, int, int, int]


def tiled_forward(fn: Callable[[Tensor], Tensor], lr: Tensor, scale: int, tile: int | None,
                  overlap: int = 48, progress: Callable[[list[Box]], Iterable[Box]] | None = None) -> Tensor:
    """Apply ``fn`` ((N, C, h, w) -> (N, C, s*h, s*w)) tile by tile.

    The LR image is cut into ``tile`` x ``tile`` cores; each is run with ``overlap`` LR pixels
    of context on every side (less at the image border, where the network sees the real
    border as in one pass) and only its core is kept. When ``overlap`` covers the
    network's receptive field (in LR pixels, the bicubic pre-upsampling's 2 included), the
    result equals one pass up to float rounding. ``tile=None`` or an image no larger than a
    tile: one pass. Networks that downsample inside (the U-Net) need ``tile`` and
    ``overlap`` to be multiples of their total stride.

    Args:
        fn: the network (or any LR -> SR function).
        lr: (N, C, h, w).
        scale: the upscaling factor of ``fn``.
        tile: the core size in LR pixels, or None.
        overlap: context on each side, in LR pixels.
        progress: called with the tiles' core boxes ``(y0, x0, y1, x1)``, returns them as it
            reports progress (e.g. :func:`~sr_lightning.callbacks.track`); only when tiled.

    Returns:
        (N, C, s*h, s*w), the dtype ``fn`` returns.

    A 3x3 convolution sees 1 LR pixel around each output; with that much overlap, 8x8 tiles
    of a 20x28 image give the one-pass result:

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PixelShuffle(2))
    >>> lr = torch.rand(1, 1, 20, 28)
    >>> with torch.no_grad():
    ...     bool(torch.allclose(tiled_forward(net, lr, 2, tile=8, overlap=1), net(lr), atol=1e-6))
    True
    """
    if tile is not None and (tile < 1 or overlap < 0):
        raise UserError(f"tile={tile} must be >= 1 and tile_overlap={overlap} >= 0")
    h, w = lr.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return fn(lr)
    s, out = scale, None
    boxes = [(y0, x0, min(y0 + tile, h), min(x0 + tile, w)) for y0 in range(0, h, tile) for x0 in range(0, w, tile)]
    for y0, x0, y1, x1 in (progress(boxes) if progress is not None else boxes):
        ya, xa, yb, xb = max(0, y0 - overlap), max(0, x0 - overlap), min(h, y1 + overlap), min(w, x1 + overlap)
        sr = fn(lr[..., ya:yb, xa:xb])
        if out is None:
            out = sr.new_empty(*lr.shape[:-2], s * h, s * w)
        core = sr[..., s * (y0 - ya): s * (y1 - ya), s * (x0 - xa): s * (x1 - xa)]
        out[..., s * y0: s * y1, s * x0: s * x1] = core
    return out
