from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.data import Degradation, ImageReadError, SRDataModule, read_image
from sr_lightning.data.pairs import make_lr
from sr_lightning.ops import imresize, rgb_to_y
from tests.conftest import TouchOnUnpickle, write_folder


def _dm(tiny, **kw):
    args = {"train_dir": str(tiny["train"]), "val_dir": str(tiny["val"]), "test_dirs": {"t": str(tiny["test"])},
            "patch_size": 16, "batch_size": 4, "steps_per_epoch": 3}
    return SRDataModule(**{**args, **kw})


RGB_LR = {"source": "rgb_uint8", "border": "clamp"}  # data/degradation=benchmark_lr


@pytest.mark.parametrize(("scale", "channels"), [(2, 1), (3, 3), (4, 1)])
def test_batches(tiny_data, scale, channels):
    dm = _dm(tiny_data, scale=scale, channels=channels, degradation=RGB_LR if channels == 3 else None)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    b = batches[0]
    assert b["lr"].shape == (4, channels, 16, 16) and b["hr"].shape == (4, channels, 16 * scale, 16 * scale)
    assert b["lr"].dtype == torch.float32 and 0 <= b["lr"].min() and b["lr"].max() <= 1
    assert len(b["name"]) == 4 and b["scale"] == scale
    test = list(dm.test_dataloader()[0])
    assert len(test) == 2
    h, w = test[0]["hr"].shape[-2:]
    assert h % scale == 0 and w % scale == 0 and h == 62 - 62 % scale  # modcrop
    assert test[0]["lr"].shape[-2:] == (h // scale, w // scale)


def test_patches_are_aligned(tiny_data):
    """Each HR patch is exactly the region its LR patch came from."""
    dm = _dm(tiny_data, scale=2, channels=3, augment=True, degradation=RGB_LR)
    dm.setup("fit")
    pairs = dm._pairs[str(tiny_data["train"]), 2, True]
    torch.manual_seed(0)
    batches = [dm.train_dataloader().dataset[i] for i in range(5)]
    items = [{k: b[k][j] for k in ("lr", "hr", "name")} for b in batches for j in range(4)]
    for item in items:
        k = pairs.names.index(item["name"])
        # find the LR patch in its image (under any of the 8 flips/rotations): the HR patch must match too
        found = False
        for flip in (False, True):
            for rot in range(4):
                lr, hr = item["lr"], item["hr"]
                lr, hr = lr.rot90(-rot, (-2, -1)), hr.rot90(-rot, (-2, -1))
                if flip:
                    lr, hr = lr.flip(-1), hr.flip(-1)
                full_lr, full_hr = pairs.pair(k)
                windows = full_lr.unfold(1, 16, 1).unfold(2, 16, 1)  # C, y, x, 16, 16
                eq = (windows == lr[:, None, None]).all(-1).all(-1).all(0).nonzero()
                for y, x in eq.tolist():
                    found |= torch.equal(full_hr[:, 2 * y: 2 * y + 32, 2 * x: 2 * x + 32], hr)
        assert found


def _hr_rgb(tiny, h, w):
    return torch.from_numpy(np.asarray(Image.open(tiny["test"] / "img00.png"))[:h, :w].copy()).permute(2, 0, 1)


def test_default_lr_is_float_bicubic_of_the_uint8_y(tiny_data):
    """data/degradation=y_matlab: Y of the uint8 HR rounded to uint8, float64 MATLAB bicubic
    with mirrored borders; the HR target is that uint8 Y."""
    dm = _dm(tiny_data, scale=3, channels=1)
    assert dm.degradation == Degradation(source="y", border="symmetric")
    dm.setup("test")
    item = dm.test_dataloader()[0].dataset[0]
    y_u8 = torch.floor(rgb_to_y(_hr_rgb(tiny_data, 60, 69).double() / 255) * 255 + 0.5)
    torch.testing.assert_close(item["hr"], (y_u8 / 255).float())
    torch.testing.assert_close(item["lr"], imresize(y_u8 / 255, 1 / 3, border="symmetric").float())
    assert item["hr"].mul(255).sub(item["hr"].mul(255).round()).abs().max() < 1e-4  # on the uint8 grid


def test_benchmark_lr_is_matlab_uint8_bicubic_of_the_rgb_hr(tiny_data):
    dm = _dm(tiny_data, scale=3, channels=1, degradation=RGB_LR)
    dm.setup("test")
    item = dm.test_dataloader()[0].dataset[0]
    hr_rgb = _hr_rgb(tiny_data, 60, 69)
    lr_u8 = imresize(hr_rgb, 1 / 3, border="clamp")
    torch.testing.assert_close(item["lr"], rgb_to_y(lr_u8.double() / 255).float())
    torch.testing.assert_close(item["hr"], rgb_to_y(hr_rgb.double() / 255).float())


def test_float_degradation_differs_from_uint8(tiny_data):
    hr = _hr_rgb(tiny_data, 62, 70)
    a = make_lr(hr, 2, Degradation(source="rgb_uint8"))
    b = make_lr(hr, 2, Degradation(source="rgb_float"))
    assert a.dtype == torch.uint8 and b.dtype == torch.float32
    diff = (a.double() / 255 - b).abs()
    # only rounding separates them: 0.5 after the second pass, plus the first pass's 0.5
    # carried through weights whose absolute values sum to about 1.3
    assert 0 < diff.max() <= 1.5 / 255


def test_disk_cache_is_keyed_by_image_scale_and_degradation(tmp_path, tiny_data):
    hr = _hr_rgb(tiny_data, 60, 60)
    cache = tmp_path / "cache"
    a = make_lr(hr, 2, Degradation(), cache)
    assert len(list(cache.glob("*.pt"))) == 1
    torch.testing.assert_close(make_lr(hr, 2, Degradation(), cache), a)  # hit: no new entry
    assert len(list(cache.glob("*.pt"))) == 1
    make_lr(hr, 3, Degradation(), cache)
    make_lr(hr, 2, Degradation(border="clamp"), cache)
    make_lr(hr, 2, Degradation(source="rgb_float"), cache)
    hr2 = hr.clone()
    hr2[0, 0, 0] ^= 1
    make_lr(hr2, 2, Degradation(), cache)
    assert len(list(cache.glob("*.pt"))) == 5


def test_a_foreign_cache_entry_is_made_again_never_unpickled(tmp_path, tiny_data):
    """Cache entries are read as data: a pickle planted under an entry's name runs nothing,
    and an entry of the wrong shape is not used; both are replaced by the right LR."""
    hr = _hr_rgb(tiny_data, 60, 60)
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    want = make_lr(hr, 2, Degradation(), cache)
    (entry,) = cache.glob("*.pt")
    for planted in (TouchOnUnpickle(marker), torch.zeros(1, 7, 7)):
        torch.save(planted, entry)
        torch.testing.assert_close(make_lr(hr, 2, Degradation(), cache), want)
        torch.testing.assert_close(torch.load(entry, weights_only=True), want)
    assert not marker.exists()


def test_two_writers_of_the_same_cache_entry_do_not_collide(tmp_path, tiny_data, monkeypatch):
    """DDP ranks (and data workers) build the same entries at once on a cold cache: here a
    second writer makes the entry between the first one's write and its rename."""
    hr = _hr_rgb(tiny_data, 60, 60)
    real_replace, other_writer_done = os.replace, []

    def replace(src, dst):
        if not other_writer_done:
            other_writer_done.append(True)
            make_lr(hr, 2, Degradation(), tmp_path)  # the other writer, start to finish
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    lr = make_lr(hr, 2, Degradation(), tmp_path)
    assert other_writer_done and lr.shape == (3, 30, 30)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]  # one entry, no temporary file


