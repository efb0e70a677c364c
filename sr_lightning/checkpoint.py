"""The owner of the checkpoint format: the one reader (a checkpoint is data, never code) and
the writer of weights-only checkpoints.

What a checkpoint holds: ``state_dict``; ``hyper_parameters`` (the module's
``save_hyperparameters``: ``net`` with its registry ``name``, ``loss``, ``optimizer``,
``scheduler``, ``evaluation``, ``channels_last``, ``adjustable_clip``, ``compile_net``, and a
subclass's own); ``sr_lightning`` (the module's ``checkpoint_meta``: the data's
``degradation``, ``trained_scales``, ``source``, the training command's ``overrides`` and
``max_steps``); and, when Lightning's ModelCheckpoint wrote it,
the training state (optimizers, loops) that resuming needs.

What reading a checkpoint does and never does (the README's "Security" section):

* the file is read with ``torch.load(weights_only=True)``: tensors and plain containers,
  nothing is unpickled;
* its network is looked up in the registry by the ``_target_`` (or ``name``) it records;
  a class that is not registered is accepted only when the user's own config names it
  (``trusted_nets``); nothing the file names is imported;
* every other part sr_lightning uses (the evaluation protocol, ``channels_last``,
  ``adjustable_clip``, and the ``sr_lightning`` metadata: the data pipeline it was trained
  with, its trained scales) must be plain data, with no Hydra keys (``_target_``,
  ``_partial_``, ...) and no ``${...}`` interpolations, and is checked against its schema;
* the loss, optimizer and scheduler configs it records are never read: a module rebuilt
  from a checkpoint has none (eval, upscale) or the ones of the user's command (train).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import open_dict
from torch import Tensor, nn

from sr_lightning.data.pairs import Degradation
from sr_lightning.errors import UserError
from sr_lightning.files import load_tensors, write_bytes_atomically
from sr_lightning.nets import NETS, class_path, file_net_class

# State-dict prefixes of the parts only adversarial training has (discriminator, feature
# network): either side may lack them (a GAN checkpoint evaluated as a plain network, a
# PSNR-trained generator starting a GAN run).
GAN_PARTS = ("discriminator.", "perceptual.")
# Keys that would make Hydra build or call something if the data reached instantiate().
HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
# The hyper_parameters sr_lightning reads back; everything else in the file is ignored.
USED_HPARAMS = ("net", "evaluation", "channels_last", "adjustable_clip")
EXPECTED = ("a .ckpt written by sr_lightning.train or sr_lightning.convert "
            "(e.g. logs/train/runs/<date>/checkpoints/last.ckpt)")


class CheckpointError(UserError):
    """A checkpoint holds something sr_lightning will not use; the message names the key."""


def read_checkpoint(path: str | Path, key: str = "ckpt_path", trusted_nets: Collection[str] = ()) -> dict[str, Any]:
    """Read an sr_lightning checkpoint as data and check what sr_lightning will use of it.

    Args:
        path: the file.
        key: the option it came from (``ckpt_path``, ``init_from``), named in errors.
        trusted_nets: network ``_target_`` paths the user's own config names (imported if
            the checkpoint names one of them); registered networks need not be listed.

    Returns:
        The checkpoint dict (``state_dict``, ``hyper_parameters``, ``sr_lightning``, and
        Lightning's training state for a resumable one).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a checkpoint torch can read without unpickling code, or not an
            sr_lightning one; :class:`CheckpointError` for a part it will not use.
    """
    path = Path(path).expanduser()
    ckpt = load_tensors(path, key, EXPECTED)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "net" not in hparams or "state_dict" not in ckpt:
        raise UserError(f"{key}='{path}' is a file torch can read but not an sr_lightning checkpoint "
                         f"(no network config in its hyper_parameters)")
    check_checkpoint(ckpt, f"{key}='{path}'", trusted_nets)
    return ckpt


def check_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint", trusted_nets: Collection[str] = ()) -> None:
    """Check the parts of a checkpoint dict that sr_lightning uses (see the module docstring).

    Args:
        ckpt: what :func:`torch.load` returned.
        source: how errors name the file (``ckpt_path='...'``).
        trusted_nets: as for :func:`read_checkpoint`.

    Raises:
        CheckpointError: naming the first offending key.
    """
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                 for k, v in state.items()):
        raise CheckpointError(f"{source}: state_dict must map parameter names to tensors")
    hp = ckpt["hyper_parameters"]
    net = hp["net"]
    if not isinstance(net, Mapping):
        raise CheckpointError(f"{source}: hyper_parameters.net must be a mapping, not {type(net).__name__}")
    try:
        cls = file_net_class(net, trusted_nets)
    except ValueError as err:
        raise CheckpointError(f"{source}: hyper_parameters.net {err}") from None
    if NETS.get(cls.name) is cls and net.get("_target_") not in (None, class_path(cls)):
        # A registered network found by its name: the module it was saved from has moved.
        hp["net"] = net = {**net, "_target_": class_path(cls)}
    _check_plain({k: v for k, v in net.items() if k != "_target_"}, "hyper_parameters.net", source)
    for name in USED_HPARAMS[1:]:
        _check_plain(hp.get(name), f"hyper_parameters.{name}", source)
    if hp.get("evaluation") is not None and not isinstance(hp["evaluation"], Mapping):
        raise CheckpointError(f"{source}: hyper_parameters.evaluation must be a mapping")
    if not isinstance(hp.get("channels_last", False), bool):
        raise CheckpointError(f"{source}: hyper_parameters.channels_last must be true or false")
    clip = hp.get("adjustable_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)):
        raise CheckpointError(f"{source}: hyper_parameters.adjustable_clip must be a number or null")
    _check_meta(ckpt.get("sr_lightning", {}), source)


def _check_meta(meta: Any, source: str) -> None:
    """The ``sr_lightning`` metadata: ``trained_scales`` (ints), ``degradation`` (a :class:`Degradation`),
    ``source`` (provenance, plain data), ``overrides`` (the training command's, strings: what
    resuming replays), ``max_steps`` (the run's planned steps, budget included)."""
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{source}: the sr_lightning metadata must be a mapping")
    _check_plain(meta, "sr_lightning", source)
    scales = meta.get("trained_scales")
    if scales is not None and not (isinstance(scales, list | tuple) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in scales)):
        raise CheckpointError(f"{source}: sr_lightning.trained_scales must be a list of integers")
    overrides = meta.get("overrides")
    if overrides is not None and not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise CheckpointError(f"{source}: sr_lightning.overrides must be a list of strings")
    max_steps = meta.get("max_steps")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)):
        raise CheckpointError(f"{source}: sr_lightning.max_steps must be an integer")
    degradation = meta.get("degradation")
    if degradation is None:
        return
    known = {f.name for f in fields(Degradation)}
    if not isinstance(degradation, Mapping) or set(degradation) - known:
        raise CheckpointError(f"{source}: sr_lightning.degradation must hold only {sorted(known)}")
    if not isinstance(degradation.get("antialias", True), bool):
        raise CheckpointError(f"{source}: sr_lightning.degradation.antialias must be true or false")
    try:
        Degradation(**degradation)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: sr_lightning.{str(err).removeprefix('data.')}") from None


