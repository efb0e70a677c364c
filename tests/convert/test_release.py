"""PyTorch releases (--format pth): the authors' IMDN x4 reproduces its paper; wrappers, key
maps, safetensors and every kind of bad file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sr_lightning.convert import convert
from sr_lightning.convert.__main__ import main as convert_main
from sr_lightning.convert.release import release_format
from sr_lightning.lit import SRLitModule
from sr_lightning.nets import create_net, get_net_class
from sr_lightning.nets.release_format import first_mismatch, our_keys
from tests.conftest import TouchOnUnpickle, run_entry

# Our IMDN keys -> the release's (github.com/Zheng222/IMDN), the inverse of IMDN.release_format's key map.
TO_RELEASE = ((r"^head\.", "fea_conv."), (r"^blocks\.(\d+)\.", lambda m: f"IMDB{int(m[1]) + 1}."),
              (r"\.cca\.excite\.", ".cca.conv_du."), (r"^fuse\.0\.", "c.0."), (r"^body_tail\.", "LR_conv."),
              (r"^upsample\.0\.", "upsampler.0."))


def _release_state(net):
    out = {}
    for key, value in net.state_dict().items():
        for pattern, repl in TO_RELEASE:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    return out


@pytest.fixture(scope="module")
def imdn_x3():
    torch.manual_seed(0)
    return create_net("imdn", scale=3, in_channels=3).eval()


@pytest.mark.parametrize("layout", ["plain", "module_prefix", "params_ema", "state_dict", "safetensors"])
def test_release_layouts_import_to_the_same_network(imdn_x3, tmp_path, layout):
    state = _release_state(imdn_x3)
    src = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "safetensors":
        save_file(state, src)
    else:
        wrapped = {"plain": state, "module_prefix": {f"module.{k}": v for k, v in state.items()},
                   "params_ema": {"params_ema": state, "params": {k: v * 0 for k, v in state.items()}},
                   "state_dict": {"state_dict": state, "epoch": 7}}[layout]
        torch.save(wrapped, src)
    convert("pth", src, tmp_path / "m.ckpt", net="imdn")  # the scale (x3) and channels (RGB) found from the shapes
    module = SRLitModule.load_from_checkpoint(tmp_path / "m.ckpt").eval()
    assert module.scale == 3 and module.net.in_channels == 3
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        torch.testing.assert_close(module(x), imdn_x3(x))
    meta = torch.load(tmp_path / "m.ckpt", weights_only=True)["sr_lightning"]
    assert meta["trained_scales"] == [3] and meta["degradation"]["source"] == "rgb_uint8"
    assert meta["source"]["net"] == "imdn" and len(meta["source"]["sha256"]) == 64


def test_a_release_converts_without_naming_its_network(imdn_x3, tmp_path):
    """--format pth without --net: IMDN's release layout is detected, with its scale and width."""
    torch.save(_release_state(imdn_x3), tmp_path / "x3.pth")
    assert convert_main(["--format", "pth", str(tmp_path / "x3.pth"), str(tmp_path / "m.ckpt")]) == 0
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["name"] == "imdn" and ckpt["hyper_parameters"]["net"]["scale"] == 3
    assert ckpt["sr_lightning"]["source"]["layout"] == "release" and ckpt["sr_lightning"]["trained_scales"] == [3]
    module = SRLitModule.load_from_checkpoint(tmp_path / "m.ckpt").eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(module.net(x), imdn_x3(x))


