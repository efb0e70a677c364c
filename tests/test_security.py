"""Issue 29's payloads: a file given to sr_lightning is data (nothing in it runs or chooses a
path), and a save that fails leaves the previous file whole and no partial file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lightning.checkpoint import AtomicCheckpointIO, save_checkpoint
from sr_lightning.data.io import MAX_IMAGE_PIXELS, ImageReadError, read_image
from sr_lightning.data.shards import location_url, read_index
from sr_lightning.data.sources import load_location, read_header
from sr_lightning.errors import UserError
from sr_lightning.files import DiskFullError, load_tensors, write_atomically
from sr_lightning.inference import output_pairs
from sr_lightning.prepare import prepare
from tests.conftest import write_folder

PREPARE = {"crop": None, "step": None, "shard_size_mb": 256, "workers": 1, "skip_bad_images": False,
           "overwrite": False, "progress": {"every_s": 30, "when": "never"}}


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory) -> Path:
    from omegaconf import OmegaConf

    hr = write_folder(tmp_path_factory.mktemp("hr"), 3, (64, 64), seed=2)
    out = tmp_path_factory.mktemp("shards") / "s"
    prepare(OmegaConf.create({**PREPARE, "input": str(hr), "output": str(out)}))
    return out


def _with_names(folder: Path, dst: Path, *names: str) -> Path:
    index = json.loads((folder / "index.json").read_text())
    index["shards"] = [{**index["shards"][0], "name": n} for n in names]
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "index.json").write_text(json.dumps(index))
    return dst


@pytest.mark.parametrize("name", ["shard-000000.tar; touch {marker}; #", "pipe:touch {marker}", "../../evil.tar",
                                  "/etc/passwd.tar", "$(touch {marker}).tar", "a b.tar", "shard`id`.tar"])
def test_s1_s2_shard_names_from_an_index_are_refused_and_never_run(shard_folder, tmp_path, name):
    marker = tmp_path / "ran"
    index_dir = _with_names(shard_folder, tmp_path / "idx", name.format(marker=marker))
    for location in (str(index_dir), f"pipe:cat {index_dir}/{{name}}"):
        with pytest.raises(UserError, match=r"index.json': shards\[0\].name=.*not a plain .tar file name"):
            read_index(location)
    assert not marker.exists()


def test_s2_a_folder_given_as_dot_gives_absolute_paths_and_pipe_names_are_quoted(shard_folder, monkeypatch):
    monkeypatch.chdir(shard_folder)
    assert location_url(".", "shard-000000.tar") == str(shard_folder.resolve() / "shard-000000.tar")
    assert location_url("pipe:cat /d/{name}", "shard-000000.tar") == "pipe:cat /d/shard-000000.tar"
    with pytest.raises(UserError, match="not a plain .tar file name"):
        location_url("pipe:cat /d/{name}", "x;y.tar")


@pytest.mark.parametrize(("field", "value", "says"), [("min_side", None, "min_side=None is not a positive integer"),
                                                      ("min_side", "big", "min_side='big' is not a positive integer"),
                                                      ("crop", -3, "crop=-3 is not a positive integer or null")])
def test_a_malformed_shard_index_is_one_line(shard_folder, tmp_path, field, value, says):
    index = json.loads((shard_folder / "index.json").read_text())
    index[field] = value
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=says):
        read_index(str(tmp_path))


def test_d1_a_failing_writer_leaves_the_previous_file_whole_and_no_part(tmp_path):
    target = tmp_path / "last.ckpt"
    save_checkpoint({"step": torch.tensor(1)}, target)

    def dies(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, dies)
    assert torch.load(target, weights_only=True)["step"] == 1 and os.listdir(tmp_path) == ["last.ckpt"]


KILLED_WRITER = textwrap.dedent("""
    import sys, torch
    from sr_lightning.checkpoint import save_checkpoint
    big = torch.arange(8_000_000, dtype=torch.float32)
    print("ready", flush=True)
    step = 2
    while True:
        save_checkpoint({"step": torch.tensor(step), "big": big + step}, sys.argv[1])
        step += 1
