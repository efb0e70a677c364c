"""Train a network: ``python -m sr_lightning.train model=vdsr data.scale=3 ...``.

Composes ``sr_lightning/conf/train.yaml``, trains, tests the best checkpoint, prints the table and
writes ``metrics.json`` to the run's output folder.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from sr_lightning.budget import check_budget, plan, seconds_per_step
from sr_lightning.checkpoint import (
    adopt_checkpoint_net,
    config_trusted_nets,
    is_resumable,
    load_weights,
    net_config,
    read_checkpoint,
)
from sr_lightning.cli import overridden_keys, prepare_argv, user_errors
from sr_lightning.data.pairs import Degradation
from sr_lightning.errors import UserError
from sr_lightning.hardware import describe_cpu, fast_bf16, resolve_precision, resolve_speed, tune_allocator
from sr_lightning.lit import SRLitModule
from sr_lightning.loggers import (
    check_tensorboard,
    check_wandb,
    close_loggers,
    git_commit,
    instantiate_callbacks,
    instantiate_loggers,
    register_resolvers,
)
from sr_lightning.report import report
from sr_lightning.sweep import JOB_FILE
from sr_lightning.zoo import net_gflops

log = logging.getLogger(__name__)

TEST_CKPTS = ("last", "best")


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and test as configured.

    Returns:
        ``(metrics, objects)``: the final logged metrics (floats) plus ``"test"`` (the
        metrics.json content), and the datamodule, module, trainer and output folder.
    """
    register_resolvers()
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{', '.join(missing)} must be given (the config leaves it to you, '???'): add "
                        f"{missing[0]}=... to the command")
    if cfg.test_ckpt not in TEST_CKPTS:
        raise UserError(f"test_ckpt={cfg.test_ckpt!r} is not one of {TEST_CKPTS}: 'last' tests the final weights, "
                         f"'best' the checkpoint with the highest val/psnr")
    resume, init = cfg.ckpt_path, cfg.get("init_from")
    if resume and init:
        raise UserError("ckpt_path (resume a run) and init_from (start a new run from weights) are both set; "
                         "keep one")
    # A checkpoint is data: its network is checked against the registry (and the networks this
    # config names); its loss/optimizer/scheduler are never used (this run's config supplies them).
    trusted = config_trusted_nets(cfg)
    net_cfg, init_ckpt = cfg.model, None
    if resume:
        resume_ckpt = read_checkpoint(resume, "ckpt_path", trusted)  # fail now, with a clear message
        if not is_resumable(resume_ckpt):
            log.info("ckpt_path=%s holds weights only (no training state): starting a new run from them", resume)
            resume, init, init_ckpt = None, resume, resume_ckpt
    elif init:
        init_ckpt = read_checkpoint(init, "init_from", trusted)
    if init_ckpt is not None:
        net_cfg = net_config(init_ckpt, adopt_checkpoint_net(cfg, init_ckpt, overridden_keys(), trusted))
    apply_speed(cfg)
    check_max_time(cfg.trainer.get("max_time"))
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.get("accelerator", "auto"))
    module_cls = module_class(cfg.module)
    if cfg.get("budget_minutes") is not None:
        fit_to_budget(cfg, net_cfg, precision, module_cls)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    if init_ckpt is not None:
        with open_dict(cfg):
            cfg.module.net = net_cfg  # the checkpoint's network replaces `model`
    module: SRLitModule = instantiate(cfg.module)  # conf/module: built from the run's groups
    # The evaluation sets' LR protocol, which eval adopts (a realesrgan training degradation is not one).
    degradation = getattr(datamodule, "degradation", None)
    module.checkpoint_meta = {"degradation": asdict(degradation)} if isinstance(degradation, Degradation) else {}
    if init_ckpt is not None:
        load_weights(module, init_ckpt["state_dict"])
        log.info("initialised %s from %s", module.net.name, init)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    check_wandb(cfg.get("logger"))
    check_tensorboard(cfg.get("logger"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision)
    if trainer.loggers:
        run_info = {"cfg": OmegaConf.to_container(cfg, resolve=True),
                    "num_params": sum(p.numel() for p in module.net.parameters()),
                    "gflops_per_megapixel": round(net_gflops(module.net), 3), "git_commit": git_commit()}
        for logger in trainer.loggers:
            logger.log_hyperparams(run_info)
    log.info("training %s x%d on %s, precision %s", module.net.name, module.scale,
             ", ".join(map(str, getattr(datamodule, "train_dirs", [cfg.data.train_dir]))), precision)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test:
            if cfg.test_ckpt == "best" and not best:
                log.warning("test_ckpt=best but no best checkpoint was saved; testing the final weights")
            use_best = cfg.test_ckpt == "best" and bool(best)
            tested = f"tested: {best}" if use_best else f"tested: the final weights (step {trainer.global_step})"
            trainer.test(module, datamodule=datamodule, ckpt_path=best if use_best else None, verbose=False,
                         weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
            lines = [tested, f"checkpoints: {Path(best).parent}" if best else "checkpoints: none saved",
                     f"logs: {output_dir}"]
            report(module.test_results, output_dir, f"{module.net.name} x{module.scale} (test)", lines)
    except BaseException:
        close_loggers(trainer.loggers, failed=True)
        raise
    close_loggers(trainer.loggers, failed=False)
    metrics["test"] = module.test_results
    return metrics, {"datamodule": datamodule, "module": module, "trainer": trainer, "output_dir": output_dir}


def module_class(module_cfg: DictConfig) -> type[SRLitModule]:
    """The class ``module._target_`` names: :class:`SRLitModule` or a subclass of it."""
    target = module_cfg.get("_target_")
    try:
        cls = get_class(str(target))
    except (ImportError, ValueError):  # Hydra's "Error locating target" is an ImportError
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, SRLitModule)):
        raise UserError(f"module._target_={target!r} is not SRLitModule or a subclass of it (e.g. "
                        f"sr_lightning.lit.SRGANModule: module=srgan)")
    return cls


