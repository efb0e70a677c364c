"""Datasets of LR/HR pairs: batches of random aligned patches for training, whole images
for evaluation. LR/HR are float32 in [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sr_lightning.data.io import MAX_IMAGE_PIXELS
from sr_lightning.data.pairs import Degradation, degradation_input, make_lr, modcrop, to_channels
from sr_lightning.data.sources import HRImage, load_file, read_header
from sr_lightning.errors import UserError


def make_pair(img: HRImage, scale: int, degradation: Degradation, cache_dir: str | Path | None = None,
              lr: bool = True) -> tuple[Tensor, Tensor | None]:
    """One image's HR (modcropped, as the degradation takes it: uint8 (C', H, W)) and its LR
    (uint8 or float32 (C', H/s, W/s)), the LR read from/written to ``cache_dir``; ``lr=False``:
    the HR only (None for the LR: an online degradation makes it per batch)."""
    hr = modcrop(img.pixels, scale)
    if min(hr.shape[:2]) < scale:
        h, w = img.pixels.shape[:2]
        raise UserError(f"image '{img.source or img.name}' ({w}x{h}) is too small for x{scale}")
    x = degradation_input(hr, degradation)
    return x, make_lr(x, scale, degradation, cache_dir) if lr else None


class Pairs:
    """What the datasets read of a set of LR/HR pairs: ``names``, ``gray``, ``lr_size(i)``,
    and each pair whole or cropped, converted to ``channels`` float32 on access. Subclasses
    say where image ``i``'s stored pair (:func:`make_pair`'s HR, LR) comes from. Without
    ``lr`` (training under an online degradation) no LR is made: the LR given is zeros of its
    shape, which the degradation replaces on the device."""

    scale: int
    channels: int
    names: list[str]
    gray: list[bool]
    lr: bool = True

    def __len__(self) -> int:
        return len(self.names)

    def lr_size(self, i: int) -> tuple[int, int]:
        """(h, w) of LR image ``i``."""
        raise NotImplementedError

    def _stored(self, i: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def pair(self, i: int) -> tuple[Tensor, Tensor]:
        """LR (channels, h, w) and HR (channels, s*h, s*w), float32 in [0, 1]."""
        lr, hr, _ = self.pair_and_colour(i)
        return lr, hr

    def pair_and_colour(self, i: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """:meth:`pair` from one read of the image, and for a Y network (``channels`` 1) on a
        colour image kept in colour (an RGB degradation) its LR (3, h, w) and HR (3, s*h, s*w);
        None for a grayscale image, an RGB network, or an LR made from the Y."""
        hr, lr = self._stored(i)
        colour = (to_channels(lr, 3), to_channels(hr, 3)) \
            if self.channels == 1 and lr is not None and lr.shape[0] == 3 else None
        return self._lr_of(lr, *self.lr_size(i)), to_channels(hr, self.channels), colour

    def crop(self, i: int, y: int, x: int, size: int) -> tuple[Tensor, Tensor]:
        """The LR window ``[y:y+size, x:x+size]`` of image ``i`` and its HR region, as :meth:`pair`."""
        hr, lr = self._stored(i)
        s = self.scale
        return (self._lr_of(None if lr is None else lr[:, y: y + size, x: x + size], size, size),
                to_channels(hr[:, s * y: s * (y + size), s * x: s * (x + size)], self.channels))

    def _lr_of(self, lr: Tensor | None, h: int, w: int) -> Tensor:
        return torch.zeros(self.channels, h, w) if lr is None else to_channels(lr, self.channels)


class PairSet(Pairs):
    """LR/HR pairs of a list of HR images at one scale, made once.

    Images are kept as the degradation made them (uint8 HR, uint8 or float32 LR, in the
    degradation's channels) and converted to ``channels`` float32 on access, so a large
    training set (DIV2K) takes a quarter of the memory float32 copies would. LR images
    are cached on disk too when ``cache_dir`` is given. ``gray[i]`` is True for a
    grayscale source image.
    """

    def __init__(self, images: Sequence[HRImage], *, scale: int, channels: int, degradation: Degradation,
                 cache_dir: str | Path | None = None, lr: bool = True) -> None:
        self.scale, self.channels, self.lr = scale, channels, lr
        self.names: list[str] = []
        self.gray: list[bool] = []
        self._lr: list[Tensor | None] = []
        self._hr: list[Tensor] = []
        for img in images:
            hr, lr_ = make_pair(img, scale, degradation, cache_dir, lr)
            self.names.append(img.name)
            self.gray.append(img.pixels.shape[-1] == 1)
            self._hr.append(hr)
            self._lr.append(lr_)

    def lr_size(self, i: int) -> tuple[int, int]:
        """(h, w) of LR image ``i``."""
        h, w = self._hr[i].shape[-2:]
        return h // self.scale, w // self.scale

    def _stored(self, i: int) -> tuple[Tensor, Tensor | None]:
        return self._hr[i], self._lr[i]


class DiskPairSet(Pairs):
    """:class:`Pairs` over image files, read on demand (``data.storage=disk``).

    Setup reads only the files' headers (size, grayscale; with ``skip_bad_images`` each file
    is decoded once too, so that a bad one is skipped then); :meth:`pair` and :meth:`crop`
    decode the image and make its pair then, in whichever process asks (the DataLoader
    workers), with the same degradation and LR cache, so memory does not grow with the set.
    """

    def __init__(self, files: Sequence[Path], *, scale: int, channels: int, degradation: Degradation,
                 cache_dir: str | Path | None = None, skip_bad_images: bool = False,
                 max_pixels: int = MAX_IMAGE_PIXELS, lr: bool = True) -> None:
        self.scale, self.channels, self.degradation, self.cache_dir = scale, channels, degradation, cache_dir
        self.lr = lr
        self.max_pixels = max_pixels
        self.files: list[Path] = []
        self.names: list[str] = []
        self.gray: list[bool] = []
        self._lr_sizes: list[tuple[int, int]] = []
        for f in files:
            # Skipping bad images means knowing them now: each is decoded once (a truncated
            # file's header reads; its data would fail mid-training).
            header = read_header(f, skip_bad_images, min_side=scale, max_pixels=max_pixels, decode=skip_bad_images)
            if header is None:
                continue
            (w, h), gray = header
            self.files.append(f)
            self.names.append(f.stem)
            self.gray.append(gray)
            self._lr_sizes.append((h // scale, w // scale))

    def lr_size(self, i: int) -> tuple[int, int]:
        """(h, w) of LR image ``i``."""
        return self._lr_sizes[i]

    def _stored(self, i: int) -> tuple[Tensor, Tensor | None]:
        return make_pair(load_file(self.files[i], self.max_pixels), self.scale, self.degradation, self.cache_dir,
                         self.lr)


class EvalDataset(Dataset):
    """Whole images, in order (batch them with batch_size=1: sizes differ).

    Items are ``{"lr": (C, h, w), "hr": (C, s*h, s*w), "name": str, "gray": bool, "pad": bool}``,
    and for a Y network (C = 1) on a colour image kept in colour also ``"lr_rgb"`` (3, h, w)
    and ``"hr_rgb"`` (3, s*h, s*w) (``evaluation.y_output=rgb`` scores with them).
    An index past the end (a distributed sampler's filler) returns a real image with
    ``pad=True``, which the metrics skip.
    """

    def __init__(self, pairs: Pairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        pad, i = i >= len(self.pairs), i % len(self.pairs)
        lr, hr, colour = self.pairs.pair_and_colour(i)
        item = {"lr": lr, "hr": hr, "name": self.pairs.names[i], "gray": self.pairs.gray[i], "pad": pad}
        return item if colour is None else {**item, "lr_rgb": colour[0], "hr_rgb": colour[1]}


SAMPLE_BY = ("image", "area")


def random_patch(pairs: Pairs, k: int, p: int, rng: torch.Generator,
                 augment: bool) -> tuple[Tensor, Tensor]:
    """An aligned LR/HR patch of image ``k`` at a random place (LR side ``p``), with a random
    flip and 90-degree rotation when ``augment``: (C, p, p) and (C, s*p, s*p) float32."""
    h, w = pairs.lr_size(k)
    y = int(torch.randint(0, h - p + 1, (), generator=rng))
    x = int(torch.randint(0, w - p + 1, (), generator=rng))
    lr, hr = pairs.crop(k, y, x, p)
    if augment:
        flip, rot = (int(v) for v in torch.randint(0, 4, (2,), generator=rng))
        if flip % 2:
            lr, hr = lr.flip(-1), hr.flip(-1)
        if rot:
            lr, hr = lr.rot90(rot, (-2, -1)), hr.rot90(rot, (-2, -1))
    return lr, hr


def batch_generator(seed: int, index: int) -> torch.Generator:
    """The random generator of batch ``index`` of a run's training stream: seeded from
    ``(seed, index)`` alone (numpy's SeedSequence mixes them), so a batch holds the same
    patches whichever process or DataLoader worker makes it."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


class PatchBatches(Dataset):
    """Batches of ``batch_size`` random aligned patches, with random flips and 90-degree
    rotations. Each batch is one scale, drawn uniformly from ``pairs``' scales (multi-scale
    training as in VDSR); use it with ``DataLoader(batch_size=None)``.

    Item ``g`` is batch g of the run's training stream: everything random in it comes from
    :func:`batch_generator` ``(seed, g)``, so it depends on nothing else (not the process,
    the worker, or what was drawn before). ``length`` is the number of batches an epoch
    takes from the stream; indices go on past it in later epochs.

    Items are ``{"lr": (B, C, p, p), "hr": (B, C, s*p, s*p), "name": list[str], "scale": s}``
    with p = ``patch_sizes[s]`` LR pixels. ``sample_by="image"`` draws every image equally
    often, ``"area"`` in proportion to its size (every pixel equally often).
    """

    def __init__(self, pairs: Mapping[int, Pairs], *, patch_sizes: Mapping[int, int], batch_size: int,
                 length: int, seed: int = 0, augment: bool = True, sample_by: str = "image") -> None:
        if sample_by not in SAMPLE_BY:
            raise UserError(f"data.sample_by={sample_by!r} is not one of {SAMPLE_BY}")
        for s, pairset in pairs.items():
            p = patch_sizes[s]
            for i, name in enumerate(pairset.names):
                if min(pairset.lr_size(i)) < p:
                    h, w = (s * d for d in pairset.lr_size(i))
                    raise UserError(
                        f"training image '{name}' ({w}x{h} after modcrop) is smaller than the x{s} patch: "
                        f"{p} LR pixels x {s} = {p * s} HR pixels; lower data.patch_size "
                        f"(or data.patch_size_hr) or remove the image"
                    )
        self.pairs, self.patch_sizes, self.scales = dict(pairs), dict(patch_sizes), sorted(pairs)
        self.batch_size, self.length, self.seed, self.augment = batch_size, length, seed, augment
        self.weights = {s: torch.tensor([float(ps.lr_size(i)[0] * ps.lr_size(i)[1]) if sample_by == "area" else 1.0
                                         for i in range(len(ps))]) for s, ps in self.pairs.items()}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, g: int) -> dict:
        rng = batch_generator(self.seed, g)
        s = self.scales[int(torch.randint(0, len(self.scales), (), generator=rng))]
        pairs, p = self.pairs[s], self.patch_sizes[s]
        picks = torch.multinomial(self.weights[s], self.batch_size, replacement=True, generator=rng).tolist()
        lrs, hrs = zip(*(random_patch(pairs, k, p, rng, self.augment) for k in picks), strict=True)
        return {"lr": torch.stack(lrs), "hr": torch.stack(hrs), "name": [pairs.names[k] for k in picks], "scale": s}
