"""Train a network: ``python -m sr_lightning.train model=vdsr data.scale=3 ...``.

Composes ``sr_lightning/conf/train.yaml``, trains, tests the best checkpoint, prints the table and
writes ``metrics.json`` to the run's output folder.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ProgressBar, Timer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from sr_lightning.budget import check_budget, seconds_per_step
from sr_lightning.budget import plan as plan_budget
from sr_lightning.callbacks import InterruptCheckpoint
from sr_lightning.checkpoint import (
    AtomicCheckpointIO,
    Checkpoint,
    RunMeta,
    config_trusted_nets,
    data_for,
    load_weights,
)
from sr_lightning.cli import overridden_keys, prepare_argv, require_given, user_errors
from sr_lightning.config import register_resolvers, updated
from sr_lightning.convert.importer import read_model
from sr_lightning.data.pairs import Degradation
from sr_lightning.errors import UserError
from sr_lightning.files import write_text_atomically
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
from sr_lightning.resume import NOT_REPLAYED, key_of, resume_argv, run_folder_of
from sr_lightning.settings import RunSettings, apply_settings, trainer_settings
from sr_lightning.sweep import JOB_FILE

log = logging.getLogger(__name__)

TEST_CKPTS = ("last", "best")


@dataclass(frozen=True)
class RunPlan:
    """What a training run resolved before it builds anything.

    Attributes:
        cfg: the config it runs with: the composed one with train's decisions recorded (speed
            settings, the checkpoint's network and data, the steps, the validation interval);
            the config it was given is left as composed.
        settings: device, precision and speed (:mod:`sr_lightning.settings`).
        checkpoint: ``ckpt_path`` / ``init_from`` read and checked, or None.
        resume: continue the checkpoint's run (its training state); False: a new run (from its
            weights, for ``init_from`` or a weights-only ``ckpt_path``).
        module_cls: ``module._target_``'s class.
    """

    cfg: DictConfig
    settings: RunSettings
    checkpoint: Checkpoint | None
    resume: bool
    module_cls: type[SRLitModule]


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and test as configured: resolve, build, fit, test.

    Returns:
        ``(metrics, objects)``: the final logged metrics (floats) plus ``"test"`` (the
        metrics.json content), and the datamodule, module, trainer, output folder and the
        config the run ran with (``cfg``).
    """
    register_resolvers()
    plan = resolve(cfg)
    L.seed_everything(plan.cfg.seed, workers=True)
    datamodule, module = build(plan)
    run_cfg = updated(plan.cfg, validation_interval(plan.cfg.trainer, datamodule))
    trainer = build_trainer(run_cfg, plan, module)
    return fit_and_test(run_cfg, plan, datamodule, module, trainer)


def resolve(cfg: DictConfig) -> RunPlan:
    """Check the options, read the checkpoint, resolve and apply the run settings, and fix the
    steps (a resumed run's own, or ``budget_minutes``' calibration): a :class:`RunPlan`."""
    require_given(cfg)
    if cfg.test_ckpt not in TEST_CKPTS:
        raise UserError(f"test_ckpt={cfg.test_ckpt!r} is not one of {TEST_CKPTS}: 'last' tests the final weights, "
                        f"'best' the checkpoint with the highest val/psnr")
    path, init = cfg.ckpt_path, cfg.get("init_from")
    if path and init:
        raise UserError("ckpt_path (resume a run) and init_from (start a new run from weights) are both set; "
                        "keep one")
    if cfg.get("resume") is not None:
        raise UserError(f"resume={cfg.resume} is read from the command line (python -m sr_lightning.train "
                        f"resume=...); in code, pass sr_lightning.resume.plan(overrides).overrides to Hydra")
    check_max_time(cfg.trainer.get("max_time"))
    module_cls = module_class(cfg.module)
    # A checkpoint is data: its network is checked against the registry (and the networks this
    # config names); its loss/optimizer/scheduler are never used (this run's config supplies them).
    ckpt = read_model(path or init, "ckpt_path" if path else "init_from", config_trusted_nets(cfg),
                      cfg.get("architecture"), cfg.data.scale) if path or init else None
    resume = bool(path) and ckpt is not None and ckpt.resumable
    updates: dict[str, Any] = {}
    if ckpt is not None:  # the checkpoint's network (and a resumed run's, whatever the config says)
        if path and not resume:
            log.info("ckpt_path=%s holds weights only (no training state): starting a new run from them", path)
        elif resume:
            log.info("resuming from %s at step %d", path, ckpt.global_step)
            if run_folder_of(ckpt.path) is None:
                log.warning("ckpt_path='%s' is not in its run folder: its network comes from the file; it was trained "
                            "with %s (repeat the options you want: options from a file are never run)", ckpt.path,
                            " ".join(o for o in ckpt.meta.overrides or () if key_of(o) not in NOT_REPLAYED)
                            or "(none)")
        data_updates, net_overrides = data_for(ckpt, cfg.data, overridden_keys(), body_only=not resume)
        updates.update(data_updates)
        updates["module.net"] = ckpt.net_config(net_overrides)  # replaces `model`
    settings = apply_settings(trainer_settings(cfg))
    updates.update(settings.speed_options())
    run_cfg = updated(cfg, updates)
    steps = planned_steps(run_cfg, settings, ckpt if resume else None, module_cls)
    if steps is not None:
        run_cfg = updated(run_cfg, {"trainer.max_steps": steps})
    return RunPlan(run_cfg, settings, ckpt, resume, module_cls)


