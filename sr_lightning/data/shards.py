"""WebDataset shards of HR images (made by ``python -m sr_lightning.prepare``): where they
are, their index, and the stream of training batches cut from them (``data=shards``).

A shard location is a folder, an ``http(s)://`` URL of one, or a ``pipe:`` command with
``{name}`` where a file name goes (``pipe:aws s3 cp s3://bucket/shards/{name} -``): the
index is ``index.json`` there, the shards are the ``.tar`` files it lists. Samples are
``<key>.png``: lossless uint8 gray or RGB HR images (whole, or sub-images of ``crop``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from sr_lightning.data.datasets import PairSet, batch_generator, random_patch
from sr_lightning.data.pairs import Degradation
from sr_lightning.data.sources import HRImage, decode_image
from sr_lightning.errors import UserError
from sr_lightning.options import parse_options

INDEX = "index.json"
FORMAT = "sr_lightning.shards"
PREPARE = "sr_lightning.prepare"


@dataclass(frozen=True)
class ShardOptions:
    """``data.shards``: how patches are drawn from a shard stream (defaults and checks).

    Attributes:
        patches_per_image: random patches cut from each decoded image (decoding is the cost).
        shuffle_buffer: patches held per DataLoader worker to draw batches from.
        timeout_s: seconds to wait for the index of a URL or ``pipe:`` location.
    """

    patches_per_image: int = 8
    shuffle_buffer: int = 1024
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for key in ("patches_per_image", "shuffle_buffer"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"data.shards.{key}={value!r} must be an integer >= 1")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float) or self.timeout_s <= 0:
            raise UserError(f"data.shards.timeout_s={self.timeout_s!r} must be a number of seconds > 0")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ShardOptions:
        """The options from a (partial) mapping (:func:`~sr_lightning.options.parse_options`)."""
        return parse_options(cls, config, "data.shards")


# A shard's name as an index may give it: a plain file name in the shard folder (what prepare
# writes is ``shard-000000.tar``). No separator, no ``..``, no scheme, no character a shell reads.
SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.tar")


def location_url(location: str, name: str) -> str:
    """The URL (or path) of file ``name`` at a shard location.

    ``name`` is data (read from an index): it must be a plain file name (:data:`SHARD_NAME`),
    and in a ``pipe:`` command it is shell-quoted, so no character of it reaches a shell.
    A folder location gives an absolute path, so nothing in it reads as a URL scheme.

    Raises:
        ValueError: ``name`` is not a plain file name.
    """
    if name != INDEX and not SHARD_NAME.fullmatch(name):
        raise UserError(f"shard name {name!r} is not a plain .tar file name in the shard folder")
    if location.startswith("pipe:"):
        return location.replace("{name}", shlex.quote(name))
    if location.startswith(("http://", "https://")):
        return f"{location.rstrip('/')}/{name}"
    return str(Path(location).expanduser().resolve() / name)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_index(index: dict[str, Any], url: str, key: str) -> None:
    """Refuse an index whose entries sr_lightning would misread: every shard a mapping with a
    plain ``name`` (:data:`SHARD_NAME`, each once), ``min_side`` a positive integer, ``crop``
    a positive integer or null. The message names the index and the entry.

    Raises:
        ValueError: a malformed entry.
    """
    how = "re-run python -m sr_lightning.prepare to write the index again"
    if not isinstance(index["shards"], list):
        raise UserError(f"{key}: '{url}': \"shards\" is not a list; {how}")
    seen: set[str] = set()
    for i, shard in enumerate(index["shards"]):
        name = shard.get("name") if isinstance(shard, dict) else None
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name) or name in seen:
            raise UserError(f"{key}: '{url}': shards[{i}].name={name!r} is not a plain .tar file name in the "
                             f"shard folder (letters, digits, '_', '-', '.'; no path, scheme or shell character; "
                             f"each once); {how}")
        seen.add(name)
    if not _positive_int(index.get("min_side")):
        raise UserError(f"{key}: '{url}': min_side={index.get('min_side')!r} is not a positive integer; {how}")
    if index.get("crop") is not None and not _positive_int(index["crop"]):
        raise UserError(f"{key}: '{url}': crop={index['crop']!r} is not a positive integer or null; {how}")


def read_index(location: str, key: str = "data.train_dir", timeout_s: float = 30.0) -> dict[str, Any]:
    """The index of a shard location, checked.

    Raises:
        FileNotFoundError: a folder without an index (say to run prepare).
        ValueError: a URL or command that fails or takes longer than ``timeout_s``; a file
            that is not an index of ours.
    """
    url = location_url(location, INDEX)
    how = f"run python -m sr_lightning.prepare input=HR_FOLDER output={location}"
    if location.startswith("pipe:"):
        if "{name}" not in location:
            raise UserError(f"{key}={location!r}: a pipe: command needs {{name}} where the file name goes, "
                             f"e.g. 'pipe:aws s3 cp s3://bucket/shards/{{name}} -'")
        try:
            proc = subprocess.run(url[len("pipe:"):], shell=True, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UserError(f"{key}: '{url}' gave no index within {timeout_s:g} s "
                             f"(data.shards.timeout_s)") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"{key}: '{url}' failed (exit {proc.returncode}: {err[-1] if err else 'no message'})")
        raw = proc.stdout
    elif location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                raw = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise UserError(f"{key}: cannot open '{url}' ({reason}; timeout {timeout_s:g} s): "
                             f"check the URL, or {how}") from None
    else:
        folder = Path(location).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{key}: folder '{folder}' does not exist; {how}")
        if not (folder / INDEX).is_file():
            raise FileNotFoundError(f"{key}: '{folder}' has no {INDEX}, so it is not a shard folder "
                                    f"(or its prepare has not finished); {how}")
        raw = (folder / INDEX).read_bytes()
    try:
        index = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{key}: '{url}' is not a JSON index of shards; {how}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not index.get("shards"):
        raise UserError(f"{key}: '{url}' is not an index written by sr_lightning.prepare; {how}")
    check_index(index, url, key)
    return index


def decode_sample(sample: Mapping[str, Any]) -> HRImage:
    """A shard sample (``{"__key__": str, "png": bytes}``) as an HR image."""
    return decode_image(sample["__key__"], sample["png"])


class ShardPatches(IterableDataset):
    """Training batches cut from shards, streamed: ``{"lr": (B, C, p, p), "hr": (B, C, s*p,
    s*p), "name": list[str], "scale": s}`` float32 in [0, 1], like :class:`PatchBatches`.

    Every DataLoader worker of every process is a consumer with its own shards (the shards
    dealt out in turn; when there are fewer shards than consumers, each reads all of them in
    its own order) and its own random stream, seeded from ``(seed, rank, worker, start)``
    where ``start`` is the steps the process had trained when its loader was made (0, or a
    resumed run's restored step: it draws new batches, not the first ones again); a
    worker's stream goes on across epochs (use persistent workers). The same seed, world
    size and ``num_workers`` give the same batches. Each decoded image gives ``patches_per_image`` random patches,
    made by the same code as the folder path's (:class:`PairSet`, :func:`random_patch`), into
    a shuffle buffer of ``shuffle_buffer`` patches that batches are drawn from. An epoch is
    ceil(length / world_size) batches of this process, shared among its workers.
    """

    def __init__(self, urls: list[str], *, scale: int, channels: int, degradation: Degradation, patch_size: int,
                 batch_size: int, length: int, seed: int, augment: bool, patches_per_image: int,
                 shuffle_buffer: int, lr: bool = True) -> None:
        super().__init__()
        self.urls, self.scale, self.channels, self.degradation, self.lr = urls, scale, channels, degradation, lr
        self.patch_size, self.batch_size, self.length, self.seed = patch_size, batch_size, length, seed
        self.augment, self.patches_per_image, self.shuffle_buffer = augment, patches_per_image, shuffle_buffer
        self.rank, self.world_size, self.start = 0, 1, 0
        self._stream: Iterator[dict] | None = None
        self._owner: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return math.ceil(self.length / self.world_size)

    def _patches(self, consumer: int, consumers: int, rng: torch.Generator) -> Iterator[tuple[str, Any, Any]]:
        own = self.urls[consumer::consumers] if len(self.urls) >= consumers else list(self.urls)
        while True:
            order = [own[int(i)] for i in torch.randperm(len(own), generator=rng)]
            for sample in wds.DataPipeline(wds.SimpleShardList(order), wds.tarfile_to_samples()):
                image = decode_sample(sample)
                pairs = PairSet([image], scale=self.scale, channels=self.channels, degradation=self.degradation,
                                lr=self.lr)
                for _ in range(self.patches_per_image):
                    yield (image.name, *random_patch(pairs, 0, self.patch_size, rng, self.augment))

    def _batches(self, worker: int, workers: int) -> Iterator[dict]:
        rng = batch_generator(self.seed, (self.rank * 4099 + worker) * 2**32 + self.start)
        patches = self._patches(self.rank * workers + worker, self.world_size * workers, rng)
        buffer = [next(patches) for _ in range(self.shuffle_buffer)]
        while True:
            batch = []
            for _ in range(self.batch_size):
                k = int(torch.randint(0, len(buffer), (), generator=rng))
                batch.append(buffer[k])
                buffer[k] = next(patches)
            names, lrs, hrs = zip(*batch, strict=True)
            yield {"lr": torch.stack(lrs), "hr": torch.stack(hrs), "name": list(names), "scale": self.scale}

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # One stream per worker (persistent) or process, going on across epochs; a forked worker
        # inherits its parent's stream and open shard, so the stream is keyed by the process.
        owner = (os.getpid(), worker, workers)
        if self._stream is None or self._owner != owner:
            self._stream, self._owner = self._batches(worker, workers), owner
        steps = len(self)
        for _ in range(steps // workers + (worker < steps % workers)):
            yield next(self._stream)