def test_bad_release_files_get_one_line(imdn_x3, tmp_path, capsys):
    state = _release_state(imdn_x3)
    torch.save(state, tmp_path / "x3.pth")

    def fails(*args):
        assert convert_main(list(map(str, args))) == 2
        return capsys.readouterr().err

    assert "--net 'imdnx' is not a model config; choose one of" in fails(
        "--format", "pth", "--net", "imdnx", tmp_path / "x3.pth", tmp_path / "o.ckpt")
    assert "scale=4 does not fit 'x3.pth': its imdn upsampler holds x3 weights" in fails(
        "--format", "pth", "--scale", "4", tmp_path / "x3.pth", tmp_path / "o.ckpt")  # no --net: detected
    assert "--scale 4 does not fit 'x3.pth': its upsampler holds x3 weights (upsampler.0.weight is (27, 64, 3, 3) " \
           "in the file but (48, 64, 3, 3) in the network" in fails(
               "--format", "pth", "--net", "imdn", "--scale", "4", tmp_path / "x3.pth", tmp_path / "o.ckpt")
    err = fails("--format", "pth", "--net", "vdsr", tmp_path / "x3.pth", tmp_path / "o.ckpt")
    assert "does not fit --net vdsr: the network's body.0.weight (64, 3, 3, 3) is not in the file" in err
    del state["IMDB6.c5.bias"]
    torch.save(state, tmp_path / "cut.pth")
    assert "the network's blocks.5.c5.bias (64,) is not in the file" in fails(
        "--format", "pth", "--net", "imdn", tmp_path / "cut.pth", tmp_path / "o.ckpt")
    state["IMDB6.c5.bias"], state["extra.weight"] = torch.zeros(64), torch.zeros(2)
    torch.save(state, tmp_path / "extra.pth")
    assert "the file's extra.weight (2,) has no place in the network" in fails(
        "--format", "pth", "--net", "imdn", tmp_path / "extra.pth", tmp_path / "o.ckpt")
    torch.save({"epoch": 3, "optimizer": {"lr": 1.0}}, tmp_path / "nostate.pth")
    assert "holds ['epoch', 'optimizer'] but no state dict of tensors" in fails(
        "--format", "pth", "--net", "imdn", tmp_path / "nostate.pth", tmp_path / "o.ckpt")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    assert "is not a readable .safetensors file" in fails(
        "--format", "pth", "--net", "imdn", tmp_path / "junk.safetensors", tmp_path / "o.ckpt")
    assert "--net names the network of a --format pth file" in fails(
        "--format", "srcnn-mat", "--net", "imdn", tmp_path / "x3.pth", tmp_path / "o.ckpt")
    assert not (tmp_path / "o.ckpt").exists()


