"""How an author's released weights name this network's tensors: each network says it about
itself (``SRNet.release_format``), beside its architecture, and the importer
(:mod:`sr_lightning.convert.release`) only applies it. A new network with a release is one
file (its module, with its format) plus one config."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

# (pattern, replacement) pairs applied in order with re.sub: a release key -> ours.
Rewrites = tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...]
# Takes a release's derived tensors over (folds them into the weights) instead of checking them:
# (network config, our tensors, derived {our key: (release key, tensor)}, file) -> (config, tensors).
Fold = Callable[[dict[str, Any], dict[str, Tensor], Mapping[str, tuple[str, Tensor]], Path],
                tuple[dict[str, Any], dict[str, Tensor]]]


@dataclass(frozen=True)
class ReleaseFormat:
    """A network's released state-dict layout.

    Attributes:
        key_map: release key -> our key (:data:`Rewrites`); empty: the release uses our names.
        derived: patterns of release keys whose values are computed from the others (attention
            masks, index tables, folded convolutions): checked against what the network
            computes, or taken over by ``fold``, then dropped.
        options: constructor options the release was trained with that differ from the
            model config's defaults (RCAN: ``img_range`` 255).
        fold: takes the derived tensors over (RCAN's trainable mean shifts) instead of checking them.
    """

    key_map: Rewrites = ()
    derived: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    fold: Fold | None = None

    def our_key(self, key: str) -> str:
        """A release key in our names.

        >>> ReleaseFormat(key_map=((r"^fea_conv\\.", "head."),)).our_key("fea_conv.weight")
        'head.weight'
        """
        for pattern, repl in self.key_map:
            key = re.sub(pattern, repl, key)
        return key

    def is_derived(self, key: str) -> bool:
        """Whether a release key holds a value computed from the others."""
        return any(re.search(pattern, key) for pattern in self.derived)
