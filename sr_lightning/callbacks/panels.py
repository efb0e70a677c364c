"""Image panels for the dashboards: LR | bicubic | SR | HR | error map, and zoomed crops.

Pure functions on tensors; uint8 (H, W, 3) numpy arrays out, ready for any logger.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from sr_lightning.ops.color import rgb_to_y

# Heat-map colour stops (black -> purple -> orange -> yellow -> white) for the error map.
_STOPS = np.array([[0, 0, 0], [87, 16, 110], [229, 92, 48], [252, 254, 164], [255, 255, 255]], dtype=np.float64)


def heat_map(error: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8, a fixed colour scale."""
    x = np.clip(error, 0.0, 1.0) * (len(_STOPS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_STOPS) - 2)
    t = (x - lo)[..., None]
    return np.round(_STOPS[lo] * (1 - t) + _STOPS[lo + 1] * t).astype(np.uint8)


def _rgb(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1], C = 1 or 3 -> (H, W, 3) uint8."""
    x = x.detach().float().clamp(0, 1).cpu()
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return np.round(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _y(x: Tensor) -> Tensor:
    return rgb_to_y(x.float()) if x.shape[0] == 3 else x.float()


def panel(lr: Tensor, bicubic: Tensor, sr: Tensor, hr: Tensor, *, error_max: float = 0.1,
          crop: int = 48) -> np.ndarray:
    """Two rows: LR (nearest-neighbour upscaled) | bicubic | SR | HR | |SR - HR| on Y as a heat map
    (0 -> black, ``error_max`` or more -> white), then a centre crop of ``crop`` HR pixels of
    each, zoomed to the tile size. Inputs (C, h, w) / (C, H, W) in [0, 1]; out (2H', 5W, 3) uint8.
    """
    h, w = hr.shape[-2:]
    lr_up = F.interpolate(lr[None].float(), size=(h, w), mode="nearest")[0]
    error = (_y(sr) - _y(hr)).abs()[0].cpu().numpy() / error_max
    tiles = [_rgb(lr_up), _rgb(bicubic), _rgb(sr), _rgb(hr), heat_map(error)]
    c = min(crop, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    zoom = max(1, w // c)
    crops = [t[y0: y0 + c, x0: x0 + c].repeat(zoom, 0).repeat(zoom, 1) for t in tiles]
    crops = [np.pad(t, ((0, 0), (0, w - t.shape[1]), (0, 0))) for t in crops]
    return np.concatenate([np.concatenate(tiles, axis=1), np.concatenate(crops, axis=1)], axis=0)


def thumbnail(x: Tensor, size: int = 128) -> np.ndarray:
    """(C, H, W) in [0, 1] -> uint8 (h, w, 3) with the longer side at most ``size``."""
    h, w = x.shape[-2:]
    f = min(1.0, size / max(h, w))
    if f < 1.0:
        x = F.interpolate(x[None].float(), scale_factor=f, mode="area")[0]
    return _rgb(x)


