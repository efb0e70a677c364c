"""Upscale images with a trained checkpoint:
``python -m sr_lightning.upscale ckpt_path=PATH input=IMG output=OUT.png`` (or folders).

Any image Pillow reads works (RGB, L, RGBA, P, 16-bit); the work is
:mod:`sr_lightning.inference` (channels bridged, tiled, written atomically, nothing
overwritten unless ``overwrite=true``).
``backend=onnx ckpt_path=FILE.onnx`` runs a network exported by ``python -m
sr_lightning.export`` with onnxruntime instead, tiled the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sr_lightning.checkpoint import config_trusted_nets
from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.data.io import MAX_IMAGE_PIXELS, check_max_pixels
from sr_lightning.errors import UserError
from sr_lightning.inference import load_upscaler, output_pairs, upscale_files


def upscale(cfg: DictConfig) -> list[Path]:
    """Upscale ``cfg.input`` (a file or a folder) into ``cfg.output``; returns the files written."""
    src, dst = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"input='{src}' does not exist; give an image file or a folder of images")
    for flag in ("self_ensemble", "overwrite"):
        if not isinstance(cfg.get(flag, False), bool):
            raise UserError(f"{flag}={cfg.get(flag)!r} must be true or false")
    net = load_upscaler(cfg.ckpt_path, cfg.get("backend", "pytorch"), cfg.get("device", "auto"), cfg.get("scale"),
                        cfg.get("self_ensemble", False), config_trusted_nets(cfg), cfg.get("architecture"))
    max_pixels = check_max_pixels(cfg.get("max_image_pixels", MAX_IMAGE_PIXELS), "max_image_pixels")
    pairs = output_pairs(src, dst, cfg.get("overwrite", False))
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    return upscale_files(net, pairs, cfg.get("tile"), cfg.get("tile_overlap", 48), cfg.get("progress"), max_pixels)


@hydra.main(version_base="1.3", config_path="conf", config_name="upscale")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    written = upscale(cfg)
    print(f"wrote {len(written)} image(s): {written[0] if len(written) == 1 else written[0].parent}")


def cli() -> None:
    """``python -m sr_lightning.upscale`` and the ``sr-upscale`` console script."""
    sys.argv = prepare_argv(sys.argv)  # numeric choices quoted; plugins present
    main()


if __name__ == "__main__":
    cli()
