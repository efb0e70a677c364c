"""How an author's released weights name this network's tensors: each network says it about
itself (``SRNet.release_format``), beside its architecture, and the importer
(:mod:`sr_lightning.convert.release`) only applies it. A new network with a release is one
file (its module, with its format) plus one config."""

from __future__ import annotations

import functools
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

    @functools.cached_property
    def _rewrites(self) -> tuple[re.Pattern[str] | None, tuple[tuple[re.Pattern[str], Any], ...]]:
        """The key map compiled: one pattern any rewrite matches (None: no rewrites), and each rewrite."""
        compiled = tuple((re.compile(p), repl) for p, repl in self.key_map)
        return (re.compile("|".join(f"(?:{p})" for p, _ in self.key_map)) if compiled else None), compiled

    @functools.cached_property
    def _derived(self) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in self.derived)) if self.derived else None

    def our_key(self, key: str) -> str:
        """A release key in our names (the rewrites applied in order).

        >>> ReleaseFormat(key_map=((r"^fea_conv\\.", "head."),)).our_key("fea_conv.weight")
        'head.weight'
        """
        anything, rewrites = self._rewrites
        if anything is None or not anything.search(key):
            return key
        for pattern, repl in rewrites:
            if pattern.search(key):
                key = pattern.sub(repl, key)
        return key

    def is_derived(self, key: str) -> bool:
        """Whether a release key holds a value computed from the others."""
        return self._derived is not None and self._derived.search(key) is not None


def our_keys(fmt: ReleaseFormat, state: Mapping[str, Tensor]) -> dict[str, tuple[str, Tensor]]:
    """Our key -> (the release's key, tensor), through the network's key map, without the
    keys it says are derived."""
    return {fmt.our_key(key): (key, value) for key, value in state.items() if not fmt.is_derived(key)}


def derived_keys(fmt: ReleaseFormat, state: Mapping[str, Tensor]) -> dict[str, tuple[str, Tensor]]:
    """The release's derived keys: our key (through the key map) -> (its key, tensor)."""
    return {fmt.our_key(key): (key, value) for key, value in state.items() if fmt.is_derived(key)}


# -- reading hyperparameters off a state dict (the networks' ``detect`` hooks) ------------------

def indices(state: Mapping[str, Tensor], pattern: str) -> list[int]:
    """The distinct integers ``pattern``'s first group captures over the keys of ``state``.

    >>> indices({"body.0.w": None, "body.2.w": None, "body.2.b": None, "head.w": None}, r"^body\\.(\\d+)\\.")
    [0, 2]
    """
    match = _compiled(pattern).match
    return sorted({int(m[1]) for k in state if (m := match(k))})


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...] | None:
    """The shape of ``state[key]``, or None when the key is absent."""
    value = state.get(key)
    return tuple(value.shape) if value is not None else None


def shuffle_scale(out_channels: int, channels: int, steps: int = 1) -> int | None:
    """The scale of pixel-shuffle upsampling: one convolution to ``channels * s^2`` outputs
    (``steps=1``), or ``steps`` x2 steps of ``4 * channels`` each (x3: one step of 9); None
    when the numbers fit neither.

    >>> shuffle_scale(27, 3), shuffle_scale(256, 64, 2), shuffle_scale(576, 64), shuffle_scale(10, 3)
    (3, 4, 3, None)
    """
    if steps == 1:
        side = round((out_channels / channels) ** 0.5)
        return side if side >= 2 and side * side * channels == out_channels else None
    return 2 ** steps if out_channels == 4 * channels else None


def first_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str | None:
    """The first difference between a network's keys and shapes (``expected``: tensors or
    shapes) and a file's (``found``: tensors, or (file key, tensor) pairs), or None if they fit.

    >>> import torch
    >>> first_mismatch({"w": (2, 3)}, {"w": torch.zeros(2, 3)}) is None
    True
    >>> first_mismatch({"w": (2, 3)}, {"w": torch.zeros(2, 4)})
    'w is (2, 4) in the file but (2, 3) in the network (w)'
    """
    def size(value: Any) -> tuple[int, ...]:
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    def entry(key: str, value: Any) -> tuple[str, Any]:  # the file's own key, and its tensor
        return value if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) else (key, value)

    missing = [k for k in expected if k not in found]
    if missing:
        return f"the network's {missing[0]} {size(expected[missing[0]])} is not in the file" \
               f"{f' ({len(missing)} keys missing)' if len(missing) > 1 else ''}"
    extra = [k for k in found if k not in expected]
    if extra:
        key, value = entry(extra[0], found[extra[0]])
        return f"the file's {key} {size(value)} has no place in the network" \
               f"{f' ({len(extra)} keys unexpected)' if len(extra) > 1 else ''}"
    for k, v in expected.items():
        key, value = entry(k, found[k])
        if size(value) != size(v):
            return f"{key} is {size(value)} in the file but {size(v)} in the network ({k})"
    return None