def _check_plain(value: Any, where: str, source: str) -> None:
    """``value`` is None, a bool, number or string (no ``${...}``), or lists/mappings of them
    whose keys are strings and not Hydra keys."""
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if "${" in value:
            raise CheckpointError(f"{source}: {where}={value!r} is an interpolation; a checkpoint holds only "
                                  f"resolved values")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", source)
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{source}: {where} has a key that is not a string ({k!r})")
            if k in HYDRA_KEYS:
                raise CheckpointError(f"{source}: {where}.{k} is refused: loading a checkpoint never builds or "
                                      f"calls what a file names")
            _check_plain(item, f"{where}.{k}", source)
        return
    raise CheckpointError(f"{source}: {where} holds a {type(value).__name__}; only numbers, strings, lists and "
                          f"mappings are read")


def config_trusted_nets(cfg: Any) -> list[str]:
    """The network classes the user's own config names, which a checkpoint may name too:
    the ``trusted_nets`` option and the ``_target_`` of ``model`` (when the config has one)."""
    trusted = [str(t) for t in (cfg.get("trusted_nets") or [])]
    model = cfg.get("model")
    if model is not None and model.get("_target_"):
        trusted.append(str(model["_target_"]))
    return trusted


def is_resumable(ckpt: Mapping[str, Any]) -> bool:
    """True for a checkpoint with training state (optimizer, loops) that ``trainer.fit`` can
    resume; False for weights only (e.g. written by ``sr_lightning.convert``)."""
    return "optimizer_states" in ckpt and "loops" in ckpt


