"""What a model file holds: ``python -m sr_lightning.inspect FILE`` (console script ``sr-inspect``).

For an sr_lightning checkpoint or a bare state dict (a release or a community ``.pth`` /
``.safetensors``, its network detected from the key names and shapes): the architecture and
its arguments, the model config it is closest to, scale, channels, parameters, the input
range, and the command that trains the same network from scratch. Nothing in the file is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sr_lightning.checkpoint import Checkpoint
from sr_lightning.cli import USER_ERRORS
from sr_lightning.config import CONF_DIR, compose_config
from sr_lightning.convert.importer import read_model
from sr_lightning.lit import load_module
from sr_lightning.nets import class_path


def model_configs(target: str) -> dict[str, dict[str, Any]]:
    """The model configs (``conf/model/<name>.yaml``, variants included) that build ``target``,
    composed and resolved at their defaults."""
    found = {}
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        text = path.read_text()
        parents = [str(p) for p in OmegaConf.load(path).get("defaults", []) if isinstance(p, str)]
        if target in text or any(target in (CONF_DIR / "model" / f"{p}.yaml").read_text() for p in parents
                                 if (CONF_DIR / "model" / f"{p}.yaml").is_file()):
            found[path.stem] = OmegaConf.to_container(compose_config("train", [f"model={path.stem}"]).model,
                                                      resolve=True)
    return found


def closest_config(checkpoint: Checkpoint) -> tuple[str, list[str]]:
    """The model config the file's network differs least from, and the overrides it needs
    (``model.num_blocks=6``; scale and channels are the data's)."""
    net = {k: v for k, v in checkpoint.net.items() if k not in ("_target_", "name", "scale", "in_channels")}
    best, best_diff = "", None
    for name, cfg in model_configs(class_path(checkpoint.net_class)).items():
        diff = [f"model.{k}={_value(v)}" for k, v in net.items() if _plain(cfg.get(k)) != _plain(v)]
        if best_diff is None or len(diff) < len(best_diff):
            best, best_diff = name, diff
    return best, best_diff or []


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _value(value: Any) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list | tuple) else str(value)


def describe(path: str | Path, architecture: str | None = None, scale: int | None = None) -> list[str]:
    """The lines ``sr-inspect`` prints for ``path`` (``architecture``: the network of a bare
    file several fit; ``scale``: that of a bare file whose weights do not hold it)."""
    ckpt = read_model(path, "FILE", (), architecture, scale)
    module = load_module(ckpt)
    cls, net = ckpt.net_class, ckpt.net
    source = ckpt.meta.source if isinstance(ckpt.meta.source, dict) else {}
    bare = source.get("file") == Path(path).name and source.get("format") == "pth" and Path(path).suffix != ".ckpt"
    kind = f"a bare state dict ({source.get('layout')} layout), network detected" if bare \
        else "an sr_lightning checkpoint"
    args = ", ".join(f"{k}={_value(v)}" for k, v in net.items() if k not in ("_target_", "name"))
    config, overrides = closest_config(ckpt)
    scale = f"x{net['scale']}" + (" (any: the weights refine a bicubic upscale)" if cls.scale_agnostic else "")
    if ckpt.meta.trained_scales:
        scale += f", trained for {', '.join(f'x{s}' for s in ckpt.meta.trained_scales)}"
    channels = int(net["in_channels"])
    return [
        f"file: {path} ({kind})",
        f"architecture: {cls.name} ({cls.__name__}, {cls.paper})",
        f"arguments: {args}",
        f"model config: {config}" + (f" with {' '.join(overrides)}" if overrides else " (its defaults)"),
        f"scale: {scale}",
        f"channels: {channels} ({'Y of BT.601' if channels == 1 else 'RGB'})",
        f"parameters: {module.net.deployed_parameter_count():,}",
        "input: float in [0, 1], N x C x H x W (any size)" if cls.fixed_input_size is None else
        f"input: float in [0, 1], N x C x {cls.fixed_input_size[0]} x {cls.fixed_input_size[1]} only",
        f"train it from scratch: python -m sr_lightning.train model={config} {' '.join(overrides)} "
        f"data.scale={net['scale']} data.channels={channels}".replace("  ", " "),
        f"fine-tune it: python -m sr_lightning.train init_from={path}",
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m sr_lightning.inspect FILE``: prints what the file holds; exit 2 with one line
    for a file that is not a model sr_lightning knows."""
    parser = argparse.ArgumentParser(prog="sr-inspect", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a .ckpt, .pth, .pt or .safetensors file")
    parser.add_argument("--architecture", help="the network, when several fit a bare weights file")
    parser.add_argument("--scale", type=int, help="the scale of a bare file whose weights do not hold it (FSRCNN)")
    args = parser.parse_args(argv)
    try:
        lines = describe(args.file, args.architecture, args.scale)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