""")


def test_d1_kill_9_mid_write_keeps_a_loadable_checkpoint_and_the_next_save_clears_the_part(tmp_path):
    """A process killed while writing 32 MB checkpoints in a loop, at several moments: the
    file always loads whole, and the dead writer's .part is removed by the next save."""
    target = tmp_path / "last.ckpt"
    save_checkpoint({"step": torch.tensor(1), "big": torch.zeros(1)}, target)
    for delay in (0.05, 0.2, 0.5, 1.0):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ckpt = torch.load(target, weights_only=True)
        assert ckpt["step"] >= 1 and (ckpt["step"] == 1 or ckpt["big"][0] == ckpt["step"])
    save_checkpoint({"step": torch.tensor(0)}, target)
    assert os.listdir(tmp_path) == ["last.ckpt"]


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the failing-writer tests cover the logic")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_d2_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(small_tmpfs):
    target = small_tmpfs / "best.ckpt"
    save_checkpoint({"w": torch.zeros(1000)}, target)
    with pytest.raises(DiskFullError, match=r"no space left for '.*best.ckpt': it needs 4.0 MB, .* free"):
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1_000_000)}, target)
    assert torch.load(target, weights_only=True)["w"].shape == (1000,) and os.listdir(small_tmpfs) == ["best.ckpt"]

    def fills(tmp: str) -> None:  # a writer that does not know its size: the disk fills mid-write
        Path(tmp).write_bytes(bytes(2_000_000))

    with pytest.raises(DiskFullError, match="more than the .* written when the disk filled"):
        write_atomically(small_tmpfs / "a.png", fills)
    assert os.listdir(small_tmpfs) == ["best.ckpt"]


def _png_claiming(path: Path, w: int, h: int) -> Path:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))
    return path


def test_d3_bombs_and_header_only_images_are_refused_or_skipped_naming_the_file(tmp_path):
    bomb = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ImageReadError, match=r"bomb.png' claims 100000x100000 .* max_image_pixels"):
        read_image(bomb)
    header_only = _png_claiming(tmp_path / "header.png", 12_000, 10_000)
    with pytest.raises(ImageReadError, match=r"header.png' as an image \(image file is truncated"):
        read_image(header_only)
    assert read_header(header_only, skip_bad_images=False) == ((12_000, 10_000), True)  # the header reads
    with pytest.warns(UserWarning, match="skipping cannot read .*header.png"):
        assert read_header(header_only, skip_bad_images=True, decode=True) is None
    with pytest.raises(ImageReadError, match="over the limit of 0"):
        read_image(header_only, max_pixels=100)
    assert MAX_IMAGE_PIXELS == 2**27


def test_d3_a_1x1_image_names_its_path_and_is_skipped(tmp_path):
    write_folder(tmp_path, 2, (40, 40), seed=1)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageReadError, match=r"dot.png' \(1x1\) is too small.*skip_bad_images=true"):
        load_location(str(tmp_path), "data.train_dir", min_side=2)
    with pytest.warns(UserWarning, match="skipping"):
        assert len(load_location(str(tmp_path), "data.train_dir", min_side=2, skip_bad_images=True)) == 2


def test_d4_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((96, 128, 3), np.uint8)
    pixels[:10, :, 0] = 255  # a red band along the top of the stored pixels
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise to show
    im.save(tmp_path / "phone.png", exif=exif)
    shown, _, _ = read_image(tmp_path / "phone.png")
    assert shown.shape == (128, 96, 3) and shown[:, -10:, 0].min() == 1.0  # the band is on the right
    assert read_header(tmp_path / "phone.png")[0] == (96, 128)


