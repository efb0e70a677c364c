"""A module from a checkpoint: the one place every command (eval, upscale, export, explain,
train's ``init_from``) and the Python API turn a :class:`~sr_lightning.checkpoint.Checkpoint`
into a network with its weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import torch

from sr_lightning.checkpoint import Checkpoint, load_weights
from sr_lightning.lit.sr_module import SRLitModule

M = TypeVar("M", bound=SRLitModule)


def load_module(checkpoint: Checkpoint, module_cls: type[M] = SRLitModule, *, device: str | torch.device | None = None,
                net_overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> M:
    """``module_cls`` built from the checkpoint's network and module arguments, holding its weights.

    Args:
        checkpoint: read by :func:`~sr_lightning.checkpoint.read_checkpoint` (checked data).
        module_cls: :class:`SRLitModule` or a subclass (whose own arguments come in ``kwargs``).
        device: where to put it (None: the CPU, where it was read).
        net_overrides: network kwargs to change (another scale: :meth:`Checkpoint.rescale`).
        kwargs: constructor arguments that replace the checkpoint's (``evaluation``,
            ``channels_last``) or that it never supplies (``loss``, ``optimizer``, ...).

    Raises:
        UserError: the weights do not fit the network (another architecture or config).
    """
    args = {**checkpoint.module_arguments, "net": checkpoint.net_config(net_overrides), **kwargs}
    module = module_cls(**args)
    load_weights(module, checkpoint.state_dict)
    return module.to(device) if device is not None else module