def test_a_pickled_model_is_refused_never_run(tmp_path, capsys):
    """A whole pickled model is code: refused with how to re-save it, and nothing in it runs."""
    marker = tmp_path / "ran"
    torch.save({"model": TouchOnUnpickle(marker)}, tmp_path / "model.pth")
    assert convert_main(["--format", "pth", "--net", "imdn", str(tmp_path / "model.pth"),
                         str(tmp_path / "o.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "is a pickled Python object" in err and "torch.save(model.state_dict(), 'weights.pth')" in err
    assert not marker.exists() and not (tmp_path / "o.ckpt").exists()


def test_the_authors_imdn_x4_reproduces_set5(sr_data, tmp_path):
    """The released IMDN x4 (../shared/data/weights/imdn_official): published Set5 32.21 / 0.8948
    (Y, shave 4) on the standard LR files' degradation, which the checkpoint records."""
    assert convert_main(["--format", "pth", "--net", "imdn", str(sr_data / "weights/imdn_official/x4.pth"),
                         str(tmp_path / "imdn_x4.ckpt")]) == 0
    run_entry("sr_lightning.eval", f"ckpt_path={tmp_path / 'imdn_x4.ckpt'}", "data.test_sets=[Set5]",
              "evaluation.gray=rgb", f"hydra.run.dir={tmp_path / 'ev'}")
    m = json.loads((tmp_path / "ev/metrics.json").read_text())["Set5"]
    assert m["published_psnr"] == 32.21 and m["published_ssim"] == 0.8948
    assert m["psnr"] == pytest.approx(32.21, abs=0.01) and m["ssim"] == pytest.approx(0.8948, abs=0.0005)


@pytest.mark.slow
def test_the_authors_imdn_x4_reproduces_set14_and_b100_with_gray_as_rgb(sr_data, tmp_path):
    """Set14 holds a grayscale image (bridge): IMDN's table scores it as RGB (evaluation.gray=rgb)."""
    convert_main(["--format", "pth", "--net", "imdn", str(sr_data / "weights/imdn_official/x4.pth"),
                  str(tmp_path / "imdn_x4.ckpt")])
    for gray in ("rgb", "own"):
        run_entry("sr_lightning.eval", f"ckpt_path={tmp_path / 'imdn_x4.ckpt'}", "data.test_sets=[Set14,B100]",
                  f"evaluation.gray={gray}", f"hydra.run.dir={tmp_path / gray}")
    rgb, own = (json.loads((tmp_path / g / "metrics.json").read_text()) for g in ("rgb", "own"))
    assert rgb["Set14"]["psnr"] == pytest.approx(28.58, abs=0.01)
    assert rgb["B100"]["psnr"] == pytest.approx(27.56, abs=0.01)
    assert own["Set14"]["psnr"] < rgb["Set14"]["psnr"] - 0.02 and own["B100"]["psnr"] == rgb["B100"]["psnr"]


LAYOUTS = json.loads((Path(__file__).parent / "release_layouts.json").read_text())


# Model configs whose release has the layout of another entry (a variant of the same code).
SAME_LAYOUT = {"hat_s": "hat", "hat_l": "hat", "swinir_real_large": "swinir_real", "swin2sr_real": "swin2sr",
               "plksr_tiny": "plksr", "drct_l": "drct",
               "dat_s": "dat", "dat_2": "dat", "rgt_s": "rgt", "rlfn_s": "rlfn", "rfdn": "rfdn_aim",
               "dbpn_ll": "dbpn"}


def layout_format(config: str):
    """The release format a layout entry is in: its model config's (``release_format``), or,
    for entries of a network's other layouts (``"layout"``), the one the network names so."""
    layout = LAYOUTS[SAME_LAYOUT.get(config, config)]
    if "layout" in layout:
        return get_net_class(layout["net"]).release_formats()[layout["layout"]]
    return release_format(config)  # what the network states about its release, beside its architecture


@pytest.mark.parametrize("config", sorted(set(LAYOUTS) - {"_about"} | set(SAME_LAYOUT)))
def test_release_layouts_map_onto_our_networks(config):
    """Every key of an author's release (the key names and shapes of their code, at a small
    configuration; variants in SAME_LAYOUT have another entry's layout) lands on our network's
    key of the same shape, the derived ones (masks, index tables, folded or fixed convolutions)
    dropped."""
    layout = LAYOUTS[SAME_LAYOUT.get(config, config)]
    ours = create_net(layout["net"], **{"in_channels": 3, **layout["kwargs"]}).state_dict()
    release = {k: torch.empty(shape, device="meta") for k, shape in layout["keys"].items()}
    fmt = layout_format(config)
    mapped = our_keys(fmt, release)
    assert first_mismatch(ours, mapped) is None
    assert len(release) - len(mapped) == sum(fmt.is_derived(k) for k in release)


def test_every_network_with_a_release_format_has_a_release_layout_to_check_it():
    """A network that renames or derives release keys has its authors' layout in
    release_layouts.json (IMDN: the real release file, test_release_layouts_import_...)."""
    from sr_lightning.config import CONF_DIR

    stated = {c for c in sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
              if release_format(c).key_map or release_format(c).derived}
    assert stated - {"imdn"} <= set(LAYOUTS) | set(SAME_LAYOUT) and "imdn" in stated


def test_the_authors_rlfn_x4_file_reproduces_set5_as_it_is(sr_data, tmp_path):
    """The released RLFN x4 (weights/rlfn_official/rlfn_x4.pth, trained on 0..255) evaluated as
    the file it is: detected, its release's input range applied; the paper's Set5 32.24 / 0.8952."""
    run_entry("sr_lightning.eval", f"ckpt_path={sr_data / 'weights/rlfn_official/rlfn_x4.pth'}", "data.scale=4",
              "data.test_sets=[Set5]", "evaluation.gray=rgb", f"hydra.run.dir={tmp_path / 'ev'}")
    m = json.loads((tmp_path / "ev/metrics.json").read_text())["Set5"]
    assert m["published_psnr"] == 32.24 and m["published_ssim"] == 0.8952
    assert m["psnr"] == pytest.approx(32.24, abs=0.01) and m["ssim"] == pytest.approx(0.8952, abs=0.0005)
