"""What a run prints: the composed config at its start, the results table at its end (also
in the run's log file), and ``metrics.json``."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from sr_lightning.files import write_text_atomically


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
    write_text_atomically(path, json.dumps(results, indent=2) + "\n")
    # logs/pipes: do not squeeze the table; recorded for the run's log file (Hydra's <run>/<task>.log)
    console = Console(width=None if sys.stdout.isatty() else 200, record=True)
    console.print(results_table(results, title))
    for line in [*(extra_lines or []), f"metrics: {path}"]:
        console.print(line, highlight=False, soft_wrap=True)
    to_log_files(console.export_text())
    return path


def to_log_files(text: str) -> None:
    """Append ``text`` to the files the root logger writes (Hydra's ``<run>/<task>.log``)
    without the console seeing it twice."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.stream is not None:
            with handler.lock or contextlib.nullcontext():
                handler.stream.write(text)
                handler.flush()


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    """The composed config as a tree at the start of a run (each top-level entry a branch
    with its YAML, the groups a run is made of first)."""
    first = ("data", "model", "loss", "optimizer", "scheduler", "trainer", "callbacks", "logger")
    tree = Tree("config (saved in <run>/.hydra/config.yaml)", guide_style="dim")
    plain = OmegaConf.to_container(cfg, resolve=False)  # interpolations shown as written
    groups = {k: v for k, v in plain.items() if isinstance(v, dict) and k != "module"}
    for key in sorted(groups, key=lambda k: first.index(k) if k in first else len(first)):
        tree.add(str(key), style="bold").add(_yaml(groups[key]))
    scalars = {k: v for k, v in plain.items() if not isinstance(v, dict)}
    if scalars:
        tree.add("run", style="bold").add(_yaml(scalars))
    Console(width=None if sys.stdout.isatty() else 200).print(tree)


def _yaml(data: dict) -> Syntax:
    return Syntax(OmegaConf.to_yaml(data).rstrip(), "yaml", background_color="default")