def net_config(ckpt: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint's network config (a checked one: see :func:`check_checkpoint`) with ``overrides``."""
    return {**ckpt["hyper_parameters"]["net"], **(overrides or {})}


def module_arguments(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SRLitModule`` arguments a checked checkpoint supplies: ``net``, ``evaluation``,
    ``channels_last``, ``adjustable_clip``. Never the loss, optimizer or scheduler."""
    hp = ckpt["hyper_parameters"]
    return {"net": net_config(ckpt), "evaluation": hp.get("evaluation"),
            "channels_last": hp.get("channels_last", False), "adjustable_clip": hp.get("adjustable_clip")}


def rescale_overrides(ckpt: Mapping[str, Any], scale: int, key: str,
                      trusted_nets: Collection[str] = ()) -> dict[str, Any]:
    """Network overrides to run a checked checkpoint at ``scale`` (``key`` names the option
    in errors; ``trusted_nets`` as for :func:`read_checkpoint`).

    Allowed for scale-agnostic networks, within the scales the checkpoint records it was
    trained for (e.g. the released VDSR: x2, x3, x4).
    """
    net_cfg = ckpt["hyper_parameters"]["net"]
    net_cls, ckpt_scale = file_net_class(net_cfg, trusted_nets), int(net_cfg["scale"])
    trained = ckpt.get("sr_lightning", {}).get("trained_scales")
    if trained and scale not in trained:
        raise UserError(f"{key}={scale}: this checkpoint was trained for {', '.join(f'x{t}' for t in trained)} "
                         f"only; use one of them")
    if scale == ckpt_scale:
        return {}
    if not net_cls.scale_agnostic:
        raise UserError(f"{key}={scale} is not supported by this {net_cls.name} checkpoint: its weights are for "
                         f"x{ckpt_scale} only (drop {key} or use {key}={ckpt_scale})")
    net_cls.check_scale(scale)
    return {"scale": int(scale)}


def adopt_checkpoint_net(cfg: Any, ckpt: Mapping[str, Any], given: Collection[str],
                         trusted_nets: Collection[str] = ()) -> dict[str, Any]:
    """Make ``cfg.data`` (a DictConfig) fit a checked checkpoint's network; returns the
    network overrides (``trusted_nets`` as for :func:`read_checkpoint`).

    The checkpoint's scale and channels are adopted unless ``data.scale`` /
    ``data.channels`` are among ``given`` (the keys set on the command line): another scale
    is allowed for scale-agnostic networks within the scales the checkpoint was trained
    for (when it records them); other channels never. The degradation it was trained with
    (when it records it: how the evaluation sets' LR are made) is adopted unless
    ``data/degradation`` or ``data.degradation.*`` was given; a ``realesrgan`` training
    degradation of ``cfg`` is kept.
    """
    net_cfg = ckpt["hyper_parameters"]["net"]
    ckpt_scale, ckpt_channels = int(net_cfg["scale"]), int(net_cfg["in_channels"])
    overrides = rescale_overrides(ckpt, int(cfg.data.scale), "data.scale", trusted_nets) \
        if "data.scale" in given else {}
    if "data.channels" in given and int(cfg.data.channels) != ckpt_channels:
        raise UserError(f"data.channels={cfg.data.channels} does not match the checkpoint's network "
                         f"({ckpt_channels} channel(s)); drop data.channels")
    degradation = ckpt.get("sr_lightning", {}).get("degradation")
    with open_dict(cfg):
        cfg.data.scale = overrides.get("scale", ckpt_scale)
        cfg.data.channels = ckpt_channels
        if degradation and not any(k.startswith(("data.degradation", "data/degradation")) for k in given):
            online = cfg.data.degradation.get("realesrgan")  # the config's training degradation stays
            cfg.data.degradation = {**dict(degradation), **({"realesrgan": online} if online is not None else {})}
    return overrides


def load_weights(module: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load a checkpoint's weights into ``module``; the GAN-only parts (:data:`GAN_PARTS`)
    may be absent on either side. Anything else must match.

    Raises:
        ValueError: keys differ (another architecture) or shapes differ.
    """
    own = module.state_dict()
    state_dict = {k: v for k, v in state_dict.items() if k != "psnr_best"}  # bookkeeping of older checkpoints
    bad = [k for k in set(own) ^ set(state_dict) if not k.startswith(GAN_PARTS)]
    if bad:
        raise UserError(f"the checkpoint's weights do not fit this network ({len(bad)} key(s) differ, e.g. "
                         f"{', '.join(sorted(bad)[:3])}); was it written for another architecture?")
    resized = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
               if k in own and v.shape != own[k].shape]
    if resized:
        raise UserError(f"the checkpoint's weights do not fit this network's shapes ({len(resized)} tensor(s), "
                         f"e.g. {resized[0]}): the network config differs from the one it was trained with")
    module.load_state_dict(dict(state_dict), strict=False)


def weights_checkpoint(module: lightning.LightningModule) -> dict[str, Any]:
    """A weights-only checkpoint of ``module`` (an ``SRLitModule``): what Lightning's
    ModelCheckpoint writes without the training state (its ``hyper_parameters`` and
    ``on_save_checkpoint`` metadata), loadable with ``weights_only=True``."""
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__}
    module.on_save_checkpoint(ckpt)
    return ckpt


def save_checkpoint(ckpt: Mapping[str, Any], path: str | Path) -> Path:
    """The one checkpoint writer (train's last/best/interrupt checkpoints through
    :class:`AtomicCheckpointIO`, convert, export): serialised in memory, then written
    atomically beside its destination (:func:`~sr_lightning.files.write_atomically`: the
    previous file stays whole until the new one is, and no partial file is left); parent
    folders are created. Returns the path.

    Raises:
        DiskFullError: no room for it (the message names the file, its size and the space free).
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(dict(ckpt), buffer)
    return write_bytes_atomically(path, buffer.getbuffer())


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with :func:`save_checkpoint` as the writer.

    Lightning's own writes to a temporary file in ``$TMPDIR`` and moves it: across file
    systems (tmpfs ``/tmp``, runs on NFS) the move copies over the old file in place, and a
    kill during it leaves a truncated ``last.ckpt``. Local paths only (a URL is refused).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` with :func:`save_checkpoint`."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if "://" in str(path):
            raise UserError(f"checkpoint path '{path}' is a URL: sr_lightning writes checkpoints to local "
                             f"(or mounted) folders; set paths.output_dir to one")
        save_checkpoint(checkpoint, path)