def build(plan: RunPlan) -> tuple[Any, SRLitModule]:
    """The datamodule and the module (``conf/module``, built from the run's groups), the module
    holding what its checkpoints record (:class:`RunMeta`) and, for ``init_from``, the weights."""
    cfg = plan.cfg
    datamodule = instantiate(cfg.data)
    module: SRLitModule = instantiate(cfg.module)
    check_scales(module, datamodule)
    # The evaluation sets' LR protocol, which eval adopts (a realesrgan training degradation is
    # not one), and the command's overrides, which resuming from the file alone lists.
    degradation = getattr(datamodule, "degradation", None)
    module.run_meta = RunMeta(degradation=asdict(degradation) if isinstance(degradation, Degradation) else None,
                              overrides=tuple(command_overrides()), max_steps=int(cfg.trainer.max_steps))
    if type(module.net).published_on_rgb and module.net.in_channels == 1:
        log.warning("model: %s was published on RGB (data.channels=3; its tables: data/degradation=benchmark_lr); "
                    "this run trains it on Y (data.channels=%d), so it compares with Y-channel networks, not with "
                    "its paper", module.net.name, cfg.data.channels)
    if plan.checkpoint is not None and not plan.resume:
        own = int(plan.checkpoint.net["scale"])
        fresh = load_weights(module, plan.checkpoint.state_dict, body_only=module.scale != own)
        if fresh:
            log.warning("init_from: the weights are for x%d, this run trains x%d (data.scale=%d): fine-tuning across "
                        "scales keeps the body; the upsampler's %d tensor(s) (%s) start fresh", own, module.scale,
                        module.scale, len(fresh), ", ".join(fresh[:4]) + (", ..." if len(fresh) > 4 else ""))
        log.info("initialised %s from %s", module.net.name, plan.checkpoint.path)
    return datamodule, module


def build_trainer(cfg: DictConfig, plan: RunPlan, module: SRLitModule) -> L.Trainer:
    """The trainer of the run's config, with its callbacks and loggers (their hyperparameters:
    the run's config, network size and cost, the commit)."""
    if cfg.get("print_config", True):
        print_config(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    check_wandb(cfg.get("logger"))
    check_tensorboard(cfg.get("logger"))
    output_dir = Path(cfg.paths.output_dir)
    if plan.resume:  # the run's own folder: its checkpoints are expected there
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        continue_logger_runs(cfg.get("logger"), output_dir)
    loggers = instantiate_loggers(cfg.get("logger"))
    # callbacks.progress_bar=null means no bar (Lightning would add its own, which counts
    # epochs of an open-ended run: "Epoch 0/-2"); trainer.enable_progress_bar=true keeps it.
    bar = {} if "enable_progress_bar" in cfg.trainer else {
        "enable_progress_bar": any(isinstance(c, ProgressBar) for c in callbacks)}
    # Checkpoints written by the project's one writer (beside their destination, renamed in
    # place); a resumed run restores from the checkpoint already read.
    plugins = [AtomicCheckpointIO(plan.checkpoint if plan.resume else None),
               *(instantiate(cfg.trainer.get("plugins")) or [])]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     precision=plan.settings.precision, plugins=plugins, **bar)
    if trainer.loggers:
        run_info = {"cfg": OmegaConf.to_container(cfg, resolve=True),
                    "num_params": sum(p.numel() for p in module.net.parameters()),
                    "gflops_per_megapixel": round(net_gflops(module.net), 3), "git_commit": git_commit()}
        for logger in trainer.loggers:
            logger.log_hyperparams(run_info)
    return trainer


