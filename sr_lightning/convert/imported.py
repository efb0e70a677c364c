"""What a weight format's reader returns: the network config and its weights, read from a released file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class Imported:
    """Weights read from a released file.

    Attributes:
        net: the network config (``_target_`` + kwargs, scale included).
        weights: one ``(weight, bias)`` pair per convolution, in order, as torch
            ``(C_out, C_in, k, k)`` / ``(C_out,)`` float32 tensors (readers of formats that
            store layers in order: the MATLAB releases).
        state_dict: the network's state dict under our key names (readers of formats that
            store named tensors: PyTorch releases); used instead of ``weights`` when set.
        trained_scales: the scales the weights were trained for (None: unknown).
        source: provenance, stored in the checkpoint.
        degradation: the data pipeline the weights expect (``data.degradation``), which
            ``eval`` adopts; default: the Y-channel MATLAB pipeline of the SRCNN/VDSR code.
    """

    net: dict[str, Any]
    weights: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    state_dict: dict[str, Tensor] | None = None
    trained_scales: list[int] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    degradation: dict[str, Any] = field(default_factory=lambda: {"source": "y", "border": "symmetric",
                                                                  "antialias": True})
