"""Train a network: ``python -m sr_lightning.train model=vdsr data.scale=3 ...``.

Composes ``sr_lightning/conf/train.yaml``, trains, tests the best checkpoint, prints the table and
writes ``metrics.json`` to the run's output folder.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from sr_lightning.budget import check_budget, plan, seconds_per_step
from sr_lightning.callbacks import InterruptCheckpoint
from sr_lightning.checkpoint import (
    AtomicCheckpointIO,
    adopt_checkpoint_net,
    config_trusted_nets,
    is_resumable,
    load_weights,
    net_config,
    read_checkpoint,
)
from sr_lightning.cli import overridden_keys, prepare_argv, require_given, user_errors
from sr_lightning.config import register_resolvers
from sr_lightning.data.pairs import Degradation
from sr_lightning.errors import UserError
from sr_lightning.files import write_text_atomically
from sr_lightning.hardware import (
    check_accelerator,
    describe_cpu,
    fast_bf16,
    resolve_precision,
    resolve_speed,
    tune_allocator,
)
from sr_lightning.lit import SRLitModule
from sr_lightning.loggers import (
    check_tensorboard,
    check_wandb,
    close_loggers,
    continue_logger_runs,
    git_commit,
    instantiate_callbacks,
    instantiate_loggers,
)
from sr_lightning.nets.flops import net_gflops
from sr_lightning.report import print_config, report
from sr_lightning.resume import resume_argv
from sr_lightning.sweep import JOB_FILE

log = logging.getLogger(__name__)

TEST_CKPTS = ("last", "best")


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and test as configured.

    Returns:
        ``(metrics, objects)``: the final logged metrics (floats) plus ``"test"`` (the
        metrics.json content), and the datamodule, module, trainer and output folder.
    """
    register_resolvers()
    require_given(cfg)
    if cfg.test_ckpt not in TEST_CKPTS:
        raise UserError(f"test_ckpt={cfg.test_ckpt!r} is not one of {TEST_CKPTS}: 'last' tests the final weights, "
                         f"'best' the checkpoint with the highest val/psnr")
    resume, init = cfg.ckpt_path, cfg.get("init_from")
    if resume and init:
        raise UserError("ckpt_path (resume a run) and init_from (start a new run from weights) are both set; "
                         "keep one")
    # A checkpoint is data: its network is checked against the registry (and the networks this
    # config names); its loss/optimizer/scheduler are never used (this run's config supplies them).
    if cfg.get("resume") is not None:
        raise UserError(f"resume={cfg.resume} is read from the command line (python -m sr_lightning.train "
                        f"resume=...); in code, pass sr_lightning.resume.plan(overrides).overrides to Hydra")
    trusted = config_trusted_nets(cfg)
    net_cfg, ckpt = cfg.model, None
    if resume:
        ckpt = read_checkpoint(resume, "ckpt_path", trusted)  # fail now, with a clear message
        if is_resumable(ckpt):
            log.info("resuming from %s at step %d", resume, ckpt.get("global_step", 0))
        else:
            log.info("ckpt_path=%s holds weights only (no training state): starting a new run from them", resume)
            resume, init = None, resume
    elif init:
        ckpt = read_checkpoint(init, "init_from", trusted)
    if ckpt is not None:  # the checkpoint's network (and a resumed run's, whatever the config says)
        net_cfg = net_config(ckpt, adopt_checkpoint_net(cfg, ckpt, overridden_keys(), trusted))
    check_accelerator(cfg.trainer.get("accelerator", "auto"))
    apply_speed(cfg)
    check_max_time(cfg.trainer.get("max_time"))
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.get("accelerator", "auto"))
    module_cls = module_class(cfg.module)
    planned = (ckpt or {}).get("sr_lightning", {}).get("max_steps") if resume else None
    if cfg.get("budget_minutes") is not None and planned and "trainer.max_steps" not in overridden_keys():
        log.info("budget_minutes=%g: resuming, so the run's own %d steps (its schedule) are kept", cfg.budget_minutes,
                 planned)
        with open_dict(cfg):
            cfg.trainer.max_steps = int(planned)
    elif cfg.get("budget_minutes") is not None:
        fit_to_budget(cfg, net_cfg, precision, module_cls)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    if ckpt is not None:
        with open_dict(cfg):
            cfg.module.net = net_cfg  # the checkpoint's network replaces `model`
    module: SRLitModule = instantiate(cfg.module)  # conf/module: built from the run's groups
    # The evaluation sets' LR protocol, which eval adopts (a realesrgan training degradation is
    # not one), and the command's overrides, which resuming from the file alone replays.
    degradation = getattr(datamodule, "degradation", None)
    module.checkpoint_meta = {"degradation": asdict(degradation)} if isinstance(degradation, Degradation) else {}
    module.checkpoint_meta.update(overrides=command_overrides(), max_steps=int(cfg.trainer.max_steps))
    if type(module.net).published_on_rgb and module.net.in_channels == 1:
        log.warning("model: %s was published on RGB (data.channels=3; its tables: data/degradation=benchmark_lr); "
                    "this run trains it on Y (data.channels=%d), so it compares with Y-channel networks, not with "
                    "its paper", module.net.name, cfg.data.channels)
    if init:
        load_weights(module, ckpt["state_dict"])
        log.info("initialised %s from %s", module.net.name, init)
    set_validation_interval(cfg, datamodule)
    if cfg.get("print_config", True):
        print_config(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    check_wandb(cfg.get("logger"))
    check_tensorboard(cfg.get("logger"))
    if resume:  # the run's own folder: its checkpoints are expected there
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        continue_logger_runs(cfg.get("logger"), output_dir)
    loggers = instantiate_loggers(cfg.get("logger"))
    # callbacks.progress_bar=null means no bar (Lightning would add its own, which counts
    # epochs of an open-ended run: "Epoch 0/-2"); trainer.enable_progress_bar=true keeps it.
    bar = {} if "enable_progress_bar" in cfg.trainer else {
        "enable_progress_bar": any(isinstance(c, ProgressBar) for c in callbacks)}
    # Checkpoints written by the project's one writer (beside their destination, renamed in place).
    plugins = [AtomicCheckpointIO(), *(instantiate(cfg.trainer.get("plugins")) or [])]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision,
                                     plugins=plugins, **bar)
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
        stopped = next((c for c in trainer.callbacks if isinstance(c, InterruptCheckpoint) and c.signal_name), None)
        if stopped is not None:
            log.warning("interrupted by %s at step %d of %d; go on with: python -m sr_lightning.train resume=%s",
                        stopped.signal_name, trainer.global_step, trainer.max_steps, output_dir)
            metrics["interrupted"] = stopped.signal_name
        elif cfg.test:
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


