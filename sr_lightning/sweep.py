"""Multirun summaries: a Hydra callback that writes one row per job at the sweep's root.

Each training job leaves ``job_summary.json`` (its overrides, the optimised metric and the
test PSNR per set) in its folder; when the multirun ends, :class:`SweepSummary` collects
them into ``summary.csv`` and ``summary.md`` (best first by the optimised metric) in ``hydra.sweep.dir``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sr_lightning.errors import UserError
from sr_lightning.files import write_text_atomically

log = logging.getLogger(__name__)
JOB_FILE = "job_summary.json"


def collect(sweep_dir: str | Path, direction: str | None = None) -> list[dict[str, Any]]:
    """The jobs' summaries under ``sweep_dir``, best optimised metric first: the largest for
    ``direction="maximize"``, the smallest for ``"minimize"`` (None: from the metric's name,
    :func:`direction_of`); jobs without a value last."""
    jobs = []
    for path in sorted(Path(sweep_dir).glob(f"*/{JOB_FILE}")):
        job = json.loads(path.read_text())
        job["folder"] = path.parent.name
        jobs.append(job)
    direction = (direction or direction_of(str(jobs[0].get("metric", "")))) if jobs else "maximize"
    if direction not in ("maximize", "minimize"):
        raise UserError(f"hydra.sweeper.direction={direction!r} is not maximize or minimize")
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(jobs, key=lambda j: (j.get("value") is None, sign * (j.get("value") or 0.0)))


def direction_of(metric: str) -> str:
    """The better way for a metric named like sr_lightning's: ``minimize`` for losses and
    errors, else ``maximize`` (PSNR, SSIM)."""
    return "minimize" if any(w in metric.lower() for w in ("loss", "error", "lpips", "mse")) else "maximize"


def write_summary(sweep_dir: str | Path, direction: str | None = None) -> Path | None:
    """Write ``summary.csv`` and ``summary.md`` for the jobs under ``sweep_dir``, best first (see
    :func:`collect`); overrides shared by every job are left out of the rows. None if there
    are no jobs."""
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir, direction)
    if not jobs:
        return None
    sets = sorted({s for j in jobs for s in j.get("test_psnr", {})})
    metric = jobs[0].get("metric", "value")
    common = set.intersection(*(set(j.get("overrides", [])) for j in jobs)) if len(jobs) > 1 else set()
    header = ["job", "overrides", metric, *(f"test/{s}/psnr" for s in sets)]
    rows = [[j["folder"], " ".join(o for o in j.get("overrides", []) if o not in common),
             "" if j.get("value") is None else f"{j['value']:.4f}",
             *("" if j.get("test_psnr", {}).get(s) is None else f"{j['test_psnr'][s]:.4f}" for s in sets)]
            for j in jobs]
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomically(sweep_dir / "summary.csv", table.getvalue())
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]
    write_text_atomically(sweep_dir / "summary.md", "\n".join(md) + "\n")
    return sweep_dir / "summary.csv"


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write the sweep summary and log it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        direction = OmegaConf.select(config, "hydra.sweeper.direction")  # Optuna's; grid sweeps: by the name
        path = write_summary(config.hydra.sweep.dir, str(direction) if isinstance(direction, str) else None)
        if path is not None:
            log.info("sweep summary (best first):\n%s", path.with_suffix(".md").read_text())
