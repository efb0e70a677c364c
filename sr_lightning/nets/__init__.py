"""The network zoo and its registry.

The registry is a plain dict filled by explicit imports (:mod:`sr_lightning.nets.registry`);
add a network by writing one file with an :class:`SRNet` subclass, importing it there and
adding it to ``NETS``, and adding ``sr_lightning/conf/model/<name>.yaml``. A network of your own,
outside the package: :func:`register_net`.
"""

from __future__ import annotations

from sr_lightning.nets.base import PreUpsampleNet, SRNet
from sr_lightning.nets.detection import Detection, UnknownModelError, detect
from sr_lightning.nets.registry import (
    NETS,
    build_net,
    class_path,
    create_net,
    file_net_class,
    get_net_class,
    list_nets,
    net_class,
    register_net,
)

__all__ = ["NETS", "Detection", "PreUpsampleNet", "SRNet", "UnknownModelError", "build_net", "class_path", "create_net",
           "detect", "file_net_class", "get_net_class", "list_nets", "net_class", "register_net"]
