"""Pack HR images into WebDataset shards for training at scale:
``python -m sr_lightning.prepare input=HR_DIR output=SHARD_DIR [crop=480 step=240]``.

Images are optionally cut into ``crop`` x ``crop`` sub-images every ``step`` pixels first
(the field's sub-image extraction; the last row and column are placed flush with the
image's edge so every pixel is covered), stored losslessly as PNG inside tar shards of
about ``shard_size_mb``, in parallel. Each shard is written beside its name and renamed when
complete, so an interrupted run leaves no truncated shard, and a re-run with the same
settings skips the finished ones. ``index.json`` (images, sub-images, pixels, crop, the
shards) is written last; training reads it (``data=shards``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import webdataset as wds
from omegaconf import DictConfig
from PIL import Image

from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.data.io import IMAGE_EXTENSIONS, ImageReadError, list_images
from sr_lightning.data.shards import FORMAT, INDEX, PREPARE
from sr_lightning.data.sources import load_file, read_header
from sr_lightning.errors import UserError
from sr_lightning.files import write_atomically, write_text_atomically
from sr_lightning.progress import track

log = logging.getLogger(__name__)

PLAN = ".prepare.json"  # the settings and plan of a prepare in progress (or done)


def origins(side: int, crop: int, step: int) -> list[int]:
    """Where sub-images of ``crop`` start along a side, every ``step`` pixels, the last one
    flush with the edge; ``[0]`` (the whole side) when the side is not longer than ``crop``."""
    if side <= crop:
        return [0]
    starts = list(range(0, side - crop + 1, step))
    return starts if starts[-1] == side - crop else [*starts, side - crop]


@dataclass(frozen=True)
class SubImage:
    """Sub-image ``(y, x, h, w)`` of input file ``file``."""

    file: str
    y: int
    x: int
    h: int
    w: int

    @property
    def key(self) -> str:
        """The sample key: the file's stem (dots replaced: WebDataset splits keys at dots) and origin."""
        return f"{Path(self.file).stem.replace('.', '_')}_{self.y:05d}_{self.x:05d}"


