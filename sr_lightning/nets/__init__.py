"""The network zoo and its registry.

The registry is a plain dict filled by the explicit imports below; add a network by
writing one file with an :class:`SRNet` subclass, importing it here and adding it to
``NETS``, and adding ``conf/model/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

from sr_lightning.nets.base import PreUpsampleNet, SRNet
from sr_lightning.nets.bicubic import Bicubic
from sr_lightning.nets.edsr import EDSR
from sr_lightning.nets.espcn import ESPCN
from sr_lightning.nets.fsrcnn import FSRCNN
from sr_lightning.nets.rednet import REDNet
from sr_lightning.nets.srcnn import SRCNN
from sr_lightning.nets.srresnet import SRResNet
from sr_lightning.nets.unet import UNet
from sr_lightning.nets.vdsr import VDSR
from sr_lightning.nets.wdsr import WDSR

NETS: dict[str, type[SRNet]] = {
    cls.name: cls for cls in (Bicubic, SRCNN, VDSR, UNet, FSRCNN, ESPCN, EDSR, SRResNet, REDNet, WDSR)
}


def list_nets() -> list[str]:
    """Names of the registered networks, sorted."""
    return sorted(NETS)


def get_net_class(name: str) -> type[SRNet]:
    """The class registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return NETS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; known networks: {', '.join(list_nets())}") from None


def create_net(name: str, **kwargs: Any) -> SRNet:
    """Instantiate the network registered as ``name`` with ``kwargs`` (scale, in_channels, ...)."""
    return get_net_class(name)(**kwargs)


__all__ = ["NETS", "PreUpsampleNet", "SRNet", "create_net", "get_net_class", "list_nets"]
