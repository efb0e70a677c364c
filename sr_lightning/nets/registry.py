"""The network registry: a stable name per network, and building a network from its config.

A name (``vdsr``) is a network's identity (timm's rule); configs name the class with
``_target_`` (``sr_lightning.nets.vdsr.VDSR``) or the name (``{"name": "vdsr"}``).
A config the user wrote may name any :class:`SRNet` subclass (it is imported, as Hydra
would); a config read from a file may name only a registered class or one the user's
own config names (:func:`file_net_class`): loading a checkpoint imports nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from hydra.utils import get_class

from sr_lightning.errors import UserError
from sr_lightning.nets.atd import ATD
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.bicubic import Bicubic
from sr_lightning.nets.carn import CARN
from sr_lightning.nets.craft import CRAFT
from sr_lightning.nets.dat import DAT
from sr_lightning.nets.dbpn import DBPN
from sr_lightning.nets.ditn import DITN
from sr_lightning.nets.drct import DRCT
from sr_lightning.nets.drrn import DRRN
from sr_lightning.nets.ecbsr import ECBSR
from sr_lightning.nets.edsr import EDSR
from sr_lightning.nets.espcn import ESPCN
from sr_lightning.nets.fsrcnn import FSRCNN
from sr_lightning.nets.hat import HAT
from sr_lightning.nets.imdn import IMDN
from sr_lightning.nets.lapsrn import LapSRN
from sr_lightning.nets.memnet import MemNet
from sr_lightning.nets.omnisr import OmniSR
from sr_lightning.nets.plksr import PLKSR, RealPLKSR
from sr_lightning.nets.rcan import RCAN
from sr_lightning.nets.rdn import RDN
from sr_lightning.nets.rednet import REDNet
from sr_lightning.nets.rfdn import RFDN
from sr_lightning.nets.rgt import RGT
from sr_lightning.nets.rlfn import RLFN
from sr_lightning.nets.rrdbnet import RRDBNet
from sr_lightning.nets.safmn import SAFMN
from sr_lightning.nets.span import SPAN
from sr_lightning.nets.srcnn import SRCNN
from sr_lightning.nets.srformer import SRFormer
from sr_lightning.nets.srresnet import SRResNet
from sr_lightning.nets.srvgg import SRVGGNetCompact
from sr_lightning.nets.swin2sr import Swin2SR
from sr_lightning.nets.swinir import SwinIR
from sr_lightning.nets.unet import UNet
from sr_lightning.nets.vdsr import VDSR
from sr_lightning.nets.wdsr import WDSR

NETS: dict[str, type[SRNet]] = {
    cls.name: cls for cls in (Bicubic, SRCNN, VDSR, UNet, FSRCNN, ESPCN, EDSR, SRResNet, REDNet, WDSR, IMDN,
                              RCAN, RRDBNet, SwinIR, HAT, MemNet, SAFMN, SPAN,
                              # the community's architectures (issue 31): files people have, detected and trainable
                              SRVGGNetCompact, Swin2SR, PLKSR, RealPLKSR, DRCT, SRFormer, DAT, OmniSR, RGT, ATD, CRAFT,
                              DITN,
                              # the comparison tables' classic and efficient networks (issue 32)
                              RLFN, LapSRN, RFDN, CARN, DRRN, ECBSR, RDN, DBPN)
}


def list_nets() -> list[str]:
    """Names of the registered networks, sorted."""
    return sorted(NETS)


def get_net_class(name: str) -> type[SRNet]:
    """The class registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return NETS[name]
    except KeyError:
        raise UserError(f"unknown network {name!r}; known networks: {', '.join(list_nets())}") from None


def create_net(name: str, **kwargs: Any) -> SRNet:
    """Instantiate the network registered as ``name`` with ``kwargs`` (scale, in_channels, ...)."""
    return get_net_class(name)(**kwargs)


def register_net(cls: type[SRNet]) -> type[SRNet]:
    """Register a network of your own (usable as a class decorator), so that its checkpoints
    load through ``SRLitModule.load_from_checkpoint`` and the entry points.

    Raises:
        TypeError: ``cls`` is not an :class:`SRNet` subclass with a ``name``.
        ValueError: another class is registered under that name.
    """
    if not (isinstance(cls, type) and issubclass(cls, SRNet) and cls.name):
        raise TypeError(f"register_net({cls!r}): give an SRNet subclass with a `name` class attribute")
    if NETS.get(cls.name, cls) is not cls:
        raise UserError(f"register_net({class_path(cls)}): the name {cls.name!r} is taken by "
                         f"{class_path(NETS[cls.name])}")
    NETS[cls.name] = cls
    return cls


def class_path(cls: type) -> str:
    """The dotted path a config's ``_target_`` gives for ``cls`` (``sr_lightning.nets.vdsr.VDSR``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def net_class(cfg: Mapping[str, Any]) -> type[SRNet]:
    """The network class a config the user wrote names: ``{"_target_": "pkg.Class"}`` (imported)
    or ``{"name": "vdsr"}`` (registered)."""
    if "_target_" in cfg:
        try:
            cls = get_class(cfg["_target_"])
        except Exception as err:
            raise UserError(f"model._target_={cfg['_target_']!r} cannot be imported ({err})") from None
        if not (isinstance(cls, type) and issubclass(cls, SRNet)):
            raise UserError(f"model._target_={cfg['_target_']!r} is not an sr_lightning network (SRNet subclass)")
        return cls
    if "name" in cfg:
        return get_net_class(cfg["name"])
    raise UserError("a network config needs `_target_` (a class path) or `name` (a registered network)")


def file_net_class(cfg: Mapping[str, Any], trusted: Collection[str] = ()) -> type[SRNet]:
    """The network class a config read from a file names, found without importing anything.

    Args:
        cfg: ``{"_target_": "pkg.Class", ...}`` or ``{"name": "vdsr", ...}``; with both (what
            checkpoints record), a ``sr_lightning.`` ``_target_`` that is no longer a registered
            class's path (a module of ours that moved) falls back to the registered ``name``.
        trusted: ``_target_`` paths the user's own config names; only these are imported.

    Raises:
        ValueError: the config names no registered network and no trusted one (the message
            says how to register one's own).
    """
    if "_target_" not in cfg:
        if "name" not in cfg:
            raise UserError("has neither `_target_` nor `name`")
        return get_net_class(str(cfg["name"]))
    target = cfg["_target_"]
    for cls in NETS.values():
        if class_path(cls) == target:
            return cls
    if str(target).startswith("sr_lightning.") and str(cfg.get("name")) in NETS:
        return NETS[str(cfg["name"])]  # one of ours whose module has moved since it was saved
    if isinstance(target, str) and target in trusted:
        return net_class(cfg)
    raise UserError(f"_target_={target!r} is not a registered sr_lightning network (known: {', '.join(list_nets())}); "
                     f"for a network of your own, register it (sr_lightning.nets.register_net) or name it with "
                     f"trusted_nets=[{target}]")


def build_net(cfg: Mapping[str, Any]) -> SRNet:
    """Instantiate a network from a config the user wrote: ``{"_target_": ..., **kwargs}`` or
    ``{"name": ..., **kwargs}``."""
    kwargs = {k: v for k, v in cfg.items() if k not in ("_target_", "name")}
    return net_class(cfg)(**kwargs)
