"""Every config in conf/ composes and instantiates (Hydra's compose API, no subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import open_dict

from sr_lightning.lit import SRLitModule
from sr_lightning.nets import list_nets
from sr_lightning.runtime import instantiate_callbacks, instantiate_loggers, resolve_precision

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(tmp_path, config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        if "paths" in cfg:
            cfg.paths.output_dir = str(tmp_path)
            cfg.paths.data_dir = str(tmp_path)
        del cfg["hydra"]
    return cfg


def test_every_model_config_is_a_registered_network():
    assert options("model") == list_nets()


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_model_configs_build_modules(tmp_path, model, scale):
    cfg = _compose(tmp_path, "train", [f"model={model}", f"data.scale={scale}"])
    module = SRLitModule(net=cfg.model, loss=cfg.loss, optimizer=cfg.optimizer, scheduler=cfg.scheduler,
                         evaluation=cfg.evaluation)
    assert module.net.name == model and module.scale == scale and module.crop_border == scale


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in ("optimizer", "scheduler", "loss") for o in options(g)])
def test_training_groups_configure_optimizers(tmp_path, group, option):
    cfg = _compose(tmp_path, "train", [f"{group}={option}", "model=srcnn"])
    module = SRLitModule(net=cfg.model, loss=cfg.loss, optimizer=cfg.optimizer, scheduler=cfg.scheduler)
    out = module.configure_optimizers()
    assert out is not None


@pytest.mark.parametrize("option", options("data"))
def test_data_configs(tmp_path, option):
    overrides = [f"data={option}"]
    if option == "folder":
        overrides.append(f"data.train_dir={tmp_path}")
    dm = instantiate(_compose(tmp_path, "train", overrides).data)
    assert dm.scale == 2 and dm.channels == 1


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs(tmp_path, option):
    cfg = _compose(tmp_path, "train", [f"trainer={option}"])
    if cfg.trainer.accelerator == "gpu":
        pytest.skip("needs a GPU to instantiate")
    trainer = instantiate(cfg.trainer, precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
                          logger=False)
    assert trainer.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("option", options("logger"))
def test_logger_configs(tmp_path, option, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    loggers = instantiate_loggers(_compose(tmp_path, "train", [f"logger={option}"]).logger)
    assert loggers


@pytest.mark.parametrize("option", options("callbacks"))
def test_callback_configs(tmp_path, option):
    callbacks = instantiate_callbacks(_compose(tmp_path, "train", [f"callbacks={option}"]).callbacks)
    assert isinstance(callbacks, list)


@pytest.mark.parametrize("option", options("debug"))
def test_debug_configs(tmp_path, option):
    cfg = _compose(tmp_path, "train", [f"debug={option}"])
    assert cfg.trainer.max_steps >= 1


@pytest.mark.parametrize("config_name", ["eval", "upscale"])
def test_other_entry_configs_compose(tmp_path, config_name):
    overrides = ["ckpt_path=x.ckpt", "input=a.png", "output=b.png"] if config_name == "upscale" else []
    cfg = _compose(tmp_path, config_name, overrides)
    assert cfg is not None


def test_precision_auto():
    assert resolve_precision("32-true") == "32-true"
    assert resolve_precision("auto", "cpu") in ("bf16-mixed", "32-true")