def plan(files: Sequence[Path], crop: int | None, step: int | None, shard_bytes: int,
         skip_bad_images: bool) -> tuple[list[list[SubImage]], list[str]]:
    """The shards' contents (sub-images in input order, shards of about ``shard_bytes``
    estimated from each file's size) and the files skipped as unreadable. Reads headers only."""
    shards: list[list[SubImage]] = [[]]
    filled, skipped = 0, []
    for f in files:
        header = read_header(f, skip_bad_images)
        if header is None:
            skipped.append(f.name)
            continue
        (w, h), _ = header
        size = f.stat().st_size
        ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
        ys, xs = (origins(h, crop, step), origins(w, crop, step)) if crop else ([0], [0])
        for y in ys:
            for x in xs:
                estimate = max(1, size * ch * cw // (h * w))
                if shards[-1] and filled + estimate > shard_bytes:
                    shards.append([])
                    filled = 0
                shards[-1].append(SubImage(f.name, y, x, ch, cw))
                filled += estimate
    return [s for s in shards if s], skipped


def shard_name(i: int) -> str:
    return f"shard-{i:06d}.tar"


def write_shard(job: tuple[Path, Path, int, list[SubImage], bool]) -> dict[str, Any]:
    """Write one shard (:func:`~sr_lightning.files.write_atomically`); returns its index entry.

    Raises:
        ImageReadError: an image that cannot be decoded, without ``skip_bad_images``.
    """
    input_dir, output, i, subs, skip_bad_images = job
    final = output / shard_name(i)
    samples, pixels, min_side, skipped = 0, 0, None, []

    def write(part: str) -> None:
        nonlocal samples, pixels, min_side
        image, loaded = None, None
        with open(part, "wb") as stream, wds.TarWriter(stream) as tar:
            for sub in subs:
                if loaded != sub.file:
                    loaded = sub.file
                    try:
                        image = load_file(input_dir / sub.file)
                    except ImageReadError as err:
                        if not skip_bad_images:
                            raise ImageReadError(f"{err}; remove it or set skip_bad_images=true to skip it") \
                                from None
                        skipped.append(sub.file)
                        image = None
                if image is None:
                    continue
                pixels_ = image.pixels[sub.y: sub.y + sub.h, sub.x: sub.x + sub.w]
                png = io.BytesIO()
                Image.fromarray(pixels_[..., 0] if pixels_.shape[-1] == 1 else pixels_).save(png, format="PNG")
                tar.write({"__key__": sub.key, "png": png.getvalue()})
                samples += 1
                pixels += sub.h * sub.w
                min_side = min(sub.h, sub.w, min_side or 1 << 30)

    write_atomically(final, write)
    return {"name": final.name, "samples": samples, "bytes": final.stat().st_size, "pixels": pixels,
            "min_side": min_side, "skipped": sorted(set(skipped))}


def check_output(output: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Make ``output`` ready: new or empty, or ours with the same settings (resume), or ours
    with others and ``overwrite`` (cleared).

    Raises:
        ValueError: a folder that is not ours, or ours with other settings without ``overwrite``.
    """
    if output.exists() and not output.is_dir():
        raise UserError(f"output={output} is a file; give a folder for the shards")
    if not output.exists() or not any(output.iterdir()):
        return
    if not (output / PLAN).is_file():
        raise UserError(f"output={output} exists and is not a shard folder made by sr_lightning.prepare "
                              f"(no {PLAN}); give a new or empty folder, or delete it yourself")
    try:
        previous = json.loads((output / PLAN).read_text())
    except json.JSONDecodeError:
        previous = None
    if previous == settings:
        return
    if not overwrite:
        raise UserError(f"output={output} holds shards prepared with other settings or inputs; "
                              f"add overwrite=true to replace them, or give another output")
    for f in output.iterdir():
        if f.name in (PLAN, INDEX) or f.name.startswith("shard-"):
            f.unlink()


def prepare(cfg: DictConfig) -> dict[str, Any]:
    """Pack ``cfg.input``'s images into shards in ``cfg.output``; returns the index."""
    if cfg.input is None or cfg.output is None:
        raise UserError("give input=HR_FOLDER and output=SHARD_FOLDER")
    input_dir, output = Path(str(cfg.input)).expanduser(), Path(str(cfg.output)).expanduser()
    crop = None if cfg.crop is None else int(cfg.crop)
    step = None if crop is None else int(cfg.step if cfg.step is not None else crop // 2)
    if crop is not None and crop < 1:
        raise UserError(f"crop={crop} must be >= 1 (pixels), or null for whole images")
    if step is not None and not 0 < step <= crop:
        raise UserError(f"step={step} must be between 1 and crop={crop}: a larger step leaves pixels between "
                         f"the sub-images out")
    if not float(cfg.shard_size_mb) > 0:
        raise UserError(f"shard_size_mb={cfg.shard_size_mb} must be > 0")
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input={input_dir} is not a folder; give the folder of HR images")
    files = list_images(input_dir)
    if not files:
        raise FileNotFoundError(f"input={input_dir} contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    shards, skipped = plan(files, crop, step, int(float(cfg.shard_size_mb) * 2**20), bool(cfg.skip_bad_images))
    if not shards:
        raise FileNotFoundError(f"input={input_dir}: no readable image")
    listing = hashlib.sha256(json.dumps([[f.name, f.stat().st_size] for f in files]).encode()).hexdigest()
    settings = {"format": FORMAT, "made_by": PREPARE, "input": str(input_dir.resolve()), "files": listing,
                "crop": crop, "step": step, "shard_size_mb": float(cfg.shard_size_mb)}
    check_output(output, settings, bool(cfg.overwrite))
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output / PLAN, json.dumps(settings))
    for stale in output.glob("*.part"):
        stale.unlink()
    todo = [i for i in range(len(shards)) if not (output / shard_name(i)).is_file()]
    log.info("%d images -> %d sub-images in %d shards (%d already written)%s", len(files) - len(skipped),
             sum(map(len, shards)), len(shards), len(shards) - len(todo),
             f"; skipped as unreadable: {', '.join(skipped)}" if skipped else "")
    workers = (os.cpu_count() or 1) if cfg.workers == "auto" else int(cfg.workers)
    if workers < 1:
        raise UserError(f"workers={cfg.workers} must be >= 1, or auto (one per core)")
    jobs = [(input_dir, output, i, shards[i], bool(cfg.skip_bad_images)) for i in todo]
    entries = _run(jobs, workers, cfg.get("progress", {}))
    for i in range(len(shards)):
        if i not in entries:  # written by an earlier run: count it again from the shard itself
            entries[i] = _entry_of(output / shard_name(i), shards[i])
    ordered = [entries[i] for i in range(len(shards))]
    bad = sorted(set(skipped).union(*(e.pop("skipped") for e in ordered)))
    index = {"format": FORMAT, "version": 1, "source": str(input_dir.resolve()), "crop": crop, "step": step,
             "images": len(files) - len(bad), "samples": sum(e["samples"] for e in ordered),
             "pixels": sum(e.pop("pixels") for e in ordered),
             "min_side": min(e.pop("min_side") or 1 << 30 for e in ordered), "skipped": bad, "shards": ordered}
    write_text_atomically(output / INDEX, json.dumps(index, indent=1))
    return index


def _entry_of(path: Path, subs: list[SubImage]) -> dict[str, Any]:
    keys = {s.key: s for s in subs}
    found = [keys[sample["__key__"]] for sample in wds.DataPipeline(wds.SimpleShardList([str(path)]),
                                                                      wds.tarfile_to_samples())]
    return {"name": path.name, "samples": len(found), "bytes": path.stat().st_size,
            "pixels": sum(s.h * s.w for s in found), "min_side": min((min(s.h, s.w) for s in found), default=None),
            "skipped": sorted({s.file for s in subs} - {s.file for s in found})}


def _run(jobs: list, workers: int, progress_cfg: Any) -> dict[int, dict[str, Any]]:
    entries: dict[int, dict[str, Any]] = {}
    if workers == 1 or len(jobs) < 2:
        results, pool = map(write_shard, jobs), None
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)))
        results = pool.imap_unordered(write_shard, jobs)
    try:
        for entry in track(results, len(jobs), "writing shards", "shard", "shards", progress_cfg, show=bool(jobs)):
            entries[int(entry["name"][6:12])] = entry
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return entries


@hydra.main(version_base="1.3", config_path="conf", config_name="prepare")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    index = prepare(cfg)
    print(f"{index['images']} images -> {index['samples']} samples, {index['pixels'] / 1e6:.1f} MP in "
          f"{len(index['shards'])} shards: {Path(str(cfg.output)).expanduser() / INDEX}"
          + (f" (skipped: {', '.join(index['skipped'])})" if index["skipped"] else ""))


def cli() -> None:
    """``python -m sr_lightning.prepare`` and the ``sr-prepare`` console script."""
    sys.argv = prepare_argv(sys.argv)  # numeric choices quoted; plugins present
    main()


if __name__ == "__main__":
    cli()