MAX_TIME_FORMS = "'DD:HH:MM:SS' (e.g. '00:00:10:00'), or a mapping such as {minutes: 10} (days/hours/minutes/seconds)"


def check_max_time(max_time: Any) -> None:
    """Fail early, with the forms Lightning accepts, on a ``trainer.max_time`` it would reject."""
    if max_time is None:
        return
    if isinstance(max_time, str):
        ok = re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", max_time.strip()) is not None
    elif isinstance(max_time, Mapping):
        ok = bool(max_time) and set(max_time) <= {"days", "hours", "minutes", "seconds"} and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in max_time.values())
    else:
        ok = False
    if not ok:
        raise UserError(f"trainer.max_time={max_time!r} is not a form Lightning takes: use {MAX_TIME_FORMS}")


def apply_speed(cfg: DictConfig) -> None:
    """Resolve the speed options (``auto``: this machine class's measured default, see
    ``hardware.SPEED_DEFAULTS``) into ``cfg``, so the run records what it ran with; set the
    thread count and tune the allocator."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    speed = resolve_speed(cfg, accelerator)
    with open_dict(cfg):
        cfg.update(speed)
    if speed["threads"]:
        torch.set_num_threads(speed["threads"])
    tuned = speed["tune_allocator"] and tune_allocator()
    log.info("speed settings for %s: channels_last=%s compile=%s threads=%d, allocator %s",
             "the GPU" if fast_bf16(accelerator) and torch.cuda.is_available() else describe_cpu(),
             speed["channels_last"], speed["compile"], torch.get_num_threads(),
             "tuned to reuse freed memory" if tuned else "glibc's defaults")


def fit_to_budget(cfg: DictConfig, net_cfg: Any, precision: str | int, module_cls: type[SRLitModule]) -> None:
    """``budget_minutes``: time a few training steps here and set ``cfg.trainer.max_steps`` (at
    most its configured value) to what fits, unless ``trainer.max_steps`` was given on the
    command line (then the steps are pinned)."""
    minutes = check_budget(cfg.budget_minutes)
    if "trainer.max_steps" in overridden_keys():
        log.info("budget_minutes=%g: trainer.max_steps=%d given, so no calibration", minutes, cfg.trainer.max_steps)
        return
    if int(cfg.trainer.max_steps) <= 0:
        raise UserError("budget_minutes needs trainer.max_steps > 0 as its cap (it sets the steps that fit)")
    if module_cls is not SRLitModule:
        raise UserError(f"budget_minutes times SRLitModule steps; for module._target_={module_cls.__name__} set "
                         f"trainer.max_steps (and budget_minutes=null)")
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    device = torch.device("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    probe = SRLitModule(net=net_cfg, loss=cfg.loss, channels_last=cfg.channels_last)
    step_s = seconds_per_step(probe, cfg.optimizer, cfg.data, precision, cfg.trainer.get("gradient_clip_val"), device)
    steps, line = plan(minutes, step_s, int(cfg.trainer.max_steps), precision)
    log.info(line)
    with open_dict(cfg):
        cfg.trainer.max_steps = steps


def write_job_summary(cfg: DictConfig, metrics: dict[str, Any], output_dir: Path) -> None:
    """``job_summary.json`` for the sweep summary: overrides, the optimised metric, test PSNR per set."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    value = metrics.get(cfg.optimized_metric)
    summary = {"overrides": overrides, "metric": cfg.optimized_metric,
               "value": float(value) if value is not None else None,
               "test_psnr": {name: r["psnr"] for name, r in (metrics.get("test") or {}).items()}}
    (output_dir / JOB_FILE).write_text(json.dumps(summary, indent=2) + "\n")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` for multirun/Optuna."""
    log.info("output folder: %s", HydraConfig.get().runtime.output_dir)
    metrics, objects = train(cfg)
    if objects["trainer"].is_global_zero:
        write_job_summary(cfg, metrics, objects["output_dir"])
    value = metrics.get(cfg.optimized_metric)
    return float(value) if value is not None else None


def cli() -> None:
    """``python -m sr_lightning.train`` and the ``sr-train`` console script."""
    sys.argv = prepare_argv(sys.argv)  # data=291; plugins present
    main()


if __name__ == "__main__":
    cli()
