"""Export a checkpoint's network for deployment:
``python -m sr_lightning.export ckpt_path=PATH format=onnx|torchscript output=FILE``.

The network is exported as it runs in evaluation (SPAN's branches folded), with dynamic
height and width, input ``lr`` (1, C, h, w) in [0, 1] and output ``sr`` (1, C, s*h, s*w).
The exported file is checked before it is kept: run at a size other than the one traced,
it must give PyTorch's output (max difference under ``tolerance``); a network whose graph
only runs at the traced size is refused with the failing op named. ``size=[h,w]`` exports
at one LR size instead (networks whose forward computes with the input's size in Python:
the pre-upsampling ones' MATLAB bicubic, the transformers' window padding); ``upscale
backend=onnx`` then mirror-pads each tile to it. The ONNX file carries the network's name,
scale and channels as metadata (``sr_lightning.*``), which ``backend=onnx`` checks.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sr_lightning.checkpoint import config_trusted_nets
from sr_lightning.cli import prepare_argv, user_errors
from sr_lightning.convert.importer import read_model
from sr_lightning.inference.export import CHECK_SIZE, export
from sr_lightning.lit import load_module


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@user_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    module = load_module(read_model(cfg.ckpt_path, "ckpt_path", config_trusted_nets(cfg), cfg.get("architecture")))
    size = cfg.get("size")
    size = list(size) if size is not None else None
    diff = export(module.net, module.net.in_channels, str(cfg.format), cfg.output, float(cfg.tolerance), size)
    shape = "dynamic height and width" if size is None else f"LR input {size[0]}x{size[1]}"
    at = CHECK_SIZE if size is None else size
    print(f"wrote {cfg.output} ({cfg.format}, {module.net.name} x{module.scale}, {module.net.in_channels} channel(s), "
          f"{shape}); at {at[0]}x{at[1]} it matches PyTorch to {diff:.1e}")


def cli() -> None:
    """``python -m sr_lightning.export`` and the ``sr-export`` console script."""
    sys.argv = prepare_argv(sys.argv)
    main()


if __name__ == "__main__":
    cli()
