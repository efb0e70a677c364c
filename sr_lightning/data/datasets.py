"""Datasets of LR/HR pairs: random aligned patches for training, whole images for eval.

Items are dicts ``{"lr": (C, h, w), "hr": (C, s*h, s*w), "name": str}`` of float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sr_lightning.data.pairs import Degradation, make_lr, modcrop, to_channels
from sr_lightning.data.sources import HRImage


class PairSet:
    """LR/HR pairs of a list of HR images, made once (LR cached in memory and optionally on disk)."""

    def __init__(self, images: Sequence[HRImage], *, scale: int, channels: int, degradation: Degradation,
                 cache_dir: str | Path | None = None) -> None:
        self.names: list[str] = []
        self.lr: list[Tensor] = []
        self.hr: list[Tensor] = []
        for img in images:
            hr = modcrop(img.pixels, scale)
            if min(hr.shape[:2]) < scale:
                h, w = img.pixels.shape[:2]
                raise ValueError(f"image '{img.name}' ({w}x{h}) is too small for x{scale}")
            lr = make_lr(hr, scale, degradation, cache_dir)
            self.names.append(img.name)
            self.hr.append(to_channels(torch.from_numpy(np.array(hr)).permute(2, 0, 1), channels))
            self.lr.append(to_channels(lr, channels))

    def __len__(self) -> int:
        return len(self.names)


class EvalDataset(Dataset):
    """Whole images, in order (batch them with batch_size=1: sizes differ).

    Items carry ``pad=False``; an index past the end (a distributed sampler's filler)
    returns a real image with ``pad=True``, which the metrics skip.
    """

    def __init__(self, pairs: PairSet) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        pad, i = i >= len(self.pairs), i % len(self.pairs)
        return {"lr": self.pairs.lr[i], "hr": self.pairs.hr[i], "name": self.pairs.names[i], "pad": pad}


SAMPLE_BY = ("image", "area")


class PatchDataset(Dataset):
    """``length`` random aligned patches (``patch_size`` LR pixels square) with random flips
    and 90-degree rotations. ``sample_by="image"`` draws every image equally often,
    ``"area"`` in proportion to its size (every pixel equally often)."""

    def __init__(self, pairs: PairSet, *, scale: int, patch_size: int, length: int, augment: bool = True,
                 sample_by: str = "image") -> None:
        if sample_by not in SAMPLE_BY:
            raise ValueError(f"data.sample_by={sample_by!r} is not one of {SAMPLE_BY}")
        for name, lr in zip(pairs.names, pairs.lr, strict=True):
            if min(lr.shape[-2:]) < patch_size:
                h, w = (scale * d for d in lr.shape[-2:])
                raise ValueError(
                    f"training image '{name}' ({w}x{h} after modcrop) is smaller than the patch: "
                    f"data.patch_size={patch_size} LR pixels x scale {scale} = {patch_size * scale} HR pixels; "
                    f"lower data.patch_size or remove the image"
                )
        self.pairs, self.scale, self.patch_size, self.length, self.augment = pairs, scale, patch_size, length, augment
        self.weights = torch.tensor([float(lr.shape[-1] * lr.shape[-2]) if sample_by == "area" else 1.0
                                     for lr in pairs.lr])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        k = int(torch.multinomial(self.weights, 1))
        lr_img, hr_img, p, s = self.pairs.lr[k], self.pairs.hr[k], self.patch_size, self.scale
        y = int(torch.randint(0, lr_img.shape[-2] - p + 1, ()))
        x = int(torch.randint(0, lr_img.shape[-1] - p + 1, ()))
        lr = lr_img[:, y: y + p, x: x + p]
        hr = hr_img[:, s * y: s * (y + p), s * x: s * (x + p)]
        if self.augment:
            flip, rot = torch.randint(0, 2, ()).item(), torch.randint(0, 4, ()).item()
            if flip:
                lr, hr = lr.flip(-1), hr.flip(-1)
            if rot:
                lr, hr = lr.rot90(rot, (-2, -1)), hr.rot90(rot, (-2, -1))
        return {"lr": lr.contiguous(), "hr": hr.contiguous(), "name": self.pairs.names[k]}
