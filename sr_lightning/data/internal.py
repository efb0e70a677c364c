"""Training pairs from the test image itself: zero-shot SR (Shocher et al., "Zero-Shot
Super-Resolution using Deep Internal Learning", CVPR 2018), ``data.internal``.

Each training item is one pair: an *HR father*, a random crop of the image after one of the
paper's augmentations, and its *LR son*, the father downscaled by the scale with MATLAB
bicubic. The augmentations (the authors' release's probabilities): the crop as it is
(``leave_as_is``, 5 %); one of the 8 flips/rotations, no interpolation (45 %); else an
affine warp with bicubic interpolation: a scale drawn from [``min_scale``, 1], a
difference between the two axes' scales ~ N(0, ``scale_diff_sigma``), any rotation angle,
a shear ~ N(0, ``shear_sigma``) per axis and a random mirror. The father is ``crop``
pixels square, or the largest multiple of the scale that fits the (scaled) image; pixels a
warp brings from outside the image are mirrored (the release fills them with black).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from sr_lightning.data.datasets import batch_generator
from sr_lightning.data.io import read_image
from sr_lightning.errors import UserError
from sr_lightning.ops import imresize, rgb_to_y
from sr_lightning.ops.self_ensemble import transform
from sr_lightning.options import parse_options

MIN_SON = 8  # LR pixels a side of the smallest son


@dataclass(frozen=True)
class InternalOptions:
    """``data.internal``: the image and the augmentation (defaults: the authors' release)."""

    image: str
    crop: int = 128
    leave_as_is: float = 0.05
    no_interpolation: float = 0.45
    min_scale: float = 0.5
    scale_diff_sigma: float = 0.25
    shear_sigma: float = 0.1
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        if self.crop < 2 * MIN_SON:
            raise UserError(f"data.internal.crop={self.crop} must be >= {2 * MIN_SON}")
        for key in ("leave_as_is", "no_interpolation"):
            if not 0 <= getattr(self, key) <= 1:
                raise UserError(f"data.internal.{key}={getattr(self, key)} must be a probability in [0, 1]")
        if self.leave_as_is + self.no_interpolation > 1:
            raise UserError("data.internal: leave_as_is + no_interpolation must be <= 1 (the rest is affine warps)")
        if not 0 < self.min_scale <= 1:
            raise UserError(f"data.internal.min_scale={self.min_scale} must be in (0, 1]")
        for key in ("scale_diff_sigma", "shear_sigma", "noise_std"):
            if getattr(self, key) < 0:
                raise UserError(f"data.internal.{key}={getattr(self, key)} must be >= 0")

    @classmethod
    def from_config(cls, options: Any) -> InternalOptions:
        """The options from a (partial) mapping (:func:`~sr_lightning.options.parse_options`)."""
        if not dict(options).get("image"):
            raise UserError("data.internal.image is not set: give the image to learn from (experiment=zssr input=IMG)")
        return parse_options(cls, options, "data.internal")


def load_internal_image(path: str | Path, channels: int, scale: int) -> Tensor:
    """The image to learn from as (C, H, W) float in [0, 1] (C = ``channels``), checked to be
    large enough for a training pair at ``scale``."""
    pixels, _, _ = read_image(Path(path).expanduser())
    image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float()
    if channels == 1 and image.shape[0] == 3:
        image = rgb_to_y(image[None])[0]
    elif channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1).contiguous()
    h, w = image.shape[-2:]
    need = MIN_SON * scale
    if min(h, w) < need:
        raise UserError(f"input='{path}' is {w}x{h} pixels: zero-shot SR at x{scale} needs at least {need} pixels a "
                        f"side (an HR crop of {need} and its {MIN_SON}-pixel LR son); use a larger image or a "
                        "smaller scale")
    return image