def test_d5_upscale_never_overwrites_an_input_or_two_results_to_one_name(tmp_path):
    for name in ("a.png", "photo.jpg", "photo.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    with pytest.raises(UserError, match="is an input image, which upscale never replaces"):
        output_pairs(tmp_path / "a.png", tmp_path / "a.png", overwrite=True)
    with pytest.raises(UserError, match="is an input image"):
        output_pairs(tmp_path, tmp_path, overwrite=True)
    out = tmp_path / "out"
    out.mkdir()
    assert sorted(o.name for _, o in output_pairs(tmp_path, out)) == ["a.png", "photo_jpg.png", "photo_png.png"]
    (out / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match="a.png' exists; set overwrite=true"):
        output_pairs(tmp_path, out)
    assert len(output_pairs(tmp_path, out, overwrite=True)) == 3


@pytest.mark.parametrize(("content", "says"), [(b"", r"is empty \(0 bytes"),
                                               (bytes(range(7, 71)), "not a PyTorch file")])
def test_rough_edges_unreadable_checkpoints_are_one_whole_line(tmp_path, content, says):
    (tmp_path / "x.ckpt").write_bytes(b"\x00" + content if content else b"")
    with pytest.raises(UserError, match=says) as err:
        load_tensors(tmp_path / "x.ckpt", "ckpt_path", "a checkpoint")
    assert "\n" not in str(err.value) and str(err.value).endswith("give a checkpoint")


def test_rough_edges_a_pickled_checkpoint_says_what_it_holds_and_nothing_runs(tmp_path):
    from tests.conftest import TouchOnUnpickle

    torch.save({"state_dict": TouchOnUnpickle(tmp_path / "ran")}, tmp_path / "p.ckpt")
    with pytest.raises(UserError, match="holds Python objects .* never unpickles") as err:
        load_tensors(tmp_path / "p.ckpt", "ckpt_path", "a checkpoint")
    assert "\n" not in str(err.value) and not (tmp_path / "ran").exists()


def test_d5_a_folder_upscale_reports_each_failed_file_and_goes_on(trained_srcnn, tmp_path):
    from tests.conftest import run_cli

    src = write_folder(tmp_path / "in", 2, (20, 24), seed=3)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    run = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src}", f"output={tmp_path / 'out'}",
                  check=False)
    assert run.returncode == 2 and "1 of 3 image(s) failed, the other 2 written" in run.stderr + run.stdout
    assert "broken.png (cannot read" in run.stderr + run.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img00.png", "img01.png"]
    again = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={src / 'img00.png'}",
                    f"output={tmp_path / 'out' / 'img00.png'}", check=False)
    assert again.returncode == 2 and "exists; set overwrite=true" in again.stderr + again.stdout


def test_rough_edges_upscale_formats_onnx_hint_and_full_disk(trained_srcnn, tmp_path, small_tmpfs):
    from tests.conftest import run_cli

    Image.new("RGBA", (16, 16), (10, 20, 30, 128)).save(tmp_path / "rgba.png")
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    run = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={tmp_path / 'rgba.png'}",
                  f"output={tmp_path / 'o.jpg'}", check=False)
    assert run.returncode == 2 and "JPEG cannot hold an alpha channel; write .png" in run.stderr
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    run = run_cli("sr_lightning.upscale", f"ckpt_path={tmp_path / 'm.onnx'}", f"input={tmp_path / 'rgba.png'}",
                  f"output={tmp_path / 'o.png'}", check=False)
    assert run.returncode == 2 and "is an ONNX file: add backend=onnx" in run.stderr
    (small_tmpfs / "filler").write_bytes(bytes(1_040_000))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    run = run_cli("sr_lightning.upscale", f"ckpt_path={ckpt}", f"input={tmp_path / 'n.png'}",
                  f"output={small_tmpfs / 'n.png'}", check=False)
    assert run.returncode == 2 and f"no space left for '{small_tmpfs / 'n.png'}'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and sorted(os.listdir(small_tmpfs)) == ["filler"]


def test_rough_edges_a_one_pass_upscale_out_of_memory_says_to_tile():
    from sr_lightning.inference import is_out_of_memory

    with pytest.raises(RuntimeError) as err:
        torch.empty(2**60, dtype=torch.uint8)  # a real allocation failure of the CPU allocator
    assert is_out_of_memory(err.value) and not is_out_of_memory(RuntimeError("shape mismatch"))


