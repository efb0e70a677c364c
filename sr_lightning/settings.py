"""The run's device, precision and speed settings: resolved once from the config, applied, and
logged in one line, the same for train, eval, upscale and the budget's calibration.

``auto`` values become this machine class's measured defaults
(:data:`sr_lightning.hardware.SPEED_DEFAULTS`; ``precision: auto``: bf16 where the hardware
has bf16 matrix units). What a run resolved is recorded in its config (train) and said in
the log line ``run settings: ...``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sr_lightning.hardware import check_accelerator, describe_cpu, device_for, resolve_precision, resolve_speed
from sr_lightning.hardware import tune_allocator as tune_glibc_allocator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """What a run runs with.

    Attributes:
        accelerator: Lightning's accelerator (``auto``, ``cpu``, ``gpu``, ``mps``).
        device: where the network runs (:func:`~sr_lightning.hardware.device_for`).
        precision: Lightning's precision (``bf16-mixed``, ``32-true``, ...); evaluation scores in
            float32 whatever it is (``SRLitModule.predict_pair``).
        channels_last: the network runs in channels_last memory format.
        compile: the network is compiled with ``torch.compile``.
        threads: torch's CPU threads (None: torch's default, one per physical core).
        tune_allocator: glibc's malloc keeps freed tensor memory for reuse.
    """

    accelerator: str
    device: torch.device
    precision: str | int
    channels_last: bool
    compile: bool
    threads: int | None
    tune_allocator: bool

    def speed_options(self) -> dict[str, Any]:
        """The resolved speed options, as a run's config records them (in place of ``auto``)."""
        return {"channels_last": self.channels_last, "compile": self.compile, "threads": self.threads,
                "tune_allocator": self.tune_allocator}

    def describe(self) -> str:
        """The log line: ``run settings: cpu (<model>, AVX512+AMX), precision bf16-mixed, ...``."""
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else \
            describe_cpu() if self.device.type == "cpu" else self.device.type
        return (f"run settings: {self.device.type} ({where}), precision {self.precision}, "
                f"channels_last={self.channels_last}, compile={self.compile}, threads={torch.get_num_threads()}, "
                f"allocator {'tuned to reuse freed memory' if self.tune_allocator else 'glibc defaults'}")


def resolve_settings(options: Mapping[str, Any], accelerator: str = "auto", precision: str | int = "32-true",
                     option: str = "trainer.accelerator") -> RunSettings:
    """The settings of a run config: its speed options (``channels_last``, ``compile``,
    ``threads``, ``tune_allocator``; absent or ``auto``: this machine's default), its
    ``accelerator`` (the config key ``option``, named in errors) and ``precision`` (``auto``
    resolved).

    Raises:
        UserError: an accelerator torch cannot use here, or a speed option of the wrong kind.
    """
    check_accelerator(accelerator, option)
    speed = resolve_speed(options, accelerator)
    return RunSettings(accelerator=str(accelerator), device=device_for(accelerator),
                       precision=resolve_precision(precision, accelerator), channels_last=speed["channels_last"],
                       compile=speed["compile"], threads=speed["threads"], tune_allocator=speed["tune_allocator"])


def trainer_settings(cfg: Any) -> RunSettings:
    """:func:`resolve_settings` of a train or eval config: its speed options, ``trainer.accelerator``
    and ``trainer.precision``."""
    return resolve_settings(cfg, cfg.trainer.get("accelerator", "auto"), cfg.trainer.precision)


def apply_settings(settings: RunSettings) -> RunSettings:
    """Set the process-wide parts (threads, the allocator) and log :meth:`RunSettings.describe`.
    Returns the settings, with ``tune_allocator`` False where the C library refused it."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.tune_allocator and not tune_glibc_allocator():
        settings = dataclasses.replace(settings, tune_allocator=False)
    log.info("%s", settings.describe())
    return settings
