"""The training stream: what each process trains on, under DDP, with workers, after a resume."""

from __future__ import annotations

import itertools

import pytest
import torch

from sr_lightning.data import SRDataModule
from sr_lightning.data.datamodule import PatchStreamSampler
from tests.conftest import run_entry, run_module, tiny_args, write_folder
from tests.data.batch_hashes import patch_hashes, read_hashes

HASHES = "+callbacks.hashes._target_=tests.data.batch_hashes.BatchHashes"


def _train_set(tiny_data, **kw) -> SRDataModule:
    dm = SRDataModule(train_dir=str(tiny_data["train"]), val_dir=None, patch_size=16, batch_size=4,
                      steps_per_epoch=6, **kw)
    dm.setup("fit")
    return dm


def test_processes_take_turns_in_one_stream(tiny_data):
    """Rank r of W trains batch t*W + r at its step t; each epoch goes on from the steps trained."""
    dm = _train_set(tiny_data, seed=7)
    indices = {}
    for world, rank in ((1, 0), (2, 0), (2, 1), (4, 3)):
        steps = 6 // world + (6 % world > 0)
        sampler = PatchStreamSampler(dm._train_set, num_replicas=world, rank=rank, position=lambda n=steps: n)
        indices[world, rank] = list(sampler)  # the second epoch
    assert indices[1, 0] == [6, 7, 8, 9, 10, 11]
    assert indices[2, 0] == [6, 8, 10] and indices[2, 1] == [7, 9, 11]
    assert indices[4, 3] == [11, 15]  # ceil(6 / 4) = 2 steps an epoch


def test_a_batch_depends_only_on_the_seed_and_its_index(tiny_data):
    one, other = _train_set(tiny_data, seed=7)._train_set, _train_set(tiny_data, seed=7)._train_set
    torch.manual_seed(0)
    first = [patch_hashes(one[g]) for g in (0, 5, 1000)]
    torch.manual_seed(1)  # the global generator plays no part
    assert [patch_hashes(other[g]) for g in (1000, 5, 0)] == first[::-1]
    assert len({h for step in first for h in step}) == 12  # different patches everywhere
    reseeded = _train_set(tiny_data, seed=8)._train_set
    assert patch_hashes(reseeded[0]) != first[0]


@pytest.mark.slow  # 55 s; test_processes_take_turns_in_one_stream (the ranks' indices) runs in every run
def test_ddp_processes_train_different_patches_whatever_num_workers(tiny_data, tmp_path):
    """trainer=ddp_sim (2 processes), num_workers 0 and 2: no patch is trained by both ranks,
    and the same seed makes the same batches in both runs. (Before the stream, every rank
    drew the same patches with num_workers=0.)"""
    train = write_folder(tmp_path / "train", 4, (280, 280), seed=5)  # 8 LR px patches: ~570k distinct ones
    runs = {}
    for workers in (0, 2):
        folder = tmp_path / f"hashes{workers}"
        run_module("sr_lightning.train", *tiny_args(tiny_data, tmp_path / f"run{workers}", "model=srcnn",
                                                     "trainer=ddp_sim", f"data.train_dir={train}", "data.patch_size=8",
                                                     f"data.num_workers={workers}", "trainer.max_steps=3",
                                                     "test=false",
                                                     HASHES, f"+callbacks.hashes.folder={folder}"), timeout=400)
        runs[workers] = [read_hashes(folder, rank) for rank in (0, 1)]
        rank0, rank1 = runs[workers]
        assert len(rank0) == len(rank1) == 3 and all(len(step) == 4 for step in rank0 + rank1)
        seen0, seen1 = set(itertools.chain(*rank0)), set(itertools.chain(*rank1))
        assert len(seen0) == len(seen1) == 12 and not seen0 & seen1
    assert runs[0] == runs[2]


def test_a_resumed_run_goes_on_with_the_batches_it_had_not_trained(tiny_data, tmp_path):
    """6 steps in one run == 3 steps, stop (mid-epoch: 4 steps an epoch), resume to 6."""
    def fit(name: str, *extra: str) -> None:
        run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / name, "model=srcnn", "test=false",
                                                   HASHES, f"+callbacks.hashes.folder={tmp_path / name / 'h'}",
                                                   *extra))

    fit("whole", "trainer.max_steps=6")
    fit("part", "trainer.max_steps=3")
    fit("resumed", "trainer.max_steps=6", f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    whole = read_hashes(tmp_path / "whole" / "h", 0)
    assert read_hashes(tmp_path / "part" / "h", 0) == whole[:3]
    assert read_hashes(tmp_path / "resumed" / "h", 0) == whole[3:]
