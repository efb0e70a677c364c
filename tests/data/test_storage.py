"""data.storage=disk: the same pairs and batches as memory, decoded on demand."""

from __future__ import annotations

import pytest
import torch

import sr_lightning.data.datasets as datasets
from sr_lightning.data import SRDataModule
from tests.conftest import write_folder


def _dm(tiny_data, storage: str, **kw) -> SRDataModule:
    return SRDataModule(train_dir=str(tiny_data["train"]), val_dir=str(tiny_data["val"]),
                        test_sets=[str(tiny_data["test"])], patch_size=16, batch_size=4, steps_per_epoch=4,
                        storage=storage, seed=3, cache_dir=None, **kw)


@pytest.mark.parametrize("channels", [1, 3])
def test_disk_makes_the_same_batches_and_pairs_as_memory(tiny_data, channels):
    kw = {"channels": channels} if channels == 1 else {"channels": 3, "degradation": {"source": "rgb_uint8"}}
    memory, disk = _dm(tiny_data, "memory", **kw), _dm(tiny_data, "disk", **kw)
    for dm in (memory, disk):
        dm.setup("fit")
        dm.setup("test")
    for g in (0, 1, 17):
        a, b = memory._train_set[g], disk._train_set[g]
        assert a["name"] == b["name"] and torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])
    for a, b in zip(memory.test_dataloader()[0], disk.test_dataloader()[0], strict=True):
        assert a["name"] == b["name"] and torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])


def test_disk_decodes_nothing_at_setup(tiny_data, monkeypatch):
    decoded = []
    load_file = datasets.load_file
    monkeypatch.setattr(datasets, "load_file", lambda path, *a: decoded.append(path) or load_file(path, *a))
    dm = _dm(tiny_data, "disk")
    dm.setup("fit")
    assert decoded == [] and len(dm._train_set.pairs[2]) == 4
    dm._train_set[0]
    assert len(decoded) == 4  # one decode per patch of the batch


def test_disk_trains_with_workers(tiny_data):
    dm = _dm(tiny_data, "disk", num_workers=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and all(b["lr"].shape == (4, 1, 16, 16) for b in batches)
    assert torch.equal(batches[2]["hr"], dm._train_set[2]["hr"])  # the stream, whatever worker made it


def test_disk_skips_a_bad_file_when_asked(tmp_path):
    folder = write_folder(tmp_path / "train", 2, (64, 64))
    (folder / "broken.png").write_text("not an image")
    with pytest.raises(ValueError, match="broken.png.*data.skip_bad_images=true"):
        SRDataModule(train_dir=str(folder), val_dir=None, patch_size=16, storage="disk").setup("fit")
    dm = SRDataModule(train_dir=str(folder), val_dir=None, patch_size=16, storage="disk", skip_bad_images=True)
    with pytest.warns(UserWarning, match="skipping cannot read .*broken.png"):
        dm.setup("fit")
    assert dm._train_set.pairs[2].names == ["img00", "img01"]


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="data.storage='ram' is not one of"):
        SRDataModule(storage="ram")