def test_sample_source_needs_no_files():
    dm = SRDataModule(test_sets=["sample:test"], steps_per_epoch=1)
    dm.setup()
    assert dm.test_set_names == ["sample"]
    assert dm._pairs["sample:test", 2, True].names == ["chelsea", "rocket"]
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
    with pytest.raises(FileNotFoundError, match=r"data.test_sets \(t\): folder '.*empty' contains no images"):
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
    assert len(dm._pairs[str(folder), 2, True]) == 2
    assert any("notes.png" in str(w.message) for w in caught)


def test_truncated_image(tmp_path):
    folder = write_folder(tmp_path / "imgs", 1, (64, 64))
    data = (folder / "img00.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        SRDataModule(train_dir=str(folder), val_dir=None, patch_size=8).setup("fit")


def test_image_smaller_than_the_patch(tiny_data):
    with pytest.raises(ValueError, match=r"smaller than the x3 patch: 40 LR pixels x 3 = 120 HR pixels; lower "
                                         r"data.patch_size"):
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
    with pytest.raises(ValueError, match="data.degradation.source='jpeg'"):
        _dm(tiny_data, degradation={"source": "jpeg"})
    with pytest.raises(ValueError, match=r"source='y' makes Y-only pairs but data.channels=3: .*data/degradation="
                                         r"benchmark_lr"):
        _dm(tiny_data, channels=3)
    with pytest.raises(ValueError, match="data.train_scales=1"):
        _dm(tiny_data, train_scales=[2, 1])


def test_distributed_eval_sampler_counts_every_image_once(tiny_data):
    from sr_lightning.data.datamodule import FlaggedPaddingSampler
    from sr_lightning.data.datasets import EvalDataset

    dm = _dm(tiny_data)
    dm.setup("test")
    ds = EvalDataset(dm._pairs[str(tiny_data["test"]), 2, True])  # 2 images
    for world in (2, 3, 4):
        shards = [list(FlaggedPaddingSampler(ds, num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal batch counts on every rank
        real = [i for s in shards for i in s if not ds[i]["pad"]]
        assert sorted(real) == [0, 1]  # each image exactly once


# -- test sets by name ---------------------------------------------------------------------

def test_named_test_sets_resolve_under_the_benchmark_dir(tmp_path, tiny_data):
    bench = tmp_path / "benchmark"
    write_folder(bench / "Set5", 2, (48, 40))
    write_folder(bench / "Urban100", 1, (48, 40))
    dm = SRDataModule(train_dir=None, val_dir=None, test_sets=["Set5", "urban100", str(tiny_data["test"])],
                      test_dirs={"mine": str(tiny_data["val"])}, benchmark_dir=str(bench))
    assert dm.test_dirs == {"Set5": str(bench / "Set5"), "Urban100": str(bench / "Urban100"),
                            "test": str(tiny_data["test"]), "mine": str(tiny_data["val"])}
    with pytest.raises(FileNotFoundError, match=r"'Set15' is not a folder under '.*benchmark' \(found: Set5, "
                                                r"Urban100\); fix the name"):
        SRDataModule(test_sets=["Set15"], benchmark_dir=str(bench))
    with pytest.raises(FileNotFoundError, match=r"data.benchmark_dir='.*nowhere', which does not exist; set "
                                                r"SR_DATA_DIR"):
        SRDataModule(test_sets=["Set5"], benchmark_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"folder '.*missing' does not exist"):
        SRDataModule(test_sets=[str(tmp_path / "missing")], benchmark_dir=str(bench))
    with pytest.raises(ValueError, match="two test sets are named 'Set5'"):
        SRDataModule(test_sets=["Set5"], test_dirs={"Set5": str(tiny_data["test"])}, benchmark_dir=str(bench))


def test_grayscale_images_are_flagged(tmp_path):
    folder = write_folder(tmp_path / "t", 1, (40, 40))
    Image.open(folder / "img00.png").convert("L").save(folder / "gray.png")
    dm = SRDataModule(train_dir=None, val_dir=None, test_sets=[str(folder)], channels=3, degradation=RGB_LR)
    dm.setup("test")
    ds = dm.test_dataloader()[0].dataset
    items = {ds[i]["name"]: ds[i] for i in range(len(ds))}
    assert items["gray"]["gray"] and not items["img00"]["gray"]
    assert items["gray"]["hr"].shape[0] == 3 and torch.equal(items["gray"]["hr"][0], items["gray"]["hr"][2])


# -- training batches ------------------------------------------------------------------------

def scales_of_batches(dm: SRDataModule) -> set[int]:
    """The scales of an epoch of training batches (of 2 Y patches), each batch checked to hold
    patches of its scale's sides."""
    dm.setup("fit")
    torch.manual_seed(0)
    seen = set()
    for b in dm.train_dataloader():
        s, p = b["scale"], dm.patch_sizes[b["scale"]]
        assert b["lr"].shape == (2, 1, p, p) and b["hr"].shape == (2, 1, s * p, s * p)
        seen.add(s)
    return seen


def test_multi_scale_batches_have_one_scale_each(tiny_data):
    """VDSR-style training: 41x41 HR patches -> LR sides 21/14/10 at x2/x3/x4 (HR 42/42/40)."""
    dm = _dm(tiny_data, train_scales=[2, 3, 4], patch_size_hr=41, steps_per_epoch=30, batch_size=2)
    assert dm.patch_sizes == {2: 21, 3: 14, 4: 10}
    assert scales_of_batches(dm) == {2, 3, 4}


def test_x8_trains_beside_x2_and_x4_from_the_lr_cache(tiny_data, tmp_path):
    """x8 goes wherever a scale goes: 64x64 HR patches -> 8x8 LR at x8 (32 at x2, 16 at x4); the
    cached LR of an image is the MATLAB bicubic x1/8 of its modcropped HR, and a second data
    module reads it back instead of making it again."""
    from sr_lightning.ops import imresize

    kw = {"scale": 8, "train_scales": [2, 4, 8], "patch_size_hr": 64, "steps_per_epoch": 12, "batch_size": 2,
          "cache_dir": str(tmp_path / "cache")}
    dm = _dm(tiny_data, **kw)
    assert dm.patch_sizes == {2: 32, 4: 16, 8: 8}
    assert scales_of_batches(dm) == {2, 4, 8}
    lr, hr = dm._train_set.pairs[8].pair(0)
    assert hr.shape[-2:] == (96, 80) and lr.shape[-2:] == (12, 10)
    assert torch.allclose(lr, imresize(hr.double(), 1 / 8, border="symmetric").float(), atol=1e-6)
    cached = sorted((tmp_path / "cache").iterdir())
    again = _dm(tiny_data, **kw)
    again.setup("fit")
    assert torch.equal(again._train_set.pairs[8].pair(0)[0], lr) and sorted((tmp_path / "cache").iterdir()) == cached


def test_several_training_folders_are_used_together(tmp_path, tiny_data):
    other = write_folder(tmp_path / "more", 2, (64, 64), seed=3)
    dm = _dm(tiny_data, train_dir=[str(tiny_data["train"]), str(other)])
    dm.setup("fit")
    names = dm._train_set.pairs[2].names
    assert len(names) == len(list(tiny_data["train"].iterdir())) + 2
