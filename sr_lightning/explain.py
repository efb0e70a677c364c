"""Explain a checkpoint's output with a local attribution map:
``python -m sr_lightning.explain ckpt_path=PATH input=IMG window=[y,x,size] output=MAP.png``.

Writes the map (which LR pixels the network used for the output window, :mod:`sr_lightning.lam`)
over the image and prints the diffusion index; the last line is ``diffusion_index=<value>``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sr_lightning.checkpoint import config_trusted_nets
from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.convert.importer import read_model
from sr_lightning.data.io import read_image, write_image
from sr_lightning.errors import UserError
from sr_lightning.lam import Attribution, Window, local_attribution, overlay
from sr_lightning.lit import load_module
from sr_lightning.ops import imresize, rgb_to_ycbcr
from sr_lightning.settings import apply_settings, resolve_settings

log = logging.getLogger(__name__)


def network_input(pixels: np.ndarray, channels: int, scale: int, from_hr: bool) -> torch.Tensor:
    """An image (H, W, C) in [0, 1] as the network's LR input (1, channels, h, w): Y of a colour
    image for a Y network, grey repeated for an RGB one; ``from_hr``: MATLAB-bicubic downscaled
    by ``scale`` first (cropped to a multiple of it, as the benchmarks do)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float()[None]
    if from_hr:
        h, w = (x.shape[-2] // scale) * scale, (x.shape[-1] // scale) * scale
        x = imresize(x[..., :h, :w], 1 / scale).clamp(0, 1)
    if channels == 1 and x.shape[1] == 3:
        x = rgb_to_ycbcr(x)[:, :1]
    elif channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


def explain(cfg: DictConfig) -> tuple[Attribution, Path]:
    """Compute the map ``cfg`` asks for and write its overlay; returns it and the file written."""
    window = Window.parse(OmegaConf.to_container(cfg.window) if OmegaConf.is_config(cfg.window) else cfg.window)
    src, dst = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    if not src.is_file():
        raise FileNotFoundError(f"input='{src}' does not exist; give an image file")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"output='{dst}': folder '{dst.parent}' does not exist")
    if not isinstance(cfg.from_hr, bool):
        raise UserError(f"from_hr={cfg.from_hr!r} must be true or false")
    ckpt = read_model(cfg.ckpt_path, "ckpt_path", config_trusted_nets(cfg), cfg.get("architecture"))
    settings = apply_settings(resolve_settings({"channels_last": ckpt.module_arguments["channels_last"]}, cfg.device,
                                               option="device"))
    module = load_module(ckpt, device=settings.device).eval()
    pixels, _, _ = read_image(src)
    lr = network_input(pixels, module.net.in_channels, module.scale, cfg.from_hr).to(module.device)
    attribution = local_attribution(module, lr, window, module.scale, float(cfg.sigma), int(cfg.steps),
                                    int(cfg.batch))
    write_image(dst, overlay(lr[0], attribution.magnitude, window, module.scale), None, 255)
    return attribution, dst


@hydra.main(version_base="1.3", config_path="conf", config_name="explain")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    a, dst = explain(cfg)
    h, w = a.map.shape[-2:]
    print(f"wrote {dst}: attribution over the {w}x{h} LR input of output window {list(cfg.window)}; the map sums "
          f"to {float(a.map.sum()):.4f}, the detector changed by {a.detector_change:.4f} along the path")
    print(f"diffusion_index={a.diffusion_index:.3f}")


def cli() -> None:
    """``python -m sr_lightning.explain`` and the ``sr-explain`` console script."""
    sys.argv = prepare_argv(sys.argv)
    main()


if __name__ == "__main__":
    cli()
