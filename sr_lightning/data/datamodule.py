"""The LightningDataModule: HR locations in, LR/HR batches out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from sr_lightning.data.datasets import EvalDataset, PairSet, PatchDataset
from sr_lightning.data.pairs import Degradation
from sr_lightning.data.sources import load_location


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


class SRDataModule(L.LightningDataModule):
    """LR/HR pairs for training (random patches) and evaluation (whole images).

    Batches are dicts ``{"lr": (N, C, h, w), "hr": (N, C, s*h, s*w), "name": list[str]}``,
    float32 in [0, 1], C = ``channels``.

    Args:
        train_dir: HR training images: a folder or ``sample:train``.
        val_dir: HR validation images: a folder or ``sample:val`` (None: no validation).
        test_dirs: test sets, name -> folder or ``sample:test``.
        scale: integer upscaling factor.
        channels: 1 (Y of BT.601) or 3 (RGB).
        patch_size: training patch side in LR pixels.
        batch_size: training batch size per process (DDP: global = this x processes).
        steps_per_epoch: training batches per epoch (patches are drawn at random).
        num_workers: DataLoader workers.
        degradation: how LR is made (see :class:`Degradation`).
        cache_dir: where LR images are cached on disk (None: memory only).
        skip_bad_images: skip unreadable image files with a warning.
        augment: random flips and 90-degree rotations of training patches.
        sample_by: draw training patches from every image equally often (``"image"``) or
            in proportion to image area (``"area"``).
    """

    def __init__(
        self,
        *,
        train_dir: str | None = "sample:train",
        val_dir: str | None = "sample:val",
        test_dirs: Mapping[str, str] | None = None,
        scale: int = 2,
        channels: int = 1,
        patch_size: int = 32,
        batch_size: int = 16,
        steps_per_epoch: int = 100,
        num_workers: int = 0,
        degradation: Mapping | None = None,
        cache_dir: str | None = None,
        skip_bad_images: bool = False,
        augment: bool = True,
        sample_by: str = "image",
    ) -> None:
        super().__init__()
        if scale != int(scale) or int(scale) < 2:
            raise ValueError(f"data.scale={scale} is not supported: use an integer >= 2")
        if channels not in (1, 3):
            raise ValueError(f"data.channels={channels} is not supported: use 1 (Y) or 3 (RGB)")
        sizes = {"patch_size": patch_size, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch}
        for key, value in sizes.items():
            if int(value) < 1:
                raise ValueError(f"data.{key}={value} must be >= 1")
        self.train_dir, self.val_dir = train_dir, val_dir
        self.test_dirs = dict(test_dirs or {})
        self.scale, self.channels, self.patch_size = int(scale), channels, patch_size
        self.batch_size, self.steps_per_epoch, self.num_workers = batch_size, steps_per_epoch, num_workers
        self.degradation = Degradation(**(degradation or {}))
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.skip_bad_images, self.augment, self.sample_by = skip_bad_images, augment, sample_by
        self._pairs: dict[str, PairSet] = {}
        self._train_set: PatchDataset | None = None

    @property
    def test_set_names(self) -> list[str]:
        """Names of the test sets, in dataloader order."""
        return list(self.test_dirs)

    def _pairset(self, location: str, key: str) -> PairSet:
        if location not in self._pairs:
            images = load_location(location, key, skip_bad_images=self.skip_bad_images)
            self._pairs[location] = PairSet(images, scale=self.scale, channels=self.channels,
                                            degradation=self.degradation, cache_dir=self.cache_dir)
        return self._pairs[location]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            if not self.train_dir:
                raise ValueError("data.train_dir is not set; point it at a folder of HR training images")
            self._train_set = PatchDataset(self._pairset(self.train_dir, "data.train_dir"), scale=self.scale,
                                           patch_size=self.patch_size, augment=self.augment, sample_by=self.sample_by,
                                           length=self.steps_per_epoch * self.batch_size)
        if stage in (None, "fit", "validate") and self.val_dir:
            self._pairset(self.val_dir, "data.val_dir")
        if stage in (None, "test"):
            if not self.test_dirs:
                raise ValueError("data.test_dirs is empty; give at least one test set, name: folder")
            for name, location in self.test_dirs.items():
                self._pairset(location, f"data.test_dirs.{name}")

    def _eval_loader(self, location: str) -> DataLoader:
        dataset = EvalDataset(self._pairs[location])
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = FlaggedPaddingSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._train_set, batch_size=self.batch_size, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.val_dir) if self.val_dir else []

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(loc) for loc in self.test_dirs.values()]