def test_d1_training_checkpoints_go_through_the_atomic_writer_not_tmpdir(tiny_data, tmp_path, monkeypatch):
    """Lightning's own checkpoint IO writes to $TMPDIR and moves the file (a copy in place
    across file systems): train's trainer uses the project's writer, and $TMPDIR stays empty."""
    import tempfile

    from tests.conftest import run_entry, tiny_args

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)
    _, objects = run_entry("sr_lightning.train", *tiny_args(tiny_data, tmp_path / "run", "model=espcn",
                                                             "trainer.max_steps=4", "test=false"))
    assert isinstance(objects["trainer"].strategy.checkpoint_io, AtomicCheckpointIO)
    ckpts = sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir())
    assert "last.ckpt" in ckpts and all(not n.startswith(".") for n in ckpts)
    assert not [p for p in spool.rglob("*") if p.suffix in (".ckpt", ".part") or p.stat().st_size > 100_000]


def test_d7_rcan_mean_shifts_that_differ_from_the_standard_are_folded_exactly():
    """The authors' sub_mean/add_mean train (requires_grad is set on the module, not on its
    parameters): a file with other values gives, after import, what the authors' forward
    computes with them (here: our modules with the file's shifts applied by hand)."""
    import torch.nn.functional as F

    from sr_lightning.nets import create_net
    from sr_lightning.nets.rcan import fold_mean_shift

    torch.manual_seed(0)
    kw = {"scale": 2, "in_channels": 3, "num_groups": 1, "num_blocks": 1, "img_range": 255.0}
    plain = create_net("rcan", rgb_mean=None, **kw)
    for p in plain.parameters():
        p.data.normal_(0, 0.02)
    mean = torch.tensor([0.4488, 0.4371, 0.4040])
    ws, wa = torch.eye(3) + 0.05 * torch.randn(3, 3), torch.eye(3) + 0.05 * torch.randn(3, 3)
    bs, ba = -255 * mean + torch.randn(3), 255 * mean + torch.randn(3)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        h = plain.head(F.conv2d(lr * 255, ws[:, :, None, None], bs))
        authors = F.conv2d(plain.tail(h + plain.body(h)), wa[:, :, None, None], ba) / 255
    cfg = {"name": "rcan", **kw, "rgb_mean": mean.tolist()}
    derived = {"sub_mean.weight": ("sub_mean.weight", ws[:, :, None, None]), "sub_mean.bias": ("sub_mean.bias", bs),
               "add_mean.weight": ("add_mean.weight", wa[:, :, None, None]), "add_mean.bias": ("add_mean.bias", ba)}
    folded_cfg, tensors = fold_mean_shift(cfg, dict(plain.state_dict()), derived, Path("rcan.pth"))
    net = create_net("rcan", **{k: v for k, v in folded_cfg.items() if k != "name"})
    net.load_state_dict(tensors, strict=False)
    with torch.no_grad():
        assert (net(lr) - authors).abs().max() < 1e-5
    standard = {k: (k, v) for k, v in {"sub_mean.weight": torch.eye(3)[:, :, None, None], "sub_mean.bias": -255 * mean,
                                       "add_mean.weight": torch.eye(3)[:, :, None, None],
                                       "add_mean.bias": 255 * mean}.items()}
    assert fold_mean_shift(cfg, tensors, standard, Path("rcan.pth")) == (cfg, tensors)  # nothing changed


@pytest.mark.parametrize("config", ["swinir", "span", "hat", "swin2sr", "drct", "srformer", "dat", "rgt", "atd",
                                    "craft"])
