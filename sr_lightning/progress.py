"""Progress over work of known size: a Rich bar on a terminal, plain log lines elsewhere
(``| tee log``, CI, nohup), where a live bar draws nothing. Used by the progress callback
(training, evaluation) and by the library's loops (upscaling images and tiles, shards)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sr_lightning.errors import UserError

log = logging.getLogger(__name__)

WHEN = ("auto", "always", "never")
T = TypeVar("T")


def plain_progress_wanted(when: str) -> bool:
    """Whether to log progress lines: ``"auto"`` when stdout is not a terminal (a terminal
    shows the progress bar), ``"always"``, ``"never"``.

    Raises:
        ValueError: ``when`` is not one of :data:`WHEN`.
    """
    if when not in WHEN:
        raise UserError(f"progress when={when!r} is not one of {WHEN}")
    return when == "always" or (when == "auto" and not sys.stdout.isatty())


def check_every(every_s: float) -> float:
    if every_s < 0:
        raise UserError(f"progress every_s={every_s} must be >= 0 (seconds between lines)")
    return float(every_s)


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m07s``, ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class PlainProgress:
    """Counts work done and logs a line at most every ``every_s`` seconds (and at the end):
    ``<what> 120/3000 (4%) | <extra> | 2.31 <unit>/s | 20m51s left``.

    Args:
        what: the label (``step``, ``test batch``, ``image``).
        total: the amount of work (None or <= 0: unknown, no percentage or time left).
        every_s: seconds between lines (0: every update).
        unit: the rate's unit (``steps``, ``batches``, ``images``).
        done: work already done before this one started (a resumed run's step).
    """

    def __init__(self, what: str, total: int | None, every_s: float, unit: str, done: int = 0) -> None:
        self.what, self.unit, self.every_s = what, unit, check_every(every_s)
        self.total = total if total and total > 0 else None
        self._start_done, self._t0 = done, time.perf_counter()
        self._last: float | None = None

    def update(self, done: int, extra: Mapping[str, float] | None = None, final: bool = False) -> str | None:
        """Log (and return) a line if ``every_s`` has passed since the last one, or if ``final``."""
        now = time.perf_counter()
        if not final and self._last is not None and now - self._last < self.every_s:
            return None
        if not final and self._last is None and now - self._t0 < self.every_s:
            return None
        self._last = now
        elapsed = now - self._t0
        rate = (done - self._start_done) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.what} {done}/{self.total} ({100 * done / self.total:.0f}%)" if self.total
                 else f"{self.what} {done}"]
        parts += [f"{k} {v:.4g}" for k, v in (extra or {}).items()]
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"{_duration((self.total - done) / rate)} left" if done < self.total
                         else f"done in {_duration(elapsed)}")
        line = " | ".join(parts)
        log.info(line)
        return line


def track(items: Iterable[T], total: int, description: str, what: str, unit: str,
          settings: Mapping[str, Any] | None = None, show: bool = True) -> Iterator[T]:
    """``items`` as they come, with progress for the ``total`` expected: a Rich bar on a
    terminal, else plain lines (:class:`PlainProgress`, ``settings``: ``every_s``, ``when``);
    nothing when not ``show``."""
    settings = settings or {}
    plain = PlainProgress(what, total, settings.get("every_s", 30), unit) \
        if show and plain_progress_wanted(settings.get("when", "auto")) else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not show or plain is not None) as bar:
        task = bar.add_task(description, total=total)
        for done, item in enumerate(items, start=1):
            yield item
            bar.advance(task)
            if plain is not None:
                plain.update(done, final=done == total)
