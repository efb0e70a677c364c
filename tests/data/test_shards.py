"""python -m sr_lightning.prepare and data=shards: packing, the index, resuming, the stream, bad input."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from omegaconf import OmegaConf
from PIL import Image

from sr_lightning.data import SRDataModule
from sr_lightning.data.datasets import PairSet
from sr_lightning.data.pairs import Degradation
from sr_lightning.data.shards import decode_sample, read_index
from sr_lightning.data.sources import load_file
from sr_lightning.prepare import origins, prepare
from tests.conftest import run_cli, run_module, tiny_args, write_folder
from tests.data.batch_hashes import patch_hashes, read_hashes

CFG = {"crop": None, "step": None, "shard_size_mb": 256, "workers": 1, "skip_bad_images": False,
       "overwrite": False, "progress": {"every_s": 30, "when": "never"}}


def _prepare(input_dir: Path, output: Path, **kw) -> dict:
    return prepare(OmegaConf.create({**CFG, "input": str(input_dir), "output": str(output), **kw}))


def _samples(shard: Path) -> list[dict]:
    return list(wds.DataPipeline(wds.SimpleShardList([str(shard)]), wds.tarfile_to_samples()))


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("hr"), 5, (150, 110), seed=4)


def test_sub_images_cover_every_pixel_flush_with_the_edges():
    assert origins(150, 96, 48) == [0, 48, 54]
    assert origins(144, 96, 48) == [0, 48]
    assert origins(96, 96, 48) == [0] and origins(60, 96, 48) == [0]


def test_prepare_packs_lossless_sub_images_and_indexes_them(hr_folder, tmp_path):
    index = _prepare(hr_folder, tmp_path / "s", crop=96, step=48, shard_size_mb=0.02)
    per_image = len(origins(150, 96, 48)) * len(origins(110, 96, 48))  # 3 x 2
    assert index["images"] == 5 and index["samples"] == 5 * per_image and index["pixels"] == 5 * per_image * 96 * 96
    assert index["crop"] == 96 and index["step"] == 48 and index["min_side"] == 96 and index["skipped"] == []
    assert len(index["shards"]) > 1 and sum(s["samples"] for s in index["shards"]) == index["samples"]
    assert json.loads((tmp_path / "s" / "index.json").read_text()) == index
    samples = [s for shard in index["shards"] for s in _samples(tmp_path / "s" / shard["name"])]
    assert len({s["__key__"] for s in samples}) == index["samples"]
    sample = next(s for s in samples if s["__key__"] == "img03_00048_00014")
    source = load_file(hr_folder / "img03.png").pixels
    assert np.array_equal(decode_sample(sample).pixels, source[48:144, 14:110])


def test_a_shard_image_makes_the_same_lr_as_the_in_memory_path(hr_folder, tmp_path):
    """The LR made from a shard's sub-image is bit-identical to the folder path's for that crop."""
    index = _prepare(hr_folder, tmp_path / "s", crop=96, step=48)
    samples = _samples(tmp_path / "s" / index["shards"][0]["name"])
    sample = next(s for s in samples if s["__key__"] == "img01_00054_00000")
    crop_folder = tmp_path / "crop"
    crop_folder.mkdir()
    Image.fromarray(load_file(hr_folder / "img01.png").pixels[54:150, 0:96]).save(crop_folder / "img01.png")
    degradations = (Degradation(), Degradation(source="rgb_uint8", border="clamp"), Degradation(source="rgb_float"))
    for degradation in degradations:
        channels = 1 if degradation.source == "y" else 3
        shard = PairSet([decode_sample(sample)], scale=3, channels=channels, degradation=degradation)
        folder = SRDataModule(train_dir=str(crop_folder), scale=3, channels=channels, cache_dir=None,
                              degradation=vars(degradation))._pairset(str(crop_folder), "x")
        for a, b in zip(shard.pair(0), folder.pair(0), strict=True):
            assert torch.equal(a, b), degradation


def test_a_rerun_skips_finished_shards_and_an_interrupted_one_leaves_no_part(hr_folder, tmp_path):
    out = tmp_path / "s"
    index = _prepare(hr_folder, out, crop=96, step=48, shard_size_mb=0.02)
    names = [s["name"] for s in index["shards"]]
    (out / names[1]).unlink()
    (out / "shard-000000.tar.part").write_bytes(b"truncated")  # what a killed run would leave
    before = {n: (out / n).stat().st_mtime_ns for n in names if n != names[1]}
    assert _prepare(hr_folder, out, crop=96, step=48, shard_size_mb=0.02) == index
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before and (out / names[1]).is_file()
    assert not list(out.glob("*.part"))


def test_a_corrupt_image_is_named_or_skipped_and_counted(hr_folder, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for f in hr_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = (folder / "img02.png").read_bytes()
    (folder / "img02.png").write_bytes(data[: len(data) // 2])  # header fine, pixels cut off
    with pytest.raises(ValueError, match="img02.png.*skip_bad_images=true"):
        _prepare(folder, tmp_path / "a", crop=96, step=48)
    assert not list((tmp_path / "a").glob("*.part")) and not (tmp_path / "a" / "index.json").exists()
    index = _prepare(folder, tmp_path / "b", crop=96, step=48, skip_bad_images=True)
    assert index["skipped"] == ["img02.png"] and index["images"] == 4 and index["samples"] == 4 * 6


def test_prepare_refuses_bad_input(hr_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no images"):
        _prepare(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(ValueError, match="step=100 must be between 1 and crop=96"):
        _prepare(hr_folder, tmp_path / "o", crop=96, step=100)
    foreign = write_folder(tmp_path / "photos", 1, (32, 32))
    with pytest.raises(ValueError, match="not a shard folder made by sr_lightning.prepare"):
        _prepare(hr_folder, foreign)
    _prepare(hr_folder, tmp_path / "s", crop=96, step=48)
    with pytest.raises(ValueError, match="other settings or inputs; add overwrite=true"):
        _prepare(hr_folder, tmp_path / "s", crop=64, step=32)
    assert _prepare(hr_folder, tmp_path / "s", crop=64, step=32, overwrite=True)["crop"] == 64


def test_the_cli_prints_one_line_for_bad_input(tmp_path):
    proc = run_cli("sr_lightning.prepare", f"input={tmp_path}", f"output={tmp_path / 'o'}", check=False)
    assert proc.returncode == 2 and "contains no images" in proc.stderr and "Traceback" not in proc.stderr


def _shard_dm(location: str, **kw) -> SRDataModule:
    return SRDataModule(train_dir=location, val_dir=None, patch_size=16, batch_size=4, steps_per_epoch=6, seed=1,
                        shards={"patches_per_image": 2, "shuffle_buffer": 8, "timeout_s": 2, **kw.pop("shards", {})},
                        **kw)


def test_shard_batches_are_patches_of_the_shard_images(hr_folder, tmp_path):
    _prepare(hr_folder, tmp_path / "s", crop=96, step=48, shard_size_mb=0.02)
    dm = _shard_dm(str(tmp_path / "s"), channels=3, degradation={"source": "rgb_uint8"})
    dm.setup("fit")
    for workers in (0, 2):  # workers forked after the main process streamed start streams of their own
        dm.num_workers = workers
        batches = list(dm.train_dataloader())
        assert len(batches) == 6 and all(b["lr"].shape == (4, 3, 16, 16) and b["hr"].shape == (4, 3, 32, 32)
                                         for b in batches)
        assert len({n for b in batches for n in b["name"]}) > 4  # the buffer mixes images
        assert len({h for b in batches for h in patch_hashes(b)}) == 24  # no patch drawn twice


def test_data_shards_refuses_bad_locations(hr_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no index.json.*python -m sr_lightning.prepare"):
        _shard_dm(str(hr_folder)).setup("fit")
    _prepare(hr_folder, tmp_path / "s", crop=24, step=24)
    with pytest.raises(ValueError, match="smallest image side is 24 pixels.*training patch"):
        _shard_dm(str(tmp_path / "s")).setup("fit")
    with pytest.raises(ValueError, match="pipe:false.*failed"):
        _shard_dm("pipe:false {name}").setup("fit")
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    with pytest.raises(ValueError, match="cannot open 'http://127.0.0.1:.*/index.json'.*timeout 1 s"):
        _shard_dm(f"http://127.0.0.1:{silent.getsockname()[1]}", shards={"timeout_s": 1}).setup("fit")
    silent.close()


@pytest.mark.parametrize(("shards", "message"), [
    ({"patches_per_image": 0}, r"data.shards.patches_per_image=0 must be an integer >= 1"),
    ({"shuffle_buffer": 2.5}, r"data.shards.shuffle_buffer: Value '2.5' of type 'float' could not be converted to "
                              r"Integer"),
    ({"timeout_s": 0}, r"data.shards.timeout_s=0.0 must be a number of seconds > 0"),
    ({"buffer": 8}, r"data.shards.buffer: Key 'buffer' not in 'ShardOptions' \(the options there: patches_per_image"),
])
def test_bad_shard_options_name_the_option(shards, message):
    with pytest.raises(ValueError, match=message):
        _shard_dm("unused", shards=shards)


def test_the_shards_options_are_a_schema_hydra_checks():
    """data=shards takes its defaults from ShardOptions (stated once), and Hydra refuses an
    unknown option or a wrong type when it composes, naming the key."""
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    from sr_lightning.config import compose_config
    from sr_lightning.data.shards import ShardOptions

    given = ["data=shards", "data.train_dir=x"]
    config = compose_config("train", given).data.shards
    assert OmegaConf.get_type(config) is ShardOptions
    assert ShardOptions.from_config(OmegaConf.to_container(config)) == ShardOptions()
    for bad, says in (("data.shards.buffer=8", "data.shards.buffer"), ("data.shards.timeout_s=soon", "timeout_s")):
        with pytest.raises(ConfigCompositionException) as err:
            compose_config("train", [*given, bad])
        assert says in str(err.value) + str(err.value.__cause__)


def test_shards_stream_over_http(hr_folder, tmp_path):
    _prepare(hr_folder, tmp_path / "s", crop=96, step=48, shard_size_mb=0.02)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "s"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dm = _shard_dm(f"http://127.0.0.1:{server.server_address[1]}")
        dm.setup("fit")
        assert read_index(dm.train_dirs[0])["samples"] == 30
        assert len(list(dm.train_dataloader())) == 6
    finally:
        server.shutdown()


# 31 s: with the slow tests; DDP in every run: test_ddp_sim_matches_single_process_metrics, and the
# ranks' turns in the stream: test_processes_take_turns_in_one_stream.
@pytest.mark.slow
def test_ddp_on_shards_each_rank_trains_its_own_patches(hr_folder, tiny_data, tmp_path):
    """The issue's command on 2 CPU processes: trainer=ddp_sim from shards."""
    _prepare(hr_folder, tmp_path / "s", crop=96, step=48, shard_size_mb=0.02)
    folder = tmp_path / "hashes"
    run_module("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "run", "model=srcnn", "data=shards",
                                                 f"data.train_dir={tmp_path / 's'}", "trainer=ddp_sim",
                                                 "trainer.max_steps=4", "data.num_workers=1", "test=false",
                                                 "+callbacks.hashes._target_=tests.data.batch_hashes.BatchHashes",
                                                 f"+callbacks.hashes.folder={folder}"), timeout=400)
    rank0, rank1 = (set(itertools.chain(*read_hashes(folder, r))) for r in (0, 1))
    assert len(rank0) == len(rank1) == 16 and not rank0 & rank1
