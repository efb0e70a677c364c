"""sr-compare: the paper's visual-comparison figure. Its crops are the models' outputs at the
box, its numbers eval's for the image, its page a working before/after slider in a real
headless browser, and a bad input stops it with one line before any file is written."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import sr_lightning
from sr_lightning.comparison import zoomed
from sr_lightning.comparison.figure import figure_bytes
from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.errors import UserError
from tests.conftest import run_cli, run_entry
from tests.wandb_files import read_run

BOX = [176, 128, 48, 64]  # baby's left eye, [y, x, h, w] in HR pixels


@pytest.fixture(scope="module")
def rlfn(sr_data):
    return sr_data / "weights/rlfn_official/rlfn_x4.pth"


@pytest.fixture(scope="module")
def baby_figure(sr_data, rlfn, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "baby_x4"
    comparison, files = run_entry("sr_lightning.compare", "image=Set5", "index=0", f"box=[{','.join(map(str, BOX))}]",
                                  f"models=[bicubic,{rlfn}]", f"output={out}")
    return comparison, files


def _eval_one(tmp_path, sr_data, *args):
    folder = tmp_path / "one"
    folder.mkdir(exist_ok=True)
    shutil.copy(sr_data / "benchmark/Set5/baby.png", folder)
    run_entry("sr_lightning.eval", *args, f"data.test_sets=[{folder}]", "data.scale=4", "data.channels=3",
              "data/degradation=benchmark_lr", f"hydra.run.dir={tmp_path / 'ev'}")
    return json.loads((tmp_path / "ev/metrics.json").read_text())["one"]


def test_crops_are_the_models_outputs_and_numbers_are_evals(baby_figure, sr_data, rlfn, tmp_path):
    comparison, files = baby_figure
    y, x, h, w = BOX
    assert [m.label for m in comparison.methods] == ["Bicubic", "rlfn"] and comparison.zoom == 3
    # The RLFN crop: what `upscale` makes of the standard LR file (which benchmark_lr reproduces bit-exactly).
    lr = sr_data / "reference/imresize/benchmark_lr/Set5/x4/baby.png"
    sr = np.asarray(sr_lightning.load(rlfn).upscale(lr, tile=None))
    assert np.array_equal(comparison.methods[1].image[y: y + h, x: x + w], sr[y: y + h, x: x + w])
    assert np.array_equal(comparison.hr, np.asarray(Image.open(sr_data / "benchmark/Set5/baby.png").convert("RGB")))
    crops = dict(comparison.crops())
    assert crops["rlfn"].shape == (3 * h, 3 * w, 3)
    assert np.array_equal(crops["rlfn"][::3, ::3], sr[y: y + h, x: x + w])  # nearest: each pixel a 3x3 block
    assert np.array_equal(crops["rlfn"], zoomed(sr[y: y + h, x: x + w], 3))
    # The numbers under the crops are eval's for this image, with the same data options.
    for method, args in zip(comparison.methods, (["model=bicubic"], [f"ckpt_path={rlfn}"]), strict=True):
        m = _eval_one(tmp_path, sr_data, *args)
        assert (method.psnr, method.ssim) == (m["psnr"], m["ssim"]), method.label
    assert comparison.methods[1].psnr > comparison.methods[0].psnr + 1.5
    # The files: a PNG and a PDF figure, a page whose inlined crops are the same pixels.
    assert Image.open(files["png"]).format == "PNG" and files["pdf"].read_bytes()[:5] == b"%PDF-"
    assert figure_bytes(comparison, "pdf") == files["pdf"].read_bytes()  # no time stamp: reproducible
    page = files["html"].read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    inlined = json.loads(re.search(r'id="crops-data">(.*?)</script>', page, re.S)[1].replace("<\\/", "</"))
    png = base64.b64decode(inlined["rlfn"].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), crops["rlfn"])
    assert "33.7" in page and f"{comparison.methods[1].psnr:.3f}" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(page, png, fragment=""):
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", "--force-color-profile=srgb", "--window-size=600,400",
                    "--virtual-time-budget=3000", f"--screenshot={png}", f"file://{page}{fragment}"],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium: .ci/run and "
                                              "`make test-browser` install it)")
def test_the_page_slider_works_in_a_headless_browser(baby_figure, tmp_path):
    """The page's screenshot in chromium: left of the slider the first method's crop, right of it
    the last's, at the start position (50%) and where the slider's input is set (25%)."""
    comparison, files = baby_figure
    crops = dict(comparison.crops())
    left, right = crops["Bicubic"].astype(np.int16), crops["rlfn"].astype(np.int16)
    h, w = left.shape[:2]

    def columns(shot, a, b):
        return shot[:h, a:b]

    for fragment, cut in (("", w // 2), ("#slider=25", w // 4)):
        shot = _screenshot(files["html"], tmp_path / "shot.png", fragment)
        for a, b, want, other in ((0, cut - 3, left, right), (cut + 3, w, right, left)):
            seen = columns(shot, a, b)
            assert np.abs(seen - want[:, a:b]).mean() < 1.0, (fragment, a, b)
            assert np.abs(seen - other[:, a:b]).mean() > 2.0, (fragment, a, b)  # the two methods differ there
        handle = shot[:h, cut: cut + 2].reshape(-1, 3).mean(axis=0)
        assert handle[0] > 180 and handle[1] < 90, fragment  # the red handle at the boundary


def test_bad_inputs_stop_before_any_file(sr_data, rlfn, tmp_path):
    out = tmp_path / "fig"
    args = ["image=Set5", "index=0", f"output={out}"]
    with pytest.raises(UserError, match=r"reaches outside the image: the HR image is 512x512"):
        run_entry("sr_lightning.compare", *args, "box=[480,100,48,48]", f"models=[bicubic,{rlfn}]")
    with pytest.raises(UserError, match=r"smaller than the scale x4.*512x512"):
        run_entry("sr_lightning.compare", *args, "box=[10,10,3,40]", f"models=[{rlfn}]")
    with pytest.raises(UserError, match=r"index=7: Set5 has 5 images \(index 0\.\.4: 0=baby"):
        run_entry("sr_lightning.compare", "image=Set5", "index=7", "box=[0,0,8,8]", "models=[bicubic]")
    srcnn = tmp_path / "srcnn_x2.ckpt"
    convert_main(["--format", "srcnn-mat", "--scale", "2", str(sr_data / "weights/srcnn_955_imagenet/x2.mat"),
                  str(srcnn)])
    with pytest.raises(UserError, match=rf"models of different scales in one figure: {srcnn} is x2, {rlfn} is x4"):
        run_entry("sr_lightning.compare", *args, "box=[0,0,8,8]", f"models=[bicubic,{srcnn},{rlfn}]")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x80\x02 not a state dict")
    run = run_cli("sr_lightning.compare", *args, "box=[0,0,8,8]", f"models=[bicubic,{broken}]", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "broken.pth" in lines[0], run.stderr
    assert not list(tmp_path.glob("fig*")), "no figure, page or half-written PDF"


def test_a_gray_image_with_rgb_models_says_what_is_compared(sr_data, rlfn, tmp_path):
    bridge = sr_data / "benchmark/Set14/bridge.png"
    run = run_cli("sr_lightning.compare", f"image={bridge}", "box=[100,100,40,40]", f"models=[bicubic,{rlfn}]",
                  f"output={tmp_path / 'bridge'}")
    assert "note: 'bridge.png' is a grayscale image: the RGB models (rlfn) upscale it as three equal channels; " \
           "PSNR/SSIM compare its gray levels (its own Y; evaluation.gray=own)" in run.stdout
    assert "grayscale image" in (tmp_path / "bridge.html").read_text()


def test_the_panel_goes_to_a_wandb_run(sr_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    comparison, _ = run_entry("sr_lightning.compare", "image=Set5", "index=2", "box=[100,100,32,32]",
                              "models=[bicubic]", "data.scale=3", f"output={tmp_path / 'fig'}",
                              "+wandb.project=sr-compare-test", f"+wandb.dir={tmp_path}", "+wandb.name=butterfly")
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_run(run_dir)
    assert run["name"] == "butterfly" and run["config"]["scale"] == 3 and run["config"]["box"] == [100, 100, 32, 32]
    (logged,) = [h for h in run["history"] if "compare/table/_type" in h]
    assert logged["compare/figure/_type"] == "image-file" and logged["compare/table/_type"] == "table-file"
    assert "Bicubic" in logged["compare/figure/caption"]
    table = json.loads((run_dir / "files" / logged["compare/table/path"]).read_text())
    assert table["columns"] == ["method", "psnr", "ssim", "crop"]
    assert table["data"][0][:3] == ["Bicubic", comparison.methods[0].psnr, comparison.methods[0].ssim]
