"""The LightningDataModule: HR locations in, LR/HR batches out."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from sr_lightning.data.datasets import DiskPairSet, EvalDataset, Pairs, PairSet, PatchBatches
from sr_lightning.data.internal import InternalOptions, InternalPairs, load_internal_image
from sr_lightning.data.io import MAX_IMAGE_PIXELS, check_max_pixels
from sr_lightning.data.pairs import Degradation
from sr_lightning.data.realesrgan import RealESRGAN
from sr_lightning.data.shards import ShardOptions, ShardPatches, location_url, read_index
from sr_lightning.data.sources import SAMPLE_PREFIX, HRImage, load_location, location_files, resolve_test_set
from sr_lightning.errors import UserError
from sr_lightning.options import parse_options

STORAGES = ("memory", "disk")


log = logging.getLogger(__name__)


class FlaggedPaddingSampler(DistributedSampler):
    """Sequential shards, every image counted once: rank r gets indices r, r+W, r+2W, ...

    Ranks must see equally many batches, so shorter shards are filled with indices past
    the end of the dataset, which :class:`EvalDataset` serves flagged ``pad=True`` and the
    metrics skip. (Lightning's default sampler pads with repeated images, which would
    count them twice in the per-image mean.)
    """

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        own = list(range(self.rank, n, self.num_replicas))
        return iter(own + [n + k for k in range(len(self) - len(own))])

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.num_replicas)


class PatchStreamSampler(DistributedSampler):
    """This process's indices into the run's stream of training batches (:class:`PatchBatches`).

    The stream is one sequence of batches for the whole run, dealt out to the processes in
    turn: at its step t (counted over the run) rank r of W trains batch ``t * W + r``. So
    every process trains different patches; a run is the same for the same seed and world
    size whatever ``num_workers``; and W processes train, step by step, the batches W
    consecutive single-process steps would. An epoch is ceil(length / W) steps; each
    iteration starts at ``position()``, the steps this process has trained so far
    (Lightning's loop counter, which a resumed run restores), so a resumed run goes on with
    the batches an uninterrupted run would have trained next.
    """

    def __init__(self, dataset: PatchBatches, *, num_replicas: int, rank: int,
                 position: Callable[[], int] = lambda: 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.steps = -(-len(dataset) // num_replicas)
        self.position = position

    def __iter__(self) -> Iterator[int]:
        first = self.position()
        return iter(t * self.num_replicas + self.rank for t in range(first, first + self.steps))

    def __len__(self) -> int:
        return self.steps


def lr_patch_side(scale: int, patch_size: int, patch_size_hr: int | None = None) -> int:
    """The LR side of a training patch at ``scale``: ``patch_size``, or with ``patch_size_hr``
    the HR side divided by the scale, rounded half up (at least 1).

    >>> lr_patch_side(4, 24, 250), lr_patch_side(2, 24, 96), lr_patch_side(3, 24)
    (63, 48, 24)
    """
    return max(1, int(patch_size_hr / scale + 0.5)) if patch_size_hr else int(patch_size)


class SRDataModule(L.LightningDataModule):
    """LR/HR pairs for training (random patches) and evaluation (whole images).

    Evaluation batches are ``{"lr": (1, C, h, w), "hr": (1, C, s*h, s*w), "name", "gray",
    "pad"}``, training batches ``{"lr": (B, C, p, p), "hr": (B, C, s*p, s*p), "name",
    "scale"}``; float32 in [0, 1], C = ``channels``.

    Args:
        train_dir: HR training images: a folder, a list of folders (used together), or
            ``sample:train``.
        val_dir: HR validation images: a folder or ``sample:val`` (None: no validation).
        test_sets: test sets: benchmark names resolved under ``benchmark_dir`` (``Set5``),
            folder paths, or ``sample:test``.
        test_dirs: more test sets, name -> folder.
        benchmark_dir: where named test sets live (``${paths.data_dir}/benchmark``).
        scale: integer upscaling factor (validation, test, and training by default).
        train_scales: train on batches of these scales (one scale per batch, drawn
            uniformly; multi-scale training as in VDSR); None: ``[scale]``.
        channels: 1 (Y of BT.601) or 3 (RGB).
        patch_size: training patch side in LR pixels.
        patch_size_hr: if set, the patch side in HR pixels instead: the LR side is
            ``patch_size_hr / s`` rounded half up for each training scale s (:func:`lr_patch_side`).
        batch_size: training batch size per process (DDP: global = this x processes).
        steps_per_epoch: training batches per epoch, all processes together (each of W DDP
            processes makes ceil(steps_per_epoch / W) steps an epoch).
        num_workers: DataLoader workers.
        degradation: how LR is made (see :class:`Degradation`); with a ``realesrgan`` entry
            (``data/degradation=realesrgan``), training batches' LR are made from their HR
            on the model's device by :class:`~sr_lightning.data.realesrgan.RealESRGAN`
            (evaluation sets keep the bicubic LR), and marked ``"degraded": True``.
        cache_dir: where LR images are cached on disk (None: memory only).
        skip_bad_images: skip bad image files with a warning (unreadable, truncated, over
            ``max_image_pixels``, or a side shorter than the scale).
        max_image_pixels: the largest image read, in pixels (a header claiming more is refused
            before decoding: a decompression bomb).
        augment: random flips and 90-degree rotations of training patches.
        sample_by: draw training patches from every image equally often (``"image"``) or
            in proportion to image area (``"area"``).
        storage: ``memory`` decodes every image of a folder at setup and keeps the pairs
            (small sets: sample, T91, 291); ``disk`` reads only the headers at setup and
            decodes an image when a patch of it is drawn, in the DataLoader workers (memory
            independent of the set's size; the LR cache makes later reads cheap).
        seed: the seed of the training batches (see :class:`PatchStreamSampler`); None: the
            run's seed (``PL_GLOBAL_SEED``, which ``seed_everything`` sets), else 0.
        shards: train from WebDataset shards at ``train_dir`` (a folder made by ``python -m
            sr_lightning.prepare``, an http(s) URL of one, or a ``pipe:`` command with
            ``{name}``): ``{"patches_per_image", "shuffle_buffer", "timeout_s"}`` (see
            :class:`~sr_lightning.data.shards.ShardPatches`). None: ``train_dir`` is folders.
        internal: train on one image alone, zero-shot SR (``data=zssr``): ``{"image": path,
            ...}`` (see :class:`~sr_lightning.data.internal.InternalOptions`); batches of one
            (LR son, HR father) pair made from the image itself. ``train_dir`` must be null.
    """

    def __init__(
        self,
        *,
        train_dir: str | Sequence[str] | None = "sample:train",
        val_dir: str | None = "sample:val",
        test_sets: Sequence[str] = (),
        test_dirs: Mapping[str, str] | None = None,
        benchmark_dir: str | None = None,
        scale: int = 2,
        train_scales: Sequence[int] | None = None,
        channels: int = 1,
        patch_size: int = 24,
        patch_size_hr: int | None = None,
        batch_size: int = 16,
        steps_per_epoch: int = 100,
        num_workers: int = 0,
        degradation: Mapping | None = None,
        cache_dir: str | None = None,
        skip_bad_images: bool = False,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        augment: bool = True,
        sample_by: str = "image",
        storage: str = "memory",
        seed: int | None = None,
        shards: Mapping[str, Any] | None = None,
        internal: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("scale", scale), *(("train_scales", s) for s in train_scales or [])):
            if value != int(value) or int(value) < 2:
                raise UserError(f"data.{key}={value} is not supported: use an integer >= 2")
        if channels not in (1, 3):
            raise UserError(f"data.channels={channels} is not supported: use 1 (Y) or 3 (RGB)")
        sizes = {"patch_size": patch_size, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch}
        if patch_size_hr is not None:
            sizes["patch_size_hr"] = patch_size_hr
        for key, value in sizes.items():
            if int(value) < 1:
                raise UserError(f"data.{key}={value} must be >= 1")
        if isinstance(degradation, DictConfig):
            degradation = OmegaConf.to_container(degradation, resolve=True)
        degradation = dict(degradation or {})
        online = degradation.pop("realesrgan", None)
        self.degradation = parse_options(Degradation, degradation, "data.degradation")
        self.online = RealESRGAN.from_config(online) if online is not None else None
        if self.online is not None and channels != 3:
            raise UserError(f"data/degradation=realesrgan degrades RGB images but data.channels={channels}: it needs "
                            f"RGB, set data.channels=3 (and an RGB network)")
        if self.degradation.source == "y" and channels != 1:
            raise UserError("data.degradation.source='y' makes Y-only pairs but data.channels=3: for RGB networks "
                             "choose data/degradation=benchmark_lr (the standard LR files) or data/degradation=float")
        self.train_dirs = [train_dir] if isinstance(train_dir, str) else list(train_dir or [])
        self.val_dir = val_dir
        self.test_dirs: dict[str, str] = {}
        for name, location in [*(resolve_test_set(str(e), benchmark_dir) for e in test_sets or []),
                               *(test_dirs or {}).items()]:
            if name in self.test_dirs:
                raise UserError(f"two test sets are named {name!r} (data.test_sets / data.test_dirs); "
                                 f"give one of them another name in data.test_dirs")
            self.test_dirs[name] = location
        self.scale, self.channels = int(scale), channels
        self.train_scales = sorted({int(s) for s in (train_scales or [scale])})
        self.patch_sizes = {s: lr_patch_side(s, patch_size, patch_size_hr) for s in self.train_scales}
        self.batch_size, self.steps_per_epoch, self.num_workers = batch_size, steps_per_epoch, num_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.skip_bad_images, self.augment, self.sample_by = skip_bad_images, augment, sample_by
        self.max_image_pixels = check_max_pixels(max_image_pixels, "data.max_image_pixels")
        self.seed = seed
        if storage not in STORAGES:
            raise UserError(f"data.storage={storage!r} is not one of {STORAGES}: memory keeps the decoded set, "
                             f"disk decodes images on demand")
        self.storage = storage
        self.shards = ShardOptions.from_config(shards) if shards is not None else None
        if self.shards is not None:
            if len(self.train_dirs) != 1 or len(self.train_scales) != 1:
                raise UserError("data=shards trains from one shard location (data.train_dir) at one scale "
                                 "(data.train_scales: null)")
        self.internal = InternalOptions.from_config(internal) if internal is not None else None
        if self.internal is not None and (self.train_dirs or self.shards is not None or len(self.train_scales) != 1):
            raise UserError("data.internal trains on one image at one scale: set data.train_dir=null, data.shards=null "
                            "and data.train_scales=null")
        self.internal_image: torch.Tensor | None = None  # (C, H, W), set up for fit with data.internal
        self._pairs: dict[tuple[str, int, bool], Pairs] = {}
        self._train_set: PatchBatches | ShardPatches | InternalPairs | None = None

    @property
    def test_set_names(self) -> list[str]:
        """Names of the test sets, in dataloader order."""
        return list(self.test_dirs)

    def image_batch(self, image: HRImage, key: str = "image") -> dict[str, Any]:
        """One HR image (read once by the caller, :func:`load_file`) as a test set's image is
        served (its pair made at ``scale`` by this module's degradation, in ``channels``): the
        :class:`EvalDataset` item as a batch of one.

        Raises:
            UserError: a side is shorter than the scale (``key`` and the image named).
        """
        h, w = image.pixels.shape[:2]
        if min(h, w) < self.scale:
            raise UserError(f"{key}='{image.source or image.name}' ({w}x{h}) has a side under the scale "
                            f"x{self.scale}: no LR image")
        pairs = PairSet([image], scale=self.scale, channels=self.channels, degradation=self.degradation)
        return default_collate([EvalDataset(pairs)[0]])

    def _make_pairs(self, locations: Sequence[str], keys: Sequence[str], scale: int, lr: bool = True) -> Pairs:
        kw = {"scale": scale, "channels": self.channels, "degradation": self.degradation, "cache_dir": self.cache_dir,
              "lr": lr}
        if self.storage == "disk" and not any(loc.startswith(SAMPLE_PREFIX) for loc in locations):
            files = [f for loc, key in zip(locations, keys, strict=True) for f in location_files(loc, key)]
            pairs = DiskPairSet(files, skip_bad_images=self.skip_bad_images, max_pixels=self.max_image_pixels, **kw)
            if not len(pairs):
                raise FileNotFoundError(f"{', '.join(keys)}: no readable image in {', '.join(locations)}")
            return pairs
        images = [img for loc, key in zip(locations, keys, strict=True)
                  for img in load_location(loc, key, skip_bad_images=self.skip_bad_images, min_side=scale,
                                           max_pixels=self.max_image_pixels)]
        return PairSet(images, **kw)

    def _pairset(self, location: str, key: str, scale: int | None = None, lr: bool = True) -> Pairs:
        scale = self.scale if scale is None else scale
        if (location, scale, lr) not in self._pairs:
            self._pairs[location, scale, lr] = self._make_pairs([location], [key], scale, lr)
        return self._pairs[location, scale, lr]

    def _train_pairs(self, scale: int) -> Pairs:
        """The training pairs at ``scale``; under an online degradation HR only (it makes the LR
        of each batch on the device: a bicubic LR made here would be thrown away)."""
        lr = self.online is None
        if len(self.train_dirs) == 1:
            return self._pairset(self.train_dirs[0], "data.train_dir", scale, lr)
        return self._make_pairs(self.train_dirs, [f"data.train_dir[{i}]" for i in range(len(self.train_dirs))], scale,
                                lr)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.internal is not None:
            self.internal_image = load_internal_image(self.internal.image, self.channels, self.scale)
            self._train_set = InternalPairs(self.internal_image, Path(self.internal.image).stem, self.scale,
                                            self.internal, self.steps_per_epoch, self._stream_seed())
        elif stage in (None, "fit"):
            if not self.train_dirs:
                raise UserError("data.train_dir is not set; point it at a folder of HR training images")
            if self.shards is not None:
                self._train_set = self._shard_patches()
            else:
                self._train_set = PatchBatches({s: self._train_pairs(s) for s in self.train_scales},
                                               patch_sizes=self.patch_sizes, batch_size=self.batch_size,
                                               length=self.steps_per_epoch, seed=self._stream_seed(),
                                               augment=self.augment, sample_by=self.sample_by)
        if stage in (None, "fit"):
            log.info("training data: %s; batches of %d, %d steps an epoch", self._describe_training(),
                     self.batch_size, self.steps_per_epoch)
        if stage in (None, "fit", "validate") and self.val_dir:
            self._pairset(self.val_dir, "data.val_dir")
        if stage in (None, "test"):
            if not self.test_dirs:
                raise UserError("no test set: give data.test_sets=[Set5,...] (names under data.benchmark_dir, or "
                                 "folders) or data.test_dirs={name: folder}")
            for name, location in self.test_dirs.items():
                self._pairset(location, f"data.test_sets ({name})")

    def _describe_training(self) -> str:
        """How many training images, from where."""
        if self.internal is not None:
            return f"one image, {self.internal.image} (zero-shot)"
        where = ", ".join(map(str, self.train_dirs))
        if isinstance(self._train_set, ShardPatches):
            return f"{self._shard_images} images in the shards at {where}"
        pairs = next(iter(self._train_set.pairs.values()))
        return f"{len(pairs.names)} images from {where}"

    def _shard_patches(self) -> ShardPatches:
        location, scale = self.train_dirs[0], self.train_scales[0]
        opts = self.shards
        index = read_index(location, "data.train_dir", float(opts.timeout_s))
        self._shard_images = index.get("images", "?")
        p = self.patch_sizes[scale]
        if p * scale > index["min_side"]:
            raise UserError(
                f"data.train_dir: the shards' smallest image side is {index['min_side']} pixels (crop="
                f"{index['crop']}), smaller than the training patch ({p} LR pixels x {scale} = {p * scale} HR); "
                f"lower data.patch_size or prepare the shards with a larger crop")
        return ShardPatches([location_url(location, shard["name"]) for shard in index["shards"]], scale=scale,
                            channels=self.channels, degradation=self.degradation, patch_size=p,
                            batch_size=self.batch_size, length=self.steps_per_epoch, seed=self._stream_seed(),
                            augment=self.augment, patches_per_image=opts.patches_per_image,
                            shuffle_buffer=opts.shuffle_buffer, lr=self.online is None)

    def _stream_seed(self) -> int:
        return int(self.seed if self.seed is not None else os.environ.get("PL_GLOBAL_SEED", 0))

    def _steps_trained(self) -> int:
        """Training steps this process has made in the run (restored on resume); 0 without a trainer."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.total.ready if trainer is not None else 0

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training batches under ``realesrgan``: LR made from HR here, on the model's device;
        the random draws are seeded by (data seed, the batch's index in the run's stream), so
        a run, and a resumed one, degrade the same batches the same way."""
        trainer = self.trainer
        if self.online is None or trainer is None or not trainer.training or not isinstance(batch, dict):
            return batch
        hr = batch["hr"]
        index = self._steps_trained() * trainer.world_size + trainer.global_rank
        g = torch.Generator(device=hr.device)
        g.manual_seed(int(np.random.SeedSequence([self._stream_seed(), index]).generate_state(1, np.uint64)[0] >> 1))
        lr = self.online(hr, int(batch.get("scale", self.scale)), g)
        return {**batch, "lr": lr.to(batch["lr"].dtype), "degraded": True}

    def _eval_loader(self, location: str) -> DataLoader:
        dataset = EvalDataset(self._pairs[location, self.scale, True])
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = FlaggedPaddingSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        # Both streams start from the restored loop position (no batch is trained twice), so
        # Lightning's warning that a mid-epoch resume may replay a non-resumable loader's
        # batches does not apply.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch",
                                category=PossibleUserWarning)
        if isinstance(self._train_set, ShardPatches):
            self._train_set.rank, self._train_set.world_size = rank, world
            self._train_set.start = self._steps_trained()
            return DataLoader(self._train_set, batch_size=None, num_workers=self.num_workers,
                              persistent_workers=self.num_workers > 0)
        sampler = PatchStreamSampler(self._train_set, num_replicas=world, rank=rank, position=self._steps_trained)
        # Items are whole batches (one scale each), so the loader does no batching.
        return DataLoader(self._train_set, batch_size=None, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.val_dir) if self.val_dir else []

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(loc) for loc in self.test_dirs.values()]