def test_d7_derived_release_tensors_must_equal_what_the_network_computes(config):

    from sr_lightning.convert.release import check_derived, expected_derived, release_format
    from sr_lightning.errors import WeightFormatError
    from sr_lightning.nets import create_net
    from sr_lightning.nets.release_format import derived_keys, our_keys

    layout = json.loads((Path(__file__).parent / "convert/release_layouts.json").read_text())[config]
    torch.manual_seed(0)
    net = create_net(layout["net"], **{"in_channels": 3, **layout["kwargs"]})
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    shapes = {k: torch.empty(s) for k, s in layout["keys"].items()}
    fmt = release_format(config)  # what the network says about its release, beside it
    release = {k: net.state_dict()[ours].clone() for ours, (k, _) in our_keys(fmt, shapes).items()}
    for ours, (k, like) in derived_keys(fmt, shapes).items():
        release[k] = expected_derived(net, ours, like).detach().clone()
    cfg = {"name": layout["net"], "in_channels": 3, **layout["kwargs"]}
    tensors = {ours: v for ours, (_, v) in our_keys(fmt, release).items()}
    check_derived(cfg, tensors, derived_keys(fmt, release), Path("r.pth"))  # the authors' values pass
    key = next(k for k in release if fmt.is_derived(k))
    bad = dict(release)
    bad[key] = release[key].clone().contiguous()
    bad[key].view(-1)[0] += 1
    with pytest.raises(WeightFormatError, match=f"{re.escape(key)} is not what the network computes"):
        check_derived(cfg, tensors, derived_keys(fmt, bad), Path("r.pth"))


def test_d6_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    """hydra.run.dir goes through sr.unique_run_dir: one atomic mkdir per run, a suffix when
    the second's folder exists; 8 runs racing for one name get 8 folders."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig

    from sr_lightning.config import compose_config, unique_run_dir

    base = str(tmp_path / "runs" / "2026-12-02_10-00-00")
    assert unique_run_dir(base) == base and not (tmp_path / "runs").exists()  # composing only: nothing made
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(mode="RunMode.RUN")))
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: unique_run_dir(base), range(8)))
    assert len(set(made)) == 8 and sorted(Path(m).name for m in made)[:2] == ["2026-12-02_10-00-00",
                                                                                "2026-12-02_10-00-00_1"]
    monkeypatch.undo()
    run_dir = str(compose_config("train", []).hydra.run.dir)
    assert "/train/runs/" in run_dir and not Path(run_dir).exists()


@pytest.mark.parametrize(("key", "value"), [("scale", "two"), ("scale", "1e9"), ("channels", "rgb"),
                                            ("input_size", "64;64")])
def test_rough_edges_onnx_metadata_that_is_not_a_number_is_one_line(tmp_path, key, value):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    from sr_lightning.inference.onnx_runner import META, OnnxNet

    graph = helper.make_graph([helper.make_node("Identity", ["lr"], ["sr"])], "g",
                              [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 1, "h", "w"])],
                              [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 1, "h", "w"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"scale": "2", "channels": "1", key: value}
    helper.set_model_props(model, {f"{META}{k}": v for k, v in meta.items()})
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(UserError, match=f"metadata {META}{key}='{re.escape(value)}' is not"):
        OnnxNet(tmp_path / "m.onnx")


def test_rough_edges_the_lr_cache_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(small_tmpfs):
    from sr_lightning.data.pairs import Degradation, make_lr

    (small_tmpfs / "filler").write_bytes(bytes(1_040_000))
    hr = torch.randint(0, 255, (3, 120, 120), dtype=torch.uint8)
    with pytest.raises(DiskFullError, match=r"no space left for '.*\.pt': it needs"):
        make_lr(hr, 2, Degradation(), small_tmpfs / "lr")
    assert list((small_tmpfs / "lr").iterdir()) == []


def test_rough_edges_16_bit_to_jpeg_is_refused_before_any_work(tmp_path):
    from sr_lightning.data.io import check_writable

    with pytest.raises(UserError, match=r"o.jpg': JPEG cannot hold .*16 bits.*write .png"):
        check_writable(tmp_path / "o.jpg", 1, False, 65535)
    check_writable(tmp_path / "o.png", 1, False, 65535)
