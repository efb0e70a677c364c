"""Every config in conf/ composes and instantiates (Hydra's compose API, no subprocess)."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from sr_lightning.config import CONF_DIR, compose_config, register_resolvers, updated
from sr_lightning.gan import SRGANDiscriminator, UNetDiscriminatorSN
from sr_lightning.hardware import resolve_precision
from sr_lightning.lit import SRGANModule, SRLitModule
from sr_lightning.lit.evaluation import Evaluation
from sr_lightning.loggers import instantiate_callbacks, instantiate_loggers
from sr_lightning.nets import list_nets, net_class
from sr_lightning.train import validation_interval
from tests.conftest import _crops, write_folder

CONF = CONF_DIR
# What train resolves the speed options' "auto" to before it builds the module (sr_lightning.settings).
RESOLVED_SPEED = ["channels_last=false", "compile=false"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(tmp_path, config_name: str, overrides: list[str]):
    cfg = compose_config(config_name, overrides)
    with open_dict(cfg):
        if "paths" in cfg:
            cfg.paths.output_dir = str(tmp_path)
            cfg.paths.data_dir = str(tmp_path)
        del cfg["hydra"]
    return cfg


def test_every_model_config_is_a_registered_network():
    """Every network has a config named after it; every config builds a registered network
    (variants such as edsr_baseline and fsrcnn_s included)."""
    assert set(list_nets()) <= set(options("model"))
    for option in options("model"):
        cfg = _compose(Path("."), "train", [f"model={option}"])
        assert net_class(cfg.model).name in list_nets(), option


@functools.cache
def _scales_of(model: str) -> tuple[int, ...] | None:
    """The scales the network of a model config supports (composed once per process)."""
    return net_class(compose_config("train", [f"model={model}"]).model).scales


# Every config at x2 in every run; at x3 and x4 with the slow tests (one compose and build of each
# config per scale: minutes on a 2-core CPU). The fast twin of the x3 refusal is the test below.
@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("scale", [2, pytest.param(3, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow)])
def test_model_configs_build_modules(tmp_path, model, scale):
    scales = _scales_of(model)
    if scales is not None and scale not in scales:
        pytest.skip(f"{model} has no x{scale} (scales {scales}); the refusal is tested in tests/nets")
    cfg = _compose(tmp_path, "train", [f"model={model}", f"data.scale={scale}", *RESOLVED_SPEED])
    if cfg.model.get("upsampler") == "nearest+conv" and scale == 3:  # the real-world models: x2 and x4
        with pytest.raises(Exception, match=r"upsampler=nearest\+conv does x2 and x4, not x3: use data.scale=2 or 4"):
            instantiate(cfg.module)
        return
    module = instantiate(cfg.module)
    assert type(module) is SRLitModule
    assert module.net.name == model.split("_")[0] and module.scale == scale and module.crop_border == scale
    assert module.hparams.evaluation == {**Evaluation().as_dict(), "crop_border": "scale"}


def test_a_real_world_config_refuses_x3_and_builds_at_x4(tmp_path):
    """The fast twin of the slow x3/x4 builds: a nearest+conv upsampler (the real-world models)
    does x2 and x4 only, and says so at x3; the same config builds at x4."""
    cfg = _compose(tmp_path, "train", ["model=swinir_real", "data.scale=3", *RESOLVED_SPEED])
    with pytest.raises(Exception, match=r"upsampler=nearest\+conv does x2 and x4, not x3: use data.scale=2 or 4"):
        instantiate(cfg.module)
    cfg = _compose(tmp_path, "train", ["model=swinir_real", "data.scale=4", *RESOLVED_SPEED, "model.embed_dim=12",
                                       "model.depths=[1]", "model.num_heads=[2]"])
    module = instantiate(cfg.module)
    assert module.scale == 4 and module.crop_border == 4


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in ("optimizer", "scheduler", "loss") for o in options(g)])
def test_training_groups_configure_optimizers(tmp_path, group, option):
    cfg = _compose(tmp_path, "train", [f"{group}={option}", "model=srcnn"])
    module = SRLitModule(net=cfg.model, loss=cfg.loss, optimizer=cfg.optimizer, scheduler=cfg.scheduler)
    out = module.configure_optimizers()
    assert out is not None


def fake_data_dir(root: Path) -> Path:
    """The layout of SR_DATA_DIR (benchmark/, train/) and of DIV2K, with a few small real images."""
    for sub, n in (("benchmark/Set5", 2), ("benchmark/Set14", 1), ("benchmark/B100", 1), ("train/T91", 2),
                   ("train/BSD200", 1)):
        write_folder(root / sub, n, (60, 72))
    for sub, first in (("DIV2K/DIV2K_train_HR", 1), ("DIV2K/DIV2K_valid_HR", 801)):
        for i, crop in enumerate(_crops(2, (96, 120), first)):  # DIV2K names: 0001.png ... 0900.png
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(root / sub / f"{first + i:04d}.png")
    return root


@pytest.mark.parametrize("option", options("data"))
def test_data_configs(tmp_path, option):
    overrides = [f"data='{option}'"]  # quoted: data=291 is a number to Hydra (the CLI quotes it)
    if option in ("default", "folder", "shards"):  # data configs that leave the training images to the user
        overrides.append(f"data.train_dir={tmp_path}")
    if option == "zssr":  # the image to learn from (experiment=zssr sets it from `input`)
        overrides.append(f"data.internal.image={tmp_path / 'img.png'}")
    cfg = _compose(tmp_path, "train", overrides)
    with open_dict(cfg):
        cfg.paths.data_dir = str(fake_data_dir(tmp_path / "data"))
    dm = instantiate(cfg.data)
    assert dm.scale == 2 and dm.channels == (3 if option in ("div2k", "zssr") else 1)


def test_div2k_layout(tmp_path):
    """data=div2k on a tiny folder of DIV2K's shape: train on DIV2K_train_HR, RGB pairs from the
    benchmark-LR pipeline, DIV2K_valid_HR among the test sets."""
    cfg = _compose(tmp_path, "train", ["data=div2k", "data.patch_size=16", "data.batch_size=2"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(fake_data_dir(tmp_path / "data"))
    dm = instantiate(cfg.data)
    assert dm.degradation.source == "rgb_uint8" and dm.degradation.border == "clamp"
    assert dm.test_set_names == ["Set5", "Set14", "B100", "DIV2K_valid_HR"]
    dm.setup()
    assert dm._train_set.pairs[2].names == ["0001", "0002"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (2, 3, 16, 16) and batch["hr"].shape == (2, 3, 32, 32)
    valid = dm.test_dataloader()[3].dataset
    assert [valid[i]["name"] for i in range(len(valid))] == ["0801", "0802"]


@pytest.mark.parametrize("option", options("experiment"))
def test_experiment_configs(tmp_path, option):
    # a file of the user's (random VGG19 here)
    given = {name: ["module.perceptual.weights=null"] for name in ("esrgan_x4", "realesrgan_x4")}
    given["zssr"] = [f"input={tmp_path / 'img.png'}"]  # the image to learn from
    cfg = _compose(tmp_path, "train", [f"experiment={option}", *RESOLVED_SPEED, *given.get(option, [])])
    with open_dict(cfg):
        cfg.paths.data_dir = str(fake_data_dir(tmp_path / "data"))
    dm = instantiate(cfg.data)
    module = instantiate(cfg.module)  # as train builds it: conf/module/<option>, _recursive_: false
    assert module.configure_optimizers() is not None
    assert module.hparams.loss == OmegaConf.to_container(cfg.loss)
    assert module.hparams.adjustable_clip == cfg.adjustable_clip
    assert module.net.in_channels == dm.channels
    if option == "vdsr_291":  # the paper's setting
        assert dm.train_scales == [2, 3, 4] and dm.patch_sizes == {2: 21, 3: 14, 4: 10}
        assert cfg.optimizer.lr == 0.1 and cfg.optimizer.momentum == 0.9 and cfg.adjustable_clip == 0.01
        assert cfg.scheduler.step_size == 20 and cfg.scheduler.gamma == 0.1 and cfg.trainer.max_epochs == 80
        assert len(dm.train_dirs) == 2 and cfg.trainer.gradient_clip_val is None
    if option == "fast_x3":  # the 15-minute budget: an LR-space network on Y at x3, a hard time limit
        assert dm.scale == 3 and dm.channels == 1 and len(dm.train_dirs) == 2
        assert module.net.name == "edsr" and cfg.trainer.max_time == "00:00:15:00"
        assert cfg.scheduler.total_steps == cfg.trainer.max_steps
        assert "clock" in cfg.callbacks
    if option == "esrgan_x4":  # the paper's losses and weights on SRGANModule's machinery
        assert type(module) is SRGANModule and module.net.name == "rrdbnet" and module.scale == 4
        assert module.hparams.gan_type == "relativistic_average" and module.hparams.content_weight == 1e-2
        assert module.hparams.adversarial_weight == 5e-3 and module.hparams.perceptual["layer"] == "conv5_4"
        assert type(module.criterion) is torch.nn.L1Loss and cfg.optimizer.betas == [0.9, 0.99]
    elif option == "realesrgan_x4":  # the paper's: U-Net SN discriminator, 5 VGG layers, GAN 0.1, EMA, 256 HR
        assert type(module) is SRGANModule and module.net.name == "rrdbnet" and module.scale == 4
        assert isinstance(module.discriminator, UNetDiscriminatorSN) and module.hparams.gan_type == "standard"
        assert (module.hparams.content_weight, module.hparams.perceptual_weight, module.hparams.adversarial_weight) \
            == (1.0, 1.0, 0.1)
        assert module.hparams.perceptual["layer"] == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                                                      "conv5_4": 1.0}
        assert dm.online is not None and dm.patch_sizes == {4: 64} and dm.degradation.source == "rgb_uint8"
        assert cfg.callbacks.ema.decay == 0.999 and cfg.optimizer.lr == 1e-4
    elif option == "zssr":  # the paper's: 8 layers of 64 on the bicubic image (residual), RGB, L1, Adam 1e-3
        convs = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert module.net.name == "vdsr" and len(convs) == 8 and {c.out_channels for c in convs[:-1]} == {64}
        assert dm.internal.image == str(tmp_path / "img.png") and dm.internal.crop == 128 and dm.batch_size == 1
        assert dm.channels == 3 and not dm.train_dirs and dm.val_dir is None and cfg.test is False
        assert cfg.optimizer.lr == 1e-3 and not cfg.scheduler  # the policy callback sets the learning rate
        assert cfg.trainer.max_steps == 3000 and cfg.callbacks.zssr_lr.min_lr == 9e-6
        assert cfg.callbacks.upscale.input == cfg.input
    elif option == "srgan_x4":  # module=srgan: the generator against the SRGAN discriminator
        assert type(module) is SRGANModule and module.net.name == "srresnet" and module.scale == 4
        assert isinstance(module.discriminator, SRGANDiscriminator)
        assert module.discriminator.features[0].in_channels == 3
        assert module.hparams.adversarial_weight == 1e-3 and module.hparams.evaluation["bicubic_border"] == "clamp"
    else:
        assert type(module) is SRLitModule


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs(tmp_path, option):
    cfg = _compose(tmp_path, "train", [f"trainer={option}"])
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("needs CUDA to instantiate")
    cfg = updated(cfg, validation_interval(cfg.trainer, SimpleNamespace(val_dir="sample:val", steps_per_epoch=100)))
    trainer = instantiate(cfg.trainer, precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
                          logger=False)
    assert trainer.max_steps == cfg.trainer.max_steps and trainer.val_check_interval == cfg.trainer.max_steps // 10


@pytest.mark.parametrize("option", options("logger"))
def test_logger_configs(tmp_path, option, monkeypatch, request):
    if option == "wandb":
        request.getfixturevalue("wandb_installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    register_resolvers()  # as the entry points do
    cfg = _compose(tmp_path, "train", [f"logger={option}"]).logger
    loggers = instantiate_loggers(cfg)
    assert [type(lg) for lg in loggers] == [get_class(e._target_) for e in cfg.values() if "_target_" in e] != []


@pytest.mark.parametrize("option", options("callbacks"))
def test_callback_configs(tmp_path, option):
    given = {"zssr": ["+input=img.png", "+output=null"]}  # experiment=zssr's keys
    cfg = _compose(tmp_path, "train", [f"callbacks={option}", *given.get(option, [])])
    callbacks = instantiate_callbacks(cfg.callbacks)
    targets = [get_class(e._target_) for e in cfg.callbacks.values() if e is not None and "_target_" in e]
    assert [type(c) for c in callbacks] == targets and (targets or option == "none")


@pytest.mark.parametrize("option", options("debug"))
def test_debug_configs(tmp_path, option):
    cfg = _compose(tmp_path, "train", [f"debug={option}"])
    what = {"fdr": ("fast_dev_run", True), "limit": ("max_steps", 20), "overfit": ("overfit_batches", 2)}[option]
    assert cfg.trainer[what[0]] == what[1] and cfg.trainer.max_steps < 3000  # shorter than the default run
    cfg = updated(cfg, validation_interval(cfg.trainer, SimpleNamespace(val_dir="sample:val", steps_per_epoch=10)))
    trainer = instantiate(cfg.trainer, precision="32-true", logger=False)  # as train builds it
    assert trainer.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("config_name", ["eval", "upscale", "export", "explain"])
def test_other_entry_configs_compose(tmp_path, config_name):
    overrides = {"upscale": ["ckpt_path=x.ckpt", "input=a.png", "output=b.png"],
                 "export": ["ckpt_path=x.ckpt", "output=b.onnx"],
                 "explain": ["ckpt_path=x.ckpt", "input=a.png", "window=[0,0,16]", "output=b.png"]}.get(config_name, [])
    cfg = _compose(tmp_path, config_name, overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert plain["ckpt_path"] == (None if config_name == "eval" else "x.ckpt")
    assert plain.get("output", "b.onnx" if config_name == "export" else None) in ("b.png", "b.onnx", None)


def test_the_multi_node_example_composes(tmp_path):
    """README, Training at scale: trainer=ddp over 2 nodes on shards."""
    cfg = _compose(tmp_path, "train", ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "data=shards",
                                       f"data.train_dir={tmp_path}", "data.num_workers=6", "data.batch_size=16",
                                       "model=edsr_baseline"])
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.strategy == "ddp" and cfg.data.shards.patches_per_image == 8


@pytest.mark.parametrize(("override", "key"), [("evaluation.shave=2", "evaluation.shave"),
                                               ("evaluation.y_channel=maybe", "evaluation.y_channel"),
                                               ("data.patch_sise=16", "data.patch_sise"),
                                               ("data.batch_size=many", "data.batch_size"),
                                               ("data.degradation.bordr=clamp", "data.degradation.bordr"),
                                               ("data.degradation.realesrgan.stage1.blur_prob=1",
                                                "data.degradation.realesrgan"),  # not the realesrgan degradation
                                               ("data/degradation=realesrgan data.degradation.realesrgan.stage1.blur=1",
                                                "data.degradation.realesrgan.stage1.blur")])
def test_the_option_schemas_refuse_unknown_keys_and_wrong_types_when_composing(override, key):
    """The option dataclasses (and SRDataModule's signature) are Hydra schemas: a typo or a
    wrong type stops the composition, naming the key, before anything is built."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", override.split())
    assert key in str(err.value) + str(err.value.__cause__)


def test_the_defaults_are_the_python_ones():
    """The configs state no default of their own: evaluation is Evaluation's, data is
    SRDataModule's signature (patch_size 24 both in Python and in the run)."""
    import inspect

    from sr_lightning.data import SRDataModule

    cfg = compose_config("train", [])
    assert Evaluation.from_config(OmegaConf.to_container(cfg.evaluation, resolve=True)) == Evaluation()
    params = inspect.signature(SRDataModule.__init__).parameters
    for key in ("scale", "channels", "patch_size", "batch_size", "steps_per_epoch", "max_image_pixels", "augment"):
        assert cfg.data[key] == params[key].default, key