def command_overrides() -> list[str]:
    """The command line's overrides (Hydra's task overrides; empty outside a Hydra run)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def set_validation_interval(cfg: DictConfig, datamodule: Any) -> None:
    """Resolve ``trainer.val_check_interval: auto`` (a tenth of ``trainer.max_steps``; with
    ``check_val_every_n_epoch`` or a run bounded by epochs: once an epoch) and warn, before
    training, when the run will never validate (``null``: no validation wanted, no warning)."""
    trainer_cfg, max_steps = cfg.trainer, int(cfg.trainer.get("max_steps") or -1)
    if trainer_cfg.get("val_check_interval") is None:  # validation left out on purpose (experiment=zssr)
        return
    by_epoch = trainer_cfg.get("check_val_every_n_epoch") is not None or max_steps <= 0
    interval = trainer_cfg.get("val_check_interval")
    if interval == "auto":
        interval = 1.0 if by_epoch else max(1, max_steps // 10)
    with open_dict(cfg):
        trainer_cfg.val_check_interval = interval
        if by_epoch and trainer_cfg.get("check_val_every_n_epoch") is None:
            trainer_cfg.check_val_every_n_epoch = 1
    never = None
    if not getattr(datamodule, "val_dir", None):
        never = "data.val_dir is not set"
    elif by_epoch and max_steps > 0:
        steps = int(getattr(datamodule, "steps_per_epoch", 1)) * int(trainer_cfg.check_val_every_n_epoch)
        never = f"it validates every {steps} steps" if steps > max_steps else None
    elif isinstance(interval, int) and interval > max_steps > 0:
        never = f"trainer.val_check_interval={interval}"
    if never:
        log.warning("this run never validates (%s, trainer.max_steps=%d): no val/psnr curve, no best checkpoint, no "
                    "value for sweeps; set trainer.val_check_interval=N (steps) to validate", never, max_steps)
    elif isinstance(interval, int):
        log.info("validating every %d steps", interval)


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
    write_text_atomically(output_dir / JOB_FILE, json.dumps(summary, indent=2) + "\n")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` for multirun/Optuna."""
    log.info("output folder: %s", HydraConfig.get().runtime.output_dir)
    metrics, objects = train(cfg)
    if metrics.get("interrupted"):
        sys.exit(128 + signal.Signals[metrics["interrupted"]].value)  # as a process killed by it (130, 143)
    value = optimized_value(metrics, cfg.optimized_metric)
    if objects["trainer"].is_global_zero:
        write_job_summary(cfg, {**metrics, cfg.optimized_metric: value}, objects["output_dir"])
    return value


def optimized_value(metrics: Mapping[str, Any], name: str) -> float | None:
    """``metrics[name]``; for a ``*_best`` metric the run never set (no validation improved
    on it, or too few steps to validate), its last value instead, saying so."""
    value = metrics.get(name)
    if value is None and name.endswith("_best") and metrics.get(name.removesuffix("_best")) is not None:
        value = metrics[name.removesuffix("_best")]
        log.warning("%s was never recorded; returning the last %s (%.4f)", name, name.removesuffix("_best"), value)
    elif value is None:
        log.warning("%s was never logged (did the run validate?); the sweep records no value", name)
    return float(value) if value is not None else None


def cli() -> None:
    """``python -m sr_lightning.train`` and the ``sr-train`` console script."""
    sys.argv = resume_argv(prepare_argv(sys.argv))  # data=291; plugins present; a resume's own overrides
    main()


if __name__ == "__main__":
    cli()
