"""The owner of the checkpoint format: the one reader (:func:`read_checkpoint`, a frozen
:class:`Checkpoint`: a checkpoint is data, never code), the schema of what sr_lightning records
in it (:class:`RunMeta`), and the one writer (:func:`save_checkpoint`).

What a checkpoint holds: ``state_dict``; ``hyper_parameters`` (the module's
``save_hyperparameters``: ``net`` with its registry ``name``, ``loss``, ``optimizer``,
``scheduler``, ``evaluation``, ``channels_last``, ``adjustable_clip``, ``compile_net``, and a
subclass's own); ``sr_lightning`` (:class:`RunMeta`, written by ``SRLitModule.on_save_checkpoint``:
the data's ``degradation``, ``trained_scales``, ``source``, the training command's
``overrides`` and ``max_steps``); ``psnr_best``; and, when Lightning's ModelCheckpoint wrote
it, the training state (optimizers, loops) that resuming needs.

What reading a checkpoint does and never does (docs/security.md):

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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import Tensor, nn

from sr_lightning.data.pairs import Degradation
from sr_lightning.errors import UserError
from sr_lightning.files import load_tensors, write_bytes_atomically
from sr_lightning.nets import NETS, SRNet, class_path, file_net_class
from sr_lightning.options import parse_options

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


class NotACheckpointError(UserError):
    """A file torch reads as data but that is no sr_lightning checkpoint (a bare state dict:
    :func:`sr_lightning.convert.read_model` detects its network)."""


@dataclass(frozen=True)
class RunMeta:
    """What sr_lightning records of a network's training, in ``checkpoint["sr_lightning"]``: one
    schema, written by one writer (``SRLitModule.on_save_checkpoint``, for train's checkpoints
    and the importers' alike), read back checked (:meth:`from_data`).

    Attributes:
        degradation: how its evaluation sets' LR were made (the fields of
            :class:`~sr_lightning.data.pairs.Degradation`), which eval adopts; None: unknown.
        trained_scales: the scales a scale-agnostic network was trained for (the released VDSR:
            2, 3, 4); None: its own scale only.
        source: provenance of imported weights (plain data: file, format, hash).
        overrides: the training command's overrides, which resuming from the file alone lists.
        max_steps: the run's planned steps (its budget included), which a resumed run keeps.
    """

    degradation: Mapping[str, Any] | None = None
    trained_scales: tuple[int, ...] | None = None
    source: Any = None
    overrides: tuple[str, ...] | None = None
    max_steps: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples), the unset ones left out: what a checkpoint holds."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else \
                    dict(value) if isinstance(value, Mapping) else value
        return out

    @classmethod
    def from_data(cls, meta: Any, source: str = "checkpoint") -> RunMeta:
        """The metadata a file holds, checked (``source`` names the file in errors).

        Raises:
            CheckpointError: naming the first key that is not what the schema says.
        """
        if not isinstance(meta, Mapping):
            raise CheckpointError(f"{source}: the sr_lightning metadata must be a mapping")
        _check_plain(meta, "sr_lightning", source)
        scales = meta.get("trained_scales")
        if scales is not None and not (isinstance(scales, list | tuple) and all(
                isinstance(s, int) and not isinstance(s, bool) for s in scales)):
            raise CheckpointError(f"{source}: sr_lightning.trained_scales must be a list of integers")
        overrides = meta.get("overrides")
        if overrides is not None and not (isinstance(overrides, list | tuple) and all(
                isinstance(o, str) for o in overrides)):
            raise CheckpointError(f"{source}: sr_lightning.overrides must be a list of strings")
        max_steps = meta.get("max_steps")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)):
            raise CheckpointError(f"{source}: sr_lightning.max_steps must be an integer")
        degradation = meta.get("degradation")
        if degradation is not None:
            if not isinstance(degradation, Mapping):
                raise CheckpointError(f"{source}: sr_lightning.degradation must be a mapping")
            try:
                parse_options(Degradation, degradation, "sr_lightning.degradation")
            except UserError as err:
                text = str(err)
                raise CheckpointError(f"{source}: {'sr_lightning.' + text[5:] if text.startswith('data.') else text}"
                                      ) from None
        return cls(degradation=dict(degradation) if degradation else None,
                   trained_scales=tuple(scales) if scales else None, source=meta.get("source"),
                   overrides=tuple(overrides) if overrides is not None else None, max_steps=max_steps)


@dataclass(frozen=True)
class Checkpoint:
    """An sr_lightning checkpoint, read once and checked (:func:`read_checkpoint`).

    Attributes:
        path: the file.
        net: the network config (``_target_`` of a registered class, ``name``, kwargs), plain data.
        net_class: the class it names (registered, or one the user's config trusts).
        state_dict: the weights (the EMA average where training kept one).
        module_arguments: the ``SRLitModule`` arguments it supplies besides ``net``:
            ``evaluation``, ``channels_last``, ``adjustable_clip`` (never the loss, optimizer
            or scheduler it records).
        meta: what it records of its training (:class:`RunMeta`).
        resumable: it holds the training state (optimizers, loops) ``trainer.fit`` resumes
            from; False for weights only (``sr_lightning.convert``, ``weights_checkpoint``).
        global_step: the optimizer steps it was trained for (0 if it does not say).
        data: the whole file as read, which a resumed fit restores from (:class:`AtomicCheckpointIO`).
    """

    path: Path
    net: Mapping[str, Any]
    net_class: type[SRNet]
    state_dict: Mapping[str, Tensor] = field(repr=False)
    module_arguments: Mapping[str, Any]
    meta: RunMeta
    resumable: bool
    global_step: int
    data: Mapping[str, Any] = field(repr=False)

    def net_config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The network config with ``overrides`` (e.g. another scale: :meth:`rescale`)."""
        return {**self.net, **(overrides or {})}

    def rescale(self, scale: int, key: str, body_only: bool = False) -> dict[str, Any]:
        """Network overrides to run at ``scale`` (``key`` names the option in errors): allowed for
        scale-agnostic networks, within the scales it records it was trained for (e.g. the
        released VDSR: x2, x3, x4); with ``body_only`` (fine-tuning: train's ``init_from``) for
        any network at a scale it supports, its upsampler then starting fresh
        (:func:`load_weights` with ``body_only``).

        Raises:
            UserError: a scale it was not trained for, or a network of one scale.
        """
        own, trained = int(self.net["scale"]), self.meta.trained_scales
        if body_only and scale != own and not self.net_class.scale_agnostic:
            self.net_class.check_scale(scale)
            return {"scale": int(scale)}
        if trained and scale not in trained:
            raise UserError(f"{key}={scale}: this checkpoint was trained for {', '.join(f'x{t}' for t in trained)} "
                            f"only; use one of them")
        if scale == own:
            return {}
        if not self.net_class.scale_agnostic:
            raise UserError(f"{key}={scale} is not supported by this {self.net_class.name} checkpoint: its weights "
                            f"are for x{own} only (drop {key} or use {key}={own})")
        self.net_class.check_scale(scale)
        return {"scale": int(scale)}


def read_checkpoint(path: str | Path, key: str = "ckpt_path", trusted_nets: Collection[str] = ()) -> Checkpoint:
    """Read an sr_lightning checkpoint as data and check what sr_lightning will use of it
    (the module docstring); the one reader of every command and of the Python API.

    Args:
        path: the file.
        key: the option it came from (``ckpt_path``, ``init_from``), named in errors.
        trusted_nets: network ``_target_`` paths the user's own config names (imported if
            the checkpoint names one of them); registered networks need not be listed.

    Raises:
        FileNotFoundError: the path does not exist.
        UserError: not a checkpoint torch can read without unpickling code, or not an
            sr_lightning one; :class:`CheckpointError` for a part it will not use.
    """
    path = Path(path).expanduser()
    return checkpoint_of(load_tensors(path, key, EXPECTED), path, key, trusted_nets)


def checkpoint_of(data: Any, path: Path, key: str = "ckpt_path", trusted_nets: Collection[str] = ()) -> Checkpoint:
    """:func:`read_checkpoint`'s checks on what a file held (``path`` and ``key`` name it in errors).

    Raises:
        NotACheckpointError: no sr_lightning network config in it (a bare state dict).
        CheckpointError: a part it will not use (the message names the key).
    """
    hparams = data.get("hyper_parameters") if isinstance(data, dict) else None
    if not isinstance(hparams, dict) or "net" not in hparams or "state_dict" not in data:
        raise NotACheckpointError(f"{key}='{path}' is a file torch can read but not an sr_lightning checkpoint "
                                  f"(no network config in its hyper_parameters)")
    source = f"{key}='{path}'"
    net, cls = _check_net(data, source, trusted_nets)
    for name in USED_HPARAMS[1:]:
        _check_plain(hparams.get(name), f"hyper_parameters.{name}", source)
    if hparams.get("evaluation") is not None and not isinstance(hparams["evaluation"], Mapping):
        raise CheckpointError(f"{source}: hyper_parameters.evaluation must be a mapping")
    if not isinstance(hparams.get("channels_last", False), bool):
        raise CheckpointError(f"{source}: hyper_parameters.channels_last must be true or false")
    clip = hparams.get("adjustable_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)):
        raise CheckpointError(f"{source}: hyper_parameters.adjustable_clip must be a number or null")
    meta = RunMeta.from_data(data.get("sr_lightning", {}), source)
    step = data.get("global_step", 0)
    return Checkpoint(
        path=path, net=net, net_class=cls, state_dict=data["state_dict"],
        module_arguments={"evaluation": hparams.get("evaluation"), "channels_last": hparams.get("channels_last", False),
                          "adjustable_clip": clip},
        meta=meta, resumable="optimizer_states" in data and "loops" in data,
        global_step=step if isinstance(step, int) and not isinstance(step, bool) else 0, data=data)


def _check_net(data: dict[str, Any], source: str, trusted_nets: Collection[str]) -> tuple[dict[str, Any], type[SRNet]]:
    """The checked weights and network config of a checkpoint, and the class it names (a
    registered network found by its name when the module it was saved from has moved)."""
    state = data.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                 for k, v in state.items()):
        raise CheckpointError(f"{source}: state_dict must map parameter names to tensors")
    net = data["hyper_parameters"]["net"]
    if not isinstance(net, Mapping):
        raise CheckpointError(f"{source}: hyper_parameters.net must be a mapping, not {type(net).__name__}")
    try:
        cls = file_net_class(net, trusted_nets)
    except ValueError as err:
        raise CheckpointError(f"{source}: hyper_parameters.net {err}") from None
    _check_plain({k: v for k, v in net.items() if k != "_target_"}, "hyper_parameters.net", source)
    if NETS.get(cls.name) is cls:
        net = {**net, "_target_": class_path(cls)}
    return dict(net), cls


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


def data_for(checkpoint: Checkpoint, data: Mapping[str, Any], given: Collection[str], body_only: bool = False
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run's ``data`` config becomes to fit a checkpoint's network, and the network
    overrides; neither config is changed.

    The checkpoint's scale and channels are adopted unless ``data.scale`` / ``data.channels``
    are among ``given`` (the keys set on the command line): another scale is allowed for
    scale-agnostic networks within the scales the checkpoint was trained for
    (:meth:`Checkpoint.rescale`; ``body_only``: any supported scale, fine-tuning the body);
    other channels never. The degradation it was trained with
    (when it records it: how the evaluation sets' LR are made) is adopted unless
    ``data/degradation`` or ``data.degradation.*`` was given; a ``realesrgan`` training
    degradation of ``data`` is kept.

    Returns:
        ``(updates, net_overrides)``: dotted keys under ``data`` (``data.scale``, ...) and their
        values; the network kwargs to change.

    Raises:
        UserError: a scale or channels the checkpoint's network cannot take.
    """
    own_scale, own_channels = int(checkpoint.net["scale"]), int(checkpoint.net["in_channels"])
    overrides = checkpoint.rescale(int(data["scale"]), "data.scale", body_only) if "data.scale" in given else {}
    if "data.channels" in given and int(data["channels"]) != own_channels:
        raise UserError(f"data.channels={data['channels']} does not match the checkpoint's network "
                        f"({own_channels} channel(s)); drop data.channels")
    updates: dict[str, Any] = {"data.scale": overrides.get("scale", own_scale), "data.channels": own_channels}
    degradation = checkpoint.meta.degradation
    if degradation and not any(k.startswith(("data.degradation", "data/degradation")) for k in given):
        online = (data.get("degradation") or {}).get("realesrgan")  # the config's training degradation stays
        updates["data.degradation"] = {**dict(degradation), **({"realesrgan": online} if online is not None else {})}
    return updates, overrides


def check_values(state: Mapping[str, Tensor], source: str, own: Mapping[str, Tensor] | None = None) -> None:
    """Weights a network can use: floating point where the network's are (integer counters,
    BatchNorm's ``num_batches_tracked``, stay integers; without ``own``: the keys so named) and
    finite.

    Raises:
        UserError: naming ``source`` and the first tensor that is not.
    """
    for key, value in state.items():
        floating = own[key].is_floating_point() if own is not None and key in own \
            else not key.endswith("num_batches_tracked")
        if floating and not value.is_floating_point():
            raise UserError(f"{source}: {key} holds {str(value.dtype).removeprefix('torch.')} values where the network "
                            f"has floating-point weights; the file is damaged or holds something else")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"{source}: {key} holds NaN or infinite values (a diverged training or a damaged file); "
                            f"use another checkpoint")


def load_weights(module: nn.Module, state_dict: Mapping[str, Tensor], body_only: bool = False) -> list[str]:
    """Load a checkpoint's weights into ``module``; the GAN-only parts (:data:`GAN_PARTS`)
    may be absent on either side. Anything else must match; with ``body_only`` (the network at
    another scale than the weights'), the tensors whose key or shape differ (the upsampler's)
    keep the module's fresh initialisation.

    Returns:
        The module's keys left fresh (empty unless ``body_only``).

    Raises:
        ValueError: keys differ (another architecture), shapes differ, or a value is not a
            finite floating-point weight (:func:`check_values`).
    """
    own = module.state_dict()
    state_dict = {k: v for k, v in state_dict.items() if k != "psnr_best"}  # bookkeeping of older checkpoints
    if body_only:
        fresh = sorted(k for k in own if not k.startswith(GAN_PARTS)
                       and (k not in state_dict or state_dict[k].shape != own[k].shape))
        kept = {k: v for k, v in state_dict.items() if k in own and v.shape == own[k].shape}
        check_values(kept, "the checkpoint", own)
        module.load_state_dict(kept, strict=False)
        return fresh
    bad = [k for k in set(own) ^ set(state_dict) if not k.startswith(GAN_PARTS)]
    if bad:
        raise UserError(f"the checkpoint's weights do not fit this network ({len(bad)} key(s) differ, e.g. "
                         f"{', '.join(sorted(bad)[:3])}); was it written for another architecture?")
    resized = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
               if k in own and v.shape != own[k].shape]
    if resized:
        raise UserError(f"the checkpoint's weights do not fit this network's shapes ({len(resized)} tensor(s), "
                         f"e.g. {resized[0]}): the network config differs from the one it was trained with")
    check_values(state_dict, "the checkpoint", own)
    module.load_state_dict(dict(state_dict), strict=False)
    return []


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
    """Lightning's checkpoint IO with :func:`save_checkpoint` as the writer, and the reader of a
    checkpoint already read (``preloaded``: a resumed run restores from the :class:`Checkpoint`
    train read and checked, so the file is read once).

    Lightning's own writer writes to a temporary file in ``$TMPDIR`` and moves it: across file
    systems (tmpfs ``/tmp``, runs on NFS) the move copies over the old file in place, and a
    kill during it leaves a truncated ``last.ckpt``. Local paths only (a URL is refused).
    """

    def __init__(self, preloaded: Checkpoint | None = None) -> None:
        super().__init__()
        self._preloaded = preloaded

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        """The preloaded checkpoint's data for its own path (once), else the file, read as data."""
        preloaded, self._preloaded = self._preloaded, None
        if preloaded is not None and Path(path).expanduser().resolve() == preloaded.path.resolve():
            return dict(preloaded.data)
        return load_tensors(path, "checkpoint", EXPECTED)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` with :func:`save_checkpoint`."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if "://" in str(path):
            raise UserError(f"checkpoint path '{path}' is a URL: sr_lightning writes checkpoints to local "
                             f"(or mounted) folders; set paths.output_dir to one")
        save_checkpoint(checkpoint, path)