class InternalPairs(Dataset):
    """Training batches of one (LR son, HR father) pair from ``image``.

    Item ``g`` is batch g of the run's training stream, drawn from :func:`batch_generator`
    ``(seed, g)`` alone: ``{"lr": (1, C, c/s, c/s), "hr": (1, C, c, c), "name": [stem],
    "scale": s}``, float32 in [0, 1].
    """

    def __init__(self, image: Tensor, name: str, scale: int, options: InternalOptions, length: int,
                 seed: int = 0) -> None:
        self.image, self.name, self.scale, self.opts = image, name, scale, options
        self.length, self.seed = length, seed

    def __len__(self) -> int:
        return self.length

    def _side(self, h: float, w: float) -> int:
        """The father's side: ``crop``, or the largest multiple of the scale inside h x w."""
        return max(MIN_SON * self.scale, min(self.opts.crop, int(min(h, w))) // self.scale * self.scale)

    def father(self, rng: torch.Generator) -> Tensor:
        """One augmented HR crop (C, c, c)."""
        o, img = self.opts, self.image
        u = float(torch.rand((), generator=rng))
        if u < o.leave_as_is + o.no_interpolation:
            if u >= o.leave_as_is:
                img = transform(img, int(torch.randint(0, 8, (), generator=rng)))
            h, w = img.shape[-2:]
            c = self._side(h, w)
            y = int(torch.randint(0, h - c + 1, (), generator=rng))
            x = int(torch.randint(0, w - c + 1, (), generator=rng))
            return img[:, y: y + c, x: x + c]
        return self._warp(rng)

    def _warp(self, rng: torch.Generator) -> Tensor:
        o, img = self.opts, self.image
        h, w = img.shape[-2:]
        low = max(o.min_scale, MIN_SON * self.scale / min(h, w))
        scale = low + (1 - low) * float(torch.rand((), generator=rng))
        diff = float(torch.randn((), generator=rng)) * o.scale_diff_sigma
        theta = 2 * math.pi * float(torch.rand((), generator=rng))
        shear = torch.randn(2, generator=rng) * o.shear_sigma
        mirror = 1.0 if float(torch.rand((), generator=rng)) < 0.5 else -1.0
        c = self._side(scale * h, scale * w)
        # Output (x, y) -> input (x, y), both in pixels about their centres: the inverse of
        # rotation @ shear @ (mirrored, anisotropic) scale.
        sx, sy = mirror * max(scale + diff / 2, 1e-3), max(scale - diff / 2, 1e-3)
        forward = (torch.tensor([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
                   @ torch.tensor([[1.0, float(shear[0])], [float(shear[1]), 1.0]])
                   @ torch.tensor([[sx, 0.0], [0.0, sy]]))
        inverse = torch.linalg.inv(forward)
        # A random centre in the input (continuous coordinates: pixel i spans [i, i + 1)), far
        # enough from the border for an unrotated crop; output pixel centres about the crop's.
        half = c / (2 * scale)
        cy = half + (h - 2 * half) * float(torch.rand((), generator=rng)) if h > 2 * half else h / 2
        cx = half + (w - 2 * half) * float(torch.rand((), generator=rng)) if w > 2 * half else w / 2
        ax = torch.arange(c, dtype=torch.float32) - (c - 1) / 2
        gy, gx = torch.meshgrid(ax, ax, indexing="ij")
        src = inverse @ torch.stack([gx.flatten(), gy.flatten()])  # (2, c*c) input offsets (x, y)
        nx, ny = 2 * (src[0] + cx) / w - 1, 2 * (src[1] + cy) / h - 1  # grid_sample's [-1, 1] (align_corners=False)
        grid = torch.stack([nx, ny], dim=-1).view(1, c, c, 2)
        out = F.grid_sample(img[None], grid, mode="bicubic", padding_mode="reflection", align_corners=False)
        return out[0].clamp(0, 1)

    def __getitem__(self, g: int) -> dict:
        rng = batch_generator(self.seed, g)
        hr = self.father(rng).contiguous()
        lr = imresize(hr[None], 1 / self.scale).clamp(0, 1)
        if self.opts.noise_std:
            lr = (lr + torch.randn(lr.shape, generator=rng) * self.opts.noise_std).clamp(0, 1)
        return {"lr": lr, "hr": hr[None], "name": [self.name], "scale": self.scale}
