from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.data import Degradation, ImageReadError, SRDataModule, read_image
from sr_lightning.data.pairs import make_lr
from sr_lightning.ops import imresize, rgb_to_y
from tests.conftest import write_folder


def _dm(tiny, **kw):
    args = {"train_dir": str(tiny["train"]), "val_dir": str(tiny["val"]), "test_dirs": {"t": str(tiny["test"])},
            "patch_size": 16, "batch_size": 4, "steps_per_epoch": 3}
    return SRDataModule(**{**args, **kw})


@pytest.mark.parametrize(("scale", "channels"), [(2, 1), (3, 3), (4, 1)])
def test_batches(tiny_data, scale, channels):
    dm = _dm(tiny_data, scale=scale, channels=channels)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    b = batches[0]
    assert b["lr"].shape == (4, channels, 16, 16) and b["hr"].shape == (4, channels, 16 * scale, 16 * scale)
    assert b["lr"].dtype == torch.float32 and 0 <= b["lr"].min() and b["lr"].max() <= 1
    assert len(b["name"]) == 4
    test = list(dm.test_dataloader()[0])
    assert len(test) == 2
    h, w = test[0]["hr"].shape[-2:]
    assert h % scale == 0 and w % scale == 0 and h == 62 - 62 % scale  # modcrop
    assert test[0]["lr"].shape[-2:] == (h // scale, w // scale)


def test_patches_are_aligned(tiny_data):
    """Each HR patch is exactly the region its LR patch came from."""
    dm = _dm(tiny_data, scale=2, channels=3, augment=True)
    dm.setup("fit")
    pairs = dm._pairs[str(tiny_data["train"])]
    torch.manual_seed(0)
    for item in (dm.train_dataloader().dataset[i] for i in range(20)):
        k = pairs.names.index(item["name"])
        # find the LR patch in its image (under any of the 8 flips/rotations): the HR patch must match too
        found = False
        for flip in (False, True):
            for rot in range(4):
                lr, hr = item["lr"], item["hr"]
                lr, hr = lr.rot90(-rot, (-2, -1)), hr.rot90(-rot, (-2, -1))
                if flip:
                    lr, hr = lr.flip(-1), hr.flip(-1)
                full_lr = pairs.lr[k]
                windows = full_lr.unfold(1, 16, 1).unfold(2, 16, 1)  # C, y, x, 16, 16
                eq = (windows == lr[:, None, None]).all(-1).all(-1).all(0).nonzero()
                for y, x in eq.tolist():
                    found |= torch.equal(pairs.hr[k][:, 2 * y: 2 * y + 32, 2 * x: 2 * x + 32], hr)
        assert found


def test_lr_is_matlab_uint8_bicubic_of_the_modcropped_hr(tiny_data):
    dm = _dm(tiny_data, scale=3, channels=1)
    dm.setup("test")
    item = dm.test_dataloader()[0].dataset[0]
    hr_rgb = np.asarray(Image.open(tiny_data["test"] / "img00.png"))[:60, :69]
    lr_u8 = imresize(torch.from_numpy(np.ascontiguousarray(hr_rgb)).permute(2, 0, 1), 1 / 3)
    torch.testing.assert_close(item["lr"], rgb_to_y(lr_u8.float() / 255))
    torch.testing.assert_close(item["hr"], rgb_to_y(torch.from_numpy(hr_rgb.copy()).permute(2, 0, 1).float() / 255))


def test_float_degradation_differs_from_uint8(tiny_data):
    hr = np.asarray(Image.open(tiny_data["test"] / "img00.png"))[:62, :70]
    a = make_lr(hr, 2, Degradation(uint8=True))
    b = make_lr(hr, 2, Degradation(uint8=False))
    assert a.dtype == torch.uint8 and b.dtype == torch.float64
    diff = (a.double() / 255 - b).abs()
    # only rounding separates them: 0.5 after the second pass, plus the first pass's 0.5
    # carried through weights whose absolute values sum to about 1.3
    assert 0 < diff.max() <= 1.5 / 255


def test_disk_cache_is_keyed_by_image_scale_and_degradation(tmp_path, tiny_data):
    hr = np.asarray(Image.open(tiny_data["test"] / "img00.png"))[:60, :60]
    cache = tmp_path / "cache"
    a = make_lr(hr, 2, Degradation(), cache)
    assert len(list(cache.glob("*.pt"))) == 1
    torch.testing.assert_close(make_lr(hr, 2, Degradation(), cache), a)  # hit: no new entry
    assert len(list(cache.glob("*.pt"))) == 1
    make_lr(hr, 3, Degradation(), cache)
    make_lr(hr, 2, Degradation(border="symmetric"), cache)
    hr2 = hr.copy()
    hr2[0, 0, 0] ^= 1
    make_lr(hr2, 2, Degradation(), cache)
    assert len(list(cache.glob("*.pt"))) == 4


def test_sample_source_needs_no_files():
    dm = SRDataModule(test_dirs={"sample": "sample:test"}, steps_per_epoch=1)
    dm.setup()
    assert dm._pairs["sample:test"].names == ["chelsea", "rocket"]
    assert len(dm.val_dataloader()) == 1


def test_read_image_modes(tmp_path):
    rgb = (np.random.default_rng(0).random((6, 7, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "l.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "i16.png")
    px, alpha, maxv = read_image(tmp_path / "rgb.png")
    assert px.shape == (6, 7, 3) and alpha is None and maxv == 255
    assert read_image(tmp_path / "p.png")[0].shape == (6, 7, 3)
    px, alpha, _ = read_image(tmp_path / "rgba.png")
    assert px.shape == (6, 7, 3) and alpha.shape == (6, 7) and alpha.min() == 1.0
    assert read_image(tmp_path / "l.png")[0].shape == (6, 7, 1)
    px, _, maxv = read_image(tmp_path / "i16.png")
    assert px.shape == (6, 7, 1) and maxv == 65535
    np.testing.assert_allclose(px[..., 0], rgb[..., 0] / 255.0)


# -- bad input ------------------------------------------------------------------------------

def test_missing_and_empty_folders(tmp_path, tiny_data):
    with pytest.raises(FileNotFoundError, match=r"data.train_dir: folder '.*nope' does not exist"):
        _dm(tiny_data, train_dir=str(tmp_path / "nope")).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"data.test_dirs.t: folder '.*empty' contains no images"):
        _dm(tiny_data, test_dirs={"t": str(tmp_path / "empty")}).setup("test")


def test_bad_image_files_name_the_file(tmp_path):
    folder = write_folder(tmp_path / "imgs", 2, (64, 64))
    (folder / "notes.png").write_text("this is not an image")
    with pytest.raises(ImageReadError, match=r"cannot read '.*notes.png' as an image.*data.skip_bad_images=true"):
        SRDataModule(train_dir=str(folder), val_dir=None, patch_size=8).setup("fit")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = SRDataModule(train_dir=str(folder), val_dir=None, patch_size=8, skip_bad_images=True)
        dm.setup("fit")
    assert len(dm._pairs[str(folder)]) == 2
    assert any("notes.png" in str(w.message) for w in caught)


def test_truncated_image(tmp_path):
    folder = write_folder(tmp_path / "imgs", 1, (64, 64))
    data = (folder / "img00.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        SRDataModule(train_dir=str(folder), val_dir=None, patch_size=8).setup("fit")


def test_image_smaller_than_the_patch(tiny_data):
    with pytest.raises(ValueError, match=r"smaller than the patch: data.patch_size=40 LR pixels x scale 3 = 120"):
        _dm(tiny_data, patch_size=40, scale=3).setup("fit")


def test_bad_options(tiny_data):
    with pytest.raises(ValueError, match="data.scale=1.5"):
        _dm(tiny_data, scale=1.5)
    with pytest.raises(ValueError, match="data.channels=2"):
        _dm(tiny_data, channels=2)
    with pytest.raises(ValueError, match="unknown sample split"):
        SRDataModule(train_dir="sample:everything").setup("fit")
    with pytest.raises(ValueError, match="data.degradation.border='wrap'"):
        _dm(tiny_data, degradation={"border": "wrap"})


def test_distributed_eval_sampler_counts_every_image_once(tiny_data):
    from sr_lightning.data.datamodule import FlaggedPaddingSampler
    from sr_lightning.data.datasets import EvalDataset

    dm = _dm(tiny_data)
    dm.setup("test")
    ds = EvalDataset(dm._pairs[str(tiny_data["test"])])  # 2 images
    for world in (2, 3, 4):
        shards = [list(FlaggedPaddingSampler(ds, num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal batch counts on every rank
        real = [i for s in shards for i in s if not ds[i]["pad"]]
        assert sorted(real) == [0, 1]  # each image exactly once