def fit_and_test(cfg: DictConfig, plan: RunPlan, datamodule: Any, module: SRLitModule, trainer: L.Trainer
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit (from the checkpoint's state when resuming), then test the last or best weights and
    report; the loggers are closed either way."""
    output_dir = Path(cfg.paths.output_dir)
    log.info("training %s x%d on %s, precision %s", module.net.name, module.scale,
             ", ".join(map(str, getattr(datamodule, "train_dirs", [cfg.data.train_dir]))), plan.settings.precision)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=plan.checkpoint.path if plan.resume else None,
                    weights_only=True)
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
    return metrics, {"datamodule": datamodule, "module": module, "trainer": trainer, "output_dir": output_dir,
                     "cfg": cfg}


def check_scales(module: SRLitModule, datamodule: Any) -> None:
    """The network upscales by the data's scale (or, trained on several, takes each of them).

    Raises:
        UserError: naming both options (``model.scale=3`` with ``data.scale=2``).
    """
    scales = list(getattr(datamodule, "train_scales", []) or [getattr(datamodule, "scale", module.scale)])
    if len(scales) == 1 and int(scales[0]) != module.scale and not type(module.net).scale_agnostic:
        raise UserError(f"the network upscales x{module.scale} (model.scale={module.scale}) but the data is "
                        f"x{scales[0]} (data.scale={scales[0]}): set one of them to the other (model.scale follows "
                        f"data.scale unless it is given)")


def command_overrides() -> list[str]:
    """The command line's overrides (Hydra's task overrides; empty outside a Hydra run)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def validation_interval(trainer_cfg: DictConfig, datamodule: Any) -> dict[str, Any]:
    """``trainer.val_check_interval: auto`` resolved (a tenth of ``trainer.max_steps``; with
    ``check_val_every_n_epoch`` or a run bounded by epochs: once an epoch), as config updates;
    warns, before training, when the run will never validate (``null``: no validation
    wanted, no warning)."""
    max_steps = int(trainer_cfg.get("max_steps") or -1)
    if trainer_cfg.get("val_check_interval") is None:  # validation left out on purpose (experiment=zssr)
        return {}
    by_epoch = trainer_cfg.get("check_val_every_n_epoch") is not None or max_steps <= 0
    interval = trainer_cfg.get("val_check_interval")
    if interval == "auto":
        interval = 1.0 if by_epoch else max(1, max_steps // 10)
    every_n_epoch = trainer_cfg.get("check_val_every_n_epoch") or (1 if by_epoch else None)
    updates: dict[str, Any] = {"trainer.val_check_interval": interval}
    if by_epoch:
        updates["trainer.check_val_every_n_epoch"] = every_n_epoch
    never = None
    if not getattr(datamodule, "val_dir", None):
        never = "data.val_dir is not set"
    elif by_epoch and max_steps > 0:
        steps = int(getattr(datamodule, "steps_per_epoch", 1)) * int(every_n_epoch)
        never = f"it validates every {steps} steps" if steps > max_steps else None
    elif isinstance(interval, int) and interval > max_steps > 0:
        never = f"trainer.val_check_interval={interval}"
    if never:
        log.warning("this run never validates (%s, trainer.max_steps=%d): no val/psnr curve, no best checkpoint, no "
                    "value for sweeps; set trainer.val_check_interval=N (steps) to validate", never, max_steps)
    elif isinstance(interval, int):
        log.info("validating every %d steps", interval)
    return updates


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


def check_max_time(max_time: Any) -> float | None:
    """``trainer.max_time`` in seconds, parsed by Lightning's own ``Timer`` (what the trainer
    does with it), or None when unset.

    Raises:
        UserError: a form Lightning rejects, or no time at all, with the forms it takes.
    """
    if max_time is None:
        return None
    if OmegaConf.is_config(max_time):
        max_time = OmegaConf.to_container(max_time, resolve=True)
    try:
        seconds = Timer(duration=max_time)._duration
    except (MisconfigurationException, TypeError, ValueError, AttributeError):
        seconds = None
    if not seconds or seconds <= 0:
        raise UserError(f"trainer.max_time={max_time!r} is not a form Lightning takes: use {MAX_TIME_FORMS}")
    return float(seconds)


def planned_steps(cfg: DictConfig, settings: RunSettings, resumed: Checkpoint | None,
                  module_cls: type[SRLitModule]) -> int | None:
    """``trainer.max_steps`` as train decides it, or None to keep the config's: a resumed run's
    own steps (its schedule) under ``budget_minutes``; else the steps that fit the budget
    (timed here), unless ``trainer.max_steps`` was given on the command line (pinned)."""
    if cfg.get("budget_minutes") is None:
        return None
    minutes = check_budget(cfg.budget_minutes)
    planned = resumed.meta.max_steps if resumed is not None else None
    if "trainer.max_steps" in overridden_keys():
        log.info("budget_minutes=%g: trainer.max_steps=%d given, so no calibration", minutes, cfg.trainer.max_steps)
        return None
    if planned:
        log.info("budget_minutes=%g: resuming, so the run's own %d steps (its schedule) are kept", minutes, planned)
        return int(planned)
    if int(cfg.trainer.max_steps) <= 0:
        raise UserError("budget_minutes needs trainer.max_steps > 0 as its cap (it sets the steps that fit)")
    if module_cls is not SRLitModule:
        raise UserError(f"budget_minutes times SRLitModule steps; for module._target_={module_cls.__name__} set "
                        f"trainer.max_steps (and budget_minutes=null)")
    torch.manual_seed(cfg.seed)
    probe = SRLitModule(net=cfg.module.net, loss=cfg.loss, channels_last=settings.channels_last)
    step_s = seconds_per_step(probe, cfg.optimizer, cfg.data, settings.precision, cfg.trainer.get("gradient_clip_val"),
                              settings.device)
    steps, line = plan_budget(minutes, step_s, int(cfg.trainer.max_steps), settings.precision)
    log.info(line)
    return steps


def write_job_summary(cfg: DictConfig, metrics: dict[str, Any], output_dir: Path) -> None:
    """``job_summary.json`` for the sweep summary: overrides, the optimised metric, test PSNR per set."""
    value = metrics.get(cfg.optimized_metric)
    summary = {"overrides": command_overrides(), "metric": cfg.optimized_metric,
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
