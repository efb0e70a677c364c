"""The visual-comparison figure of a paper, from the command line:
``python -m sr_lightning.compare image=HR.png box=[y,x,h,w] models=[bicubic,a.ckpt,b.pth]``
(console script ``sr-compare``; ``image=Set5 index=2`` picks a benchmark image).

Each model is scored on the image exactly as ``eval`` scores it (the same module, data and
protocol code), its output cropped to the box and nearest-neighbour zoomed; the files (PNG,
PDF, HTML) are written only once every model has run, each atomically, so a model that cannot
be loaded leaves no half-written figure.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sr_lightning.checkpoint import config_trusted_nets
from sr_lightning.cli import overridden_keys, prepare_argv, user_errors
from sr_lightning.comparison import Comparison, Method, parse_box, zoom_for
from sr_lightning.comparison.figure import figure_bytes
from sr_lightning.comparison.page import render
from sr_lightning.config import register_resolvers, updated
from sr_lightning.convert.importer import read_model
from sr_lightning.data.io import MAX_IMAGE_PIXELS, check_max_pixels
from sr_lightning.data.pairs import modcrop
from sr_lightning.data.sources import load_file, location_files, resolve_test_set
from sr_lightning.errors import UserError
from sr_lightning.evaluation_setup import evaluation_module
from sr_lightning.files import write_bytes_atomically, write_text_atomically
from sr_lightning.lit import SRLitModule
from sr_lightning.metrics.functional import quantize
from sr_lightning.ops.color import colour_of
from sr_lightning.settings import resolve_settings

log = logging.getLogger(__name__)
BICUBIC = "bicubic"
SUFFIXES = (".png", ".pdf", ".html")


def image_path(cfg: DictConfig) -> Path:
    """The HR image file ``image`` (with ``index``: that image of a benchmark or folder) names.

    Raises:
        FileNotFoundError / UserError: no such file, set or index (the message says which exist).
    """
    entry, index = str(cfg.image), cfg.get("index")
    if index is None:
        path = Path(entry).expanduser()
        if path.is_file():
            return path
        hint = f"; '{entry}' names a folder or benchmark: add index=N" if not path.suffix else ""
        raise FileNotFoundError(f"image='{entry}' is not an image file{hint}")
    if not isinstance(index, int) or isinstance(index, bool):
        raise UserError(f"index={index!r} must be an integer (the image's position in the set, from 0)")
    name, folder = resolve_test_set(entry, cfg.data.get("benchmark_dir"))
    files = location_files(folder, "image")
    if not 0 <= index < len(files):
        listed = ", ".join(f"{i}={f.stem}" for i, f in enumerate(files[:6])) + (", ..." if len(files) > 6 else "")
        raise UserError(f"index={index}: {name} has {len(files)} images (index 0..{len(files) - 1}: {listed})")
    return files[index]


def _uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] on the uint8 grid -> uint8 (H, W, C)."""
    return (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def shown(module: SRLitModule, batch: dict[str, Any], out: dict[str, Any], colour_lr: torch.Tensor | None
          ) -> np.ndarray:
    """A method's output as the figure shows it: as scored; a Y network's on a colour image in
    colour, its Y with the bicubic chroma of the colour LR (the one it saw when its LR was made
    in colour, else ``colour_lr``: the LR of the figure's data options), as its authors show it."""
    sr = out["sr"][:1]
    lr = batch["lr_rgb"][:1] if "lr_rgb" in batch else colour_lr
    if sr.shape[1] == 1 and lr is not None:
        sr = quantize(colour_of(sr, lr.to(sr), border=module.bicubic_border).clamp(0, 1))
    return _uint8(sr[0])


def _models(cfg: DictConfig, given: Collection[str]) -> tuple[int, list[tuple[str, str | None, Any]]]:
    """Every model file read (before anything runs, so a bad one stops the command at once) and
    the one scale of the figure: ``(scale, [(entry, path or None, checkpoint or None)])``."""
    entries = [str(m) for m in (cfg.models or [])]
    if not entries:
        raise UserError("models=[] is empty: give model files and/or bicubic, e.g. models=[bicubic,rdn_x4.ckpt]")
    read = []
    for i, entry in enumerate(entries):
        if entry.lower() == BICUBIC:
            read.append((entry, None, None))
            continue
        read.append((entry, entry, read_model(entry, f"models[{i}]", config_trusted_nets(cfg), cfg.get("architecture"),
                                              cfg.data.scale if "data.scale" in given else None)))
    if "data.scale" in given:
        return int(cfg.data.scale), read
    scales = {entry: int(ckpt.net["scale"]) for entry, _, ckpt in read if ckpt is not None}
    if len(set(scales.values())) > 1:
        named = ", ".join(f"{e} is x{s}" for e, s in scales.items())
        raise UserError(f"models of different scales in one figure: {named}; give models of one scale (or "
                        f"data.scale=N, for networks that run at another)")
    return (next(iter(scales.values())) if scales else int(cfg.data.scale)), read


def _labels(cfg: DictConfig, entries: list[str], modules: list[SRLitModule]) -> list[str]:
    labels = cfg.get("labels")
    if labels is not None:
        labels = [str(v) for v in labels]
        if len(labels) != len(entries):
            raise UserError(f"labels has {len(labels)} names for {len(entries)} models; give one per model or "
                            f"labels=null")
        return labels
    names = ["Bicubic" if e.lower() == BICUBIC else m.net.name for e, m in zip(entries, modules, strict=True)]
    return [Path(e).stem if names.count(n) > 1 and e.lower() != BICUBIC else n
            for e, n in zip(entries, names, strict=True)]


def compare(cfg: DictConfig) -> tuple[Comparison, dict[str, Path]]:
    """Score every model on the image, build the figure's content and write its files; returns
    the content and ``{"png"|"pdf"|"html": path}``."""
    register_resolvers()
    given = overridden_keys()
    path = image_path(cfg)
    box = parse_box(OmegaConf.to_object(cfg.box) if OmegaConf.is_config(cfg.box) else cfg.box)
    scale, read = _models(cfg, given)
    stem = Path(cfg.output).expanduser() if cfg.get("output") else Path(f"compare_{path.stem}_x{scale}")
    targets = {s[1:]: stem.with_name(stem.name + s) for s in SUFFIXES}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not cfg.get("overwrite", False):
        raise UserError(f"output: {', '.join(existing)} exist(s); give another output= or overwrite=true")
    max_pixels = check_max_pixels(cfg.data.get("max_image_pixels", MAX_IMAGE_PIXELS), "data.max_image_pixels")
    image = load_file(path, max_pixels)  # read once: every model's pair is made from it
    hr = modcrop(image.pixels, scale)
    box.check(hr.shape[0], hr.shape[1], scale)
    # The speed options as eval resolves them (channels_last changes the last bits of some
    # networks' float32 output, so the numbers are eval's only with the same choice).
    settings = resolve_settings(cfg, str(cfg.get("device", "auto")), option="device")
    device = settings.device
    colour_lr = None if hr.shape[-1] == 1 else instantiate(
        updated(cfg, {"data.scale": scale, "data.channels": 3}).data).image_batch(image)["lr"].to(device)
    modules, methods_out = [], []
    for entry, file, ckpt in read:
        run_cfg = updated(cfg, {"data.scale": scale}) if file is None else cfg
        module, run_cfg = evaluation_module(run_cfg, file, given, key="models", checkpoint=ckpt,
                                            channels_last=settings.channels_last)
        module = module.to(device).eval()
        batch = instantiate(run_cfg.data).image_batch(image)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        metrics, out = module.score(batch)
        modules.append(module)
        methods_out.append((shown(module, batch, out, colour_lr), metrics))
        log.info("%s: PSNR %.3f dB, SSIM %.4f", entry, metrics["psnr"], metrics["ssim"])
    labels = _labels(cfg, [e for e, _, _ in read], modules)
    notes = []
    rgb = [label for label, m in zip(labels, modules, strict=True) if m.net.in_channels == 3 and m.net.name != BICUBIC]
    if hr.shape[-1] == 1 and rgb:
        scored = ("its gray levels (its own Y; evaluation.gray=own)" if modules[0].gray == "own"
                  else "the RGB image it was read as (evaluation.gray=rgb)")
        notes.append(f"'{path.name}' is a grayscale image: the RGB models ({', '.join(rgb)}) upscale it as three "
                     f"equal channels; PSNR/SSIM compare {scored}")
    comparison = Comparison(name=path.stem, scale=scale, hr=hr, box=box, zoom=zoom_for(box, cfg.get("zoom")),
                            methods=tuple(Method(label, image, metrics["psnr"], metrics["ssim"])
                                          for label, (image, metrics) in zip(labels, methods_out, strict=True)),
                            notes=tuple(notes))
    files = {"png": figure_bytes(comparison, "png"), "pdf": figure_bytes(comparison, "pdf")}
    page = render(comparison)
    if stem.parent != Path(""):
        stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt, data in files.items():
        write_bytes_atomically(targets[fmt], data)
    write_text_atomically(targets["html"], page)
    if cfg.get("wandb"):
        log_to_wandb(comparison, targets["png"], cfg.wandb, stem.parent)
    return comparison, targets


def log_to_wandb(comparison: Comparison, png: Path, options: DictConfig, folder: Path) -> None:
    """The figure as a W&B image and the methods as a table (label, PSNR, SSIM, zoomed crop)."""
    import wandb

    if not options.get("project"):
        raise UserError("wandb needs a project: wandb.project=NAME (wandb.name, wandb.id optional)")
    run = wandb.init(project=str(options.project), name=options.get("name"), id=options.get("id"),
                     resume="allow" if options.get("id") else None, dir=str(options.get("dir") or folder or "."),
                     job_type="compare", config={"image": comparison.name, "scale": comparison.scale,
                                                  "box": [comparison.box.y, comparison.box.x, comparison.box.h,
                                                          comparison.box.w]})
    crops = dict(comparison.crops())
    table = wandb.Table(columns=["method", "psnr", "ssim", "crop"],
                        data=[[m.label, m.psnr, m.ssim, wandb.Image(crops[m.label])] for m in comparison.methods])
    run.log({"compare/figure": wandb.Image(str(png), caption=" | ".join(
        f"{m.label} {comparison.caption(m)}" for m in comparison.methods)), "compare/table": table})
    run.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="compare")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    comparison, targets = compare(cfg)
    width = max(len(m.label) for m in comparison.methods)
    for m in comparison.methods:
        print(f"{m.label:<{width}}  {m.psnr:7.3f} dB  {m.ssim:.4f}")
    for note in comparison.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in targets.values()))


def cli() -> None:
    """``python -m sr_lightning.compare`` and the ``sr-compare`` console script."""
    sys.argv = prepare_argv(sys.argv)  # numeric choices quoted; plugins present
    main()


if __name__ == "__main__":
    cli()
