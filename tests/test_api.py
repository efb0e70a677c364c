"""The Python API: ``sr_lightning.load(path)``, ``model.upscale(...)`` on every kind of image
(the same pixels as the upscale command), ``model.evaluate(...)`` (the eval command's numbers),
and the README's example run as a doctest."""

from __future__ import annotations

import doctest
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import sr_lightning
from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.errors import UserError
from tests.conftest import ROOT, run_entry, write_folder


@pytest.fixture(scope="module")
def model(trained_srcnn):
    return sr_lightning.load(trained_srcnn / "checkpoints/last.ckpt", device="cpu")


def test_upscale_takes_paths_pil_images_arrays_and_tensors_as_the_command_does(model, trained_srcnn, tmp_path):
    src = write_folder(tmp_path / "in", 1, (40, 52), seed=3) / "img00.png"
    run_entry("sr_lightning.upscale", f"ckpt_path={trained_srcnn / 'checkpoints/last.ckpt'}", f"input={src}",
              f"output={tmp_path / 'cli.png'}", "tile=16")
    cli = np.asarray(Image.open(tmp_path / "cli.png"))
    assert model.scale == 2 and model.channels == 1  # a Y network, given RGB

    from_path = model.upscale(src, tile=16)
    assert isinstance(from_path, Image.Image) and from_path.mode == "RGB"
    assert np.array_equal(np.asarray(from_path), cli)
    assert np.array_equal(np.asarray(model.upscale(Image.open(src), tile=16)), cli)
    array = np.asarray(Image.open(src))
    assert np.array_equal(model.upscale(array, tile=16), cli)
    assert np.array_equal(model.upscale(array, tile=None), cli)  # tiled == one pass (SRCNN's field < 48)

    x = torch.from_numpy(array).permute(2, 0, 1).float() / 255  # (3, H, W) float in [0, 1]
    sr = model.upscale(x, tile=16)
    assert sr.shape == (3, 80, 104) and sr.dtype == torch.float32
    assert np.abs(sr.permute(1, 2, 0).numpy() * 255 - cli).max() <= 0.5 + 1e-3  # cli = round(sr * 255)
    batch = model.upscale(torch.stack([x, x.flip(-1)]))
    assert batch.shape == (2, 3, 80, 104) and torch.allclose(batch[0], sr, atol=1e-6)
    gray = model.upscale(array[..., 0])  # uint8 (H, W) -> uint8 (2H, 2W)
    assert gray.shape == (80, 104) and gray.dtype == np.uint8


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((8, 8, 3), np.float32), "give uint8 (H, W), (H, W, 3) or (H, W, 4)"),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), "give a float tensor (C, H, W) or (N, C, H, W)"),
    (torch.zeros(2, 8, 8), "with C = 1 or 3"),
    ([1, 2], "a list is not an image"),
])
def test_upscale_names_what_it_takes(model, image, message):
    with pytest.raises(UserError, match=re.escape(message)):
        model.upscale(image)


def test_evaluate_gives_the_eval_commands_numbers(model, trained_srcnn, tiny_data, tmp_path):
    got = model.evaluate([str(tiny_data["test"])], show_table=False)
    run_entry("sr_lightning.eval", f"ckpt_path={trained_srcnn / 'checkpoints/last.ckpt'}",
              f"data.test_sets=[{tiny_data['test']}]", f"hydra.run.dir={tmp_path}")
    assert got == json.loads((tmp_path / "metrics.json").read_text())
    assert list(got) == ["test"] and got["test"]["num_images"] == 2


def test_evaluate_scores_the_model_as_it_was_loaded(trained_srcnn, tiny_data, tmp_path, monkeypatch):
    """load(self_ensemble=True).evaluate() scores the x8 self-ensemble (as eval with
    evaluation.self_ensemble=true does, not the single pass), on the device it was loaded for,
    from the checkpoint it read (the file is not read again)."""
    ckpt = trained_srcnn / "checkpoints/last.ckpt"
    ensemble = sr_lightning.load(ckpt, device="cpu", self_ensemble=True)
    reads = []
    monkeypatch.setattr("sr_lightning.files.read_data", lambda *a: reads.append(a))  # every read of a tensor file
    got = ensemble.evaluate([str(tiny_data["test"])], show_table=False)["test"]
    assert reads == []
    monkeypatch.undo()
    run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", f"data.test_sets=[{tiny_data['test']}]",
              "evaluation.self_ensemble=true", "trainer.accelerator=cpu", f"hydra.run.dir={tmp_path / 'e'}")
    assert got == json.loads((tmp_path / "e/metrics.json").read_text())["test"]
    run_entry("sr_lightning.eval", f"ckpt_path={ckpt}", f"data.test_sets=[{tiny_data['test']}]",
              f"hydra.run.dir={tmp_path / 's'}")
    assert got["psnr"] != json.loads((tmp_path / "s/metrics.json").read_text())["test"]["psnr"]


def test_the_readme_example_runs(sr_data, tmp_path, monkeypatch):
    """The README's "Python API" example, run as a doctest beside the checkpoint it loads."""
    convert_main(["--format", "srcnn-mat", "--scale", "3", str(sr_data / "weights/srcnn_955_imagenet/x3.mat"),
                  str(tmp_path / "srcnn_x3.ckpt")])
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"### The Python API\n.*?```python\n(.*?)```", readme, re.S)
    assert example, "README: the '### The Python API' section with its python example"
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(example.group(1), {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and len(test.examples) >= 5
