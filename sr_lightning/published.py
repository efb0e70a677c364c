"""Published PSNR/SSIM from the papers, to show beside ours: the benchmark data's
``reference/published.csv`` and the rows sr_lightning adds (:data:`PACKAGED`: papers that
file does not hold, e.g. IMDN).

The CSVs have the columns ``method,variant,dataset,scale,psnr,ssim,note`` (``ssim`` may be
empty) and optionally ``gray``: how the paper scored a grayscale test image
(``evaluation.gray``: ``own``, the default, or ``rgb``). Values are Y-channel,
border = scale, as the papers report them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sr_lightning.errors import UserError
from sr_lightning.lit.evaluation import GRAY

COLUMNS = ("method", "variant", "dataset", "scale", "psnr", "ssim")
# Published rows shipped with the package (papers the benchmark data's CSV does not hold).
PACKAGED = Path(__file__).resolve().parent / "published_rows.csv"


@dataclass(frozen=True)
class PublishedRow:
    """One published result."""

    method: str
    variant: str
    dataset: str
    scale: int
    psnr: float
    ssim: float | None
    gray: str = "own"


def read_published(path: str | Path) -> list[PublishedRow]:
    """Read a published-results CSV.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column or a malformed number (the message names the line).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"published.csv='{path}' does not exist; point published.csv at a copy of "
                                f"reference/published.csv, or set published.csv=null")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"published.csv='{path}' lacks the column(s) {missing}; expected {list(COLUMNS)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                ssim = float(r["ssim"]) if (r["ssim"] or "").strip() else None
                gray = (r.get("gray") or "own").strip()
                if gray not in GRAY:
                    raise ValueError(f"gray={gray!r} is not one of {GRAY}")
                rows.append(PublishedRow(r["method"].strip().lower(), (r["variant"] or "").strip(),
                                         r["dataset"].strip(), int(r["scale"]), float(r["psnr"]), ssim, gray))
            except ValueError as err:
                raise UserError(f"published.csv='{path}' line {line}: {err}") from None
    return rows


def find_published(rows: list[PublishedRow], method: str, dataset: str, scale: int,
                   variant: str | None = None) -> PublishedRow | None:
    """The published row for ``method`` on ``dataset`` at ``scale``.

    With ``variant=None`` a row is returned only when the method has a single variant for
    that set and scale (otherwise the choice is the user's: pass ``variant``). Dataset
    names match case-insensitively.
    """
    hits = [r for r in rows if r.method == method.lower() and r.dataset.lower() == dataset.lower()
            and r.scale == scale and (variant is None or r.variant == variant)]
    return hits[0] if len(hits) == 1 else None


def variants(rows: list[PublishedRow], method: str) -> list[str]:
    """The variants published for ``method`` (e.g. EDSR: ``baseline``, ``full``)."""
    return sorted({r.variant for r in rows if r.method == method.lower()})
