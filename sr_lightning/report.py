"""The results of a test: the table printed at the end of a run, and ``metrics.json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table


def results_table(results: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """A rich table: set, images, PSNR/SSIM of the network and of bicubic, the gain, and
    the published PSNR/SSIM with our difference where ``published_psnr`` is given."""
    table = Table(title=title)
    published = any("published_psnr" in r for r in results.values())
    columns = ["set", "images", "PSNR (dB)", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain (dB)"]
    if published:
        columns += ["published PSNR", "published SSIM", "diff PSNR", "diff SSIM"]
    for col in columns:
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, r in results.items():
        row = [name, str(r["num_images"]), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['psnr_bicubic']:.3f}",
               f"{r['ssim_bicubic']:.4f}", f"{r['psnr'] - r['psnr_bicubic']:+.3f}"]
        if published:
            p_psnr, p_ssim = r.get("published_psnr"), r.get("published_ssim")
            row += [f"{p_psnr:.2f}" if p_psnr is not None else "-", f"{p_ssim:.4f}" if p_ssim is not None else "-",
                    f"{r['psnr'] - p_psnr:+.3f}" if p_psnr is not None else "-",
                    f"{r['ssim'] - p_ssim:+.4f}" if p_ssim is not None else "-"]
        table.add_row(*row)
    return table


@rank_zero_only
def report(results: Mapping[str, Mapping[str, float]], output_dir: str | Path, title: str,
           extra_lines: list[str] | None = None) -> Path:
    """Write ``metrics.json`` to ``output_dir`` and print the table (rank 0 only)."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    console = Console(width=None if sys.stdout.isatty() else 200)  # logs/pipes: do not squeeze the table
    console.print(results_table(results, title))
    for line in [*(extra_lines or []), f"metrics: {path}"]:
        console.print(line, highlight=False, soft_wrap=True)
    return path
