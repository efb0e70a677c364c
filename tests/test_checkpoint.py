"""A checkpoint is data, never code: crafted checkpoints given to eval, upscale, train
ckpt_path= and train init_from= run nothing (a marker file must not appear), and are
refused with a one-line error naming the key, or their recorded configs are ignored
where the run's own config supplies the value."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from sr_lightning.checkpoint import CheckpointError, read_checkpoint
from sr_lightning.config import CONF_DIR, compose_config
from sr_lightning.eval import evaluate
from sr_lightning.lit import SRGANModule, SRLitModule
from sr_lightning.nets import NETS, register_net
from sr_lightning.nets.vdsr import VDSR
from sr_lightning.train import train
from sr_lightning.upscale import upscale
from tests.conftest import TouchOnUnpickle, run_module

CONF = CONF_DIR
PAYLOADS = ("torch.load", "numpy.load", "os.system", "builtins.eval", "unimported module")


@pytest.fixture
def attack(tmp_path, monkeypatch):
    """The marker file and a config payload of each kind, each of which creates the marker
    when called (os.system and builtins.eval: Hydra 1.3.8's blocklist stops these two)."""
    marker = tmp_path / "marker"
    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save(TouchOnUnpickle(marker), evil / "payload.pt")
    np.save(evil / "payload.npy", np.array([TouchOnUnpickle(marker)], dtype=object), allow_pickle=True)
    (evil / "evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()  # runs on import\n"
        "from sr_lightning.nets.vdsr import VDSR\n\n\nclass EvilNet(VDSR):\n    name = 'evilnet'\n")
    monkeypatch.syspath_prepend(str(evil))
    payloads = {
        "torch.load": {"_target_": "torch.load", "f": str(evil / "payload.pt"), "weights_only": False},
        "numpy.load": {"_target_": "numpy.load", "file": str(evil / "payload.npy"), "allow_pickle": True},
        "os.system": {"_target_": "os.system", "command": f"touch {marker}"},
        "builtins.eval": {"_target_": "builtins.eval", "_args_": [f"open({str(marker)!r}, 'w')"]},
        "unimported module": {"_target_": "evil_mod.EvilNet", "scale": 2, "in_channels": 1},
    }
    yield marker, payloads
    sys.modules.pop("evil_mod", None)  # imported by the liveness test only; never by a loader


def test_the_payloads_are_live(attack):
    """The payloads Hydra's blocklist lets through run code when instantiated: the tests
    below would catch a loader that instantiated them."""
    marker, payloads = attack
    for name in ("torch.load", "numpy.load", "unimported module"):
        marker.unlink(missing_ok=True)
        try:
            instantiate(payloads[name])
        except Exception:  # noqa: BLE001 - the call itself may fail after the damage is done
            pass
        assert marker.exists(), name


def _plant(ckpt: dict, location: str, payload: dict) -> dict:
    """A copy of ``ckpt`` with ``payload`` at ``location``."""
    out = copy.deepcopy(ckpt)
    hp, meta = out["hyper_parameters"], out.setdefault("sr_lightning", {})
    if location == "net":
        hp["net"] = {**hp["net"], **payload}
    elif location == "net kwarg":
        hp["net"]["upsample_border"] = payload
    elif location in ("loss", "optimizer", "scheduler", "evaluation", "discriminator", "perceptual"):
        hp[location] = payload
    elif location == "metadata degradation":
        meta["degradation"] = payload
    elif location == "metadata source":
        meta["source"] = {"format": payload}
    else:
        raise AssertionError(location)
    return out


REFUSED = {"net": "hyper_parameters.net", "net kwarg": "hyper_parameters.net.upsample_border._target_",
           "evaluation": "hyper_parameters.evaluation._target_",
           "metadata degradation": "sr_lightning.degradation._target_",
           "metadata source": "sr_lightning.source.format._target_"}


@pytest.fixture(scope="module")
def real_ckpt(trained_srcnn) -> dict:
    """A resumable checkpoint written by today's code (SRCNN x2 on Y, 8 steps)."""
    return torch.load(trained_srcnn / "checkpoints/last.ckpt", weights_only=True)


@pytest.mark.parametrize("location", list(REFUSED))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_read_checkpoint_refuses_what_it_would_have_to_run(attack, real_ckpt, tmp_path, location, payload):
    marker, payloads = attack
    path = tmp_path / "crafted.ckpt"
    torch.save(_plant(real_ckpt, location, payloads[payload]), path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert f"ckpt_path='{path}'" in message and REFUSED[location] in message and "\n" not in message
    with pytest.raises(CheckpointError):
        SRLitModule.load_from_checkpoint(path)
    assert not marker.exists()


def test_interpolations_and_objects_are_refused(real_ckpt, tmp_path):
    for plant, key in [(lambda c: c["hyper_parameters"]["net"].update(scale="${oc.env:HOME}"),
                        "hyper_parameters.net.scale"),
                       (lambda c: c["sr_lightning"].update(trained_scales=["2"]), "sr_lightning.trained_scales"),
                       (lambda c: c["sr_lightning"].update(overrides=[3]), "sr_lightning.overrides"),
                       (lambda c: c["sr_lightning"].update(max_steps="9"), "sr_lightning.max_steps"),
                       (lambda c: c["sr_lightning"].update(degradation={"source": "y", "border": "x"}),
                        "sr_lightning.degradation.border"),
                       (lambda c: c["hyper_parameters"].update(channels_last="yes"), "channels_last"),
                       (lambda c: c["state_dict"].update({"net.x": "not a tensor"}), "state_dict")]:
        ckpt = copy.deepcopy(real_ckpt)
        plant(ckpt)
        torch.save(ckpt, tmp_path / "c.ckpt")
        with pytest.raises(CheckpointError, match=key.replace(".", r"\.").replace("[", r"\[")):
            read_checkpoint(tmp_path / "c.ckpt")


# -- the entry points, in-process on tiny data --------------------------------------------------

def _compose(config_name: str, *overrides: str):
    cfg = compose_config(config_name, overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _run(entry: str, ckpt: Path, tiny: dict[str, Path], out: Path):
    """Run an entry point in-process with ``ckpt``; returns what it returned."""
    test_data = ["data=folder", "data.train_dir=null", f"+data.test_dirs.tiny={tiny['test']}"]
    train_data = ["data=folder", f"data.train_dir={tiny['train']}", "data.val_dir=null",
                  f"+data.test_dirs.tiny={tiny['test']}", "data.patch_size=16", "data.batch_size=2",
                  "data.steps_per_epoch=2", "callbacks.progress_bar=null", "logger=csv"]
    if entry == "eval":
        return evaluate(_compose("eval", f"ckpt_path={ckpt}", *test_data, f"paths.output_dir={out}"))
    if entry == "upscale":
        out.mkdir(exist_ok=True)
        return upscale(_compose("upscale", f"ckpt_path={ckpt}", f"input={tiny['test'] / 'img00.png'}",
                                f"output={out / 'up.png'}"))
    if entry == "train ckpt_path":  # resume: the checkpoint ended at step 8
        return train(_compose("train", "model=srcnn", f"ckpt_path={ckpt}", "trainer.max_steps=10", *train_data,
                              f"paths.output_dir={out}"))
    return train(_compose("train", "model=srcnn", f"init_from={ckpt}", "trainer.max_steps=2", *train_data,
                          f"paths.output_dir={out}"))


ENTRIES = ("eval", "upscale", "train ckpt_path", "train init_from")


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("location", "payload"), [("net", "unimported module"), ("evaluation", "torch.load"),
                                                   ("metadata degradation", "builtins.eval")])
def test_entry_points_refuse_configs_they_would_run(attack, real_ckpt, tiny_data, tmp_path, entry, location,
                                                    payload):
    marker, payloads = attack
    path = tmp_path / "crafted.ckpt"
    torch.save(_plant(real_ckpt, location, payloads[payload]), path)
    with pytest.raises(CheckpointError, match=REFUSED[location].replace(".", r"\.")):
        _run(entry, path, tiny_data, tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_points_ignore_the_recorded_training_configs(attack, real_ckpt, tiny_data, tmp_path, entry):
    """loss/optimizer/scheduler (and a GAN's parts) in the file are never built: eval and
    upscale build none, train takes them from its own config."""
    marker, payloads = attack
    ckpt = real_ckpt
    for location, payload in [("loss", "torch.load"), ("optimizer", "numpy.load"), ("scheduler", "builtins.eval"),
                              ("discriminator", "os.system"), ("perceptual", "unimported module")]:
        ckpt = _plant(ckpt, location, payloads[payload])
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    out = tmp_path / "out"
    result = _run(entry, path, tiny_data, out)
    assert not marker.exists()
    if entry == "upscale":
        assert result == [out / "up.png"] and result[0].is_file()
        return
    module = result[1]["module"]
    if entry == "eval":
        assert module.criterion is None and result[0]["tiny"]["num_images"] == 2
        return
    trainer = result[1]["trainer"]
    assert isinstance(module.criterion, torch.nn.L1Loss)  # this run's config: loss=l1, optimizer=adam
    assert isinstance(trainer.optimizers[0], torch.optim.Adam)
    assert trainer.global_step == (10 if entry == "train ckpt_path" else 2)
    saved = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["hyper_parameters"]
    assert saved["loss"] == {"_target_": "torch.nn.L1Loss"}


def test_a_registered_or_trusted_network_of_ones_own_loads(real_ckpt, tmp_path, monkeypatch):
    """A class outside the registry loads when the user registers it, or names it (trusted_nets)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_nets.py").write_text("from sr_lightning.nets.srcnn import SRCNN\n\n\n"
                                     "class MySRCNN(SRCNN):\n    name = 'my_srcnn'\n")
    monkeypatch.syspath_prepend(str(mine))
    ckpt = copy.deepcopy(real_ckpt)
    ckpt["hyper_parameters"]["net"]["_target_"] = "my_nets.MySRCNN"
    torch.save(ckpt, tmp_path / "mine.ckpt")
    with pytest.raises(CheckpointError, match="trusted_nets=\\[my_nets.MySRCNN\\]"):
        SRLitModule.load_from_checkpoint(tmp_path / "mine.ckpt")
    module = SRLitModule.load_from_checkpoint(tmp_path / "mine.ckpt", trusted_nets=["my_nets.MySRCNN"])
    assert type(module.net).__name__ == "MySRCNN"
    import my_nets

    try:
        register_net(my_nets.MySRCNN)
        assert type(SRLitModule.load_from_checkpoint(tmp_path / "mine.ckpt").net) is my_nets.MySRCNN
        with pytest.raises(ValueError, match="taken by"):
            register_net(type("Other", (VDSR,), {"name": "my_srcnn"}))
    finally:
        NETS.pop("my_srcnn", None)
        sys.modules.pop("my_nets", None)


def test_gan_module_takes_its_parts_from_the_caller(attack, real_ckpt, tmp_path):
    marker, payloads = attack
    ckpt = _plant(_plant(real_ckpt, "discriminator", payloads["numpy.load"]), "perceptual", payloads["torch.load"])
    torch.save(ckpt, tmp_path / "gan.ckpt")
    disc = {"_target_": "sr_lightning.gan.SRGANDiscriminator", "in_channels": 1, "num_features": 8}
    module = SRGANModule.load_from_checkpoint(tmp_path / "gan.ckpt", discriminator=disc)
    assert type(module.discriminator).__name__ == "SRGANDiscriminator" and module.perceptual is None
    assert not marker.exists()


def test_a_crafted_checkpoint_is_one_line_from_the_command_line(attack, real_ckpt, tmp_path, monkeypatch):
    marker, payloads = attack
    torch.save(_plant(real_ckpt, "net", payloads["unimported module"]), tmp_path / "crafted.ckpt")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "evil"), os.environ.get("PYTHONPATH", "")]))
    proc = run_module("sr_lightning.upscale", f"ckpt_path={tmp_path / 'crafted.ckpt'}",
                      f"input={tmp_path / 'evil/payload.pt'}", f"output={tmp_path / 'o.png'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hyper_parameters.net _target_='evil_mod.EvilNet' is not a registered sr_lightning network" in proc.stderr
    assert not marker.exists()


def test_a_checkpoint_names_its_network_so_a_moved_module_does_not_orphan_it(real_ckpt, tmp_path):
    """Checkpoints record the registry name beside _target_: one whose module path no longer
    exists loads by the name; one without the name (older code) loads by _target_."""
    assert real_ckpt["hyper_parameters"]["net"]["name"] == "srcnn"
    moved = copy.deepcopy(real_ckpt)
    moved["hyper_parameters"]["net"]["_target_"] = "sr_lightning.nets.old_place.SRCNN"  # never importable
    torch.save(moved, tmp_path / "moved.ckpt")
    assert read_checkpoint(tmp_path / "moved.ckpt").net["_target_"] == "sr_lightning.nets.srcnn.SRCNN"
    assert type(SRLitModule.load_from_checkpoint(tmp_path / "moved.ckpt").net).__name__ == "SRCNN"
    old = copy.deepcopy(real_ckpt)
    del old["hyper_parameters"]["net"]["name"]
    torch.save(old, tmp_path / "old.ckpt")
    assert type(SRLitModule.load_from_checkpoint(tmp_path / "old.ckpt").net).__name__ == "SRCNN"
    unknown = copy.deepcopy(moved)
    unknown["hyper_parameters"]["net"]["name"] = "nonet"
    torch.save(unknown, tmp_path / "unknown.ckpt")
    with pytest.raises(CheckpointError, match="old_place.SRCNN' is not a registered sr_lightning network"):
        read_checkpoint(tmp_path / "unknown.ckpt")


def test_a_checkpoint_with_psnr_best_among_its_weights_still_loads(tmp_path):
    """Checkpoints written while psnr_best was a buffer hold it in their state dict: it is read
    back as the module's best val/psnr, not refused as an unknown weight."""
    from sr_lightning.lit import SRLitModule

    module = SRLitModule(net={"name": "srcnn", "scale": 2, "in_channels": 1}, loss={"_target_": "torch.nn.L1Loss"})
    state = {**module.state_dict(), "psnr_best": torch.tensor(31.5, dtype=torch.float64)}
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams)}, tmp_path / "old.ckpt")
    loaded = SRLitModule.load_from_checkpoint(tmp_path / "old.ckpt")  # eval/upscale/init_from: the weights
    torch.testing.assert_close(loaded.state_dict(), module.state_dict())
    ckpt = torch.load(tmp_path / "old.ckpt", weights_only=True)
    loaded.on_load_checkpoint(ckpt)  # what a resumed fit calls before loading the state dict
    assert loaded.psnr_best == 31.5 and "psnr_best" not in ckpt["state_dict"]
