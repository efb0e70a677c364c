"""Which registered network a state dict holds, and with which constructor arguments, from its
key names and tensor shapes alone: no forward pass, nothing imported or unpickled (the
caller reads the file as data).

Each network states the layouts its files come in (``SRNet.release_formats``: ours, its
authors' release) and reads its own arguments off a state dict in our names
(``SRNet.detect``); :func:`detect` tries every network in every layout, builds each answer
and keeps those whose every key and shape fit. None: the closest network is named with how
many of its keys matched; two: both are named.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sr_lightning.errors import UserError, WeightFormatError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.registry import NETS
from sr_lightning.nets.release_format import ReleaseFormat, first_mismatch

# Keys under which files nest the state dict, in order of preference (EMA weights first).
WRAPPERS = ("params_ema", "params", "state_dict", "model")


@dataclass(frozen=True)
class Detection:
    """A network found in a state dict.

    Attributes:
        name: its registry name (``rrdbnet``).
        kwargs: the constructor arguments the weights fix (the others keep the network's
            defaults: the paper's); no ``scale`` for networks whose weights do not hold it
            (those refining a bicubic upscale, FSRCNN's deconvolution stride).
        layout: the layout the file is in (``sr_lightning``, ``release``, ...).
        state_dict: the weights in our key names, the layout's derived keys left out.
        derived: the derived keys: our key -> (the file's key, tensor).
    """

    name: str
    kwargs: dict[str, Any]
    layout: str
    state_dict: dict[str, Tensor] = field(repr=False)
    derived: dict[str, tuple[str, Tensor]] = field(repr=False, default_factory=dict)


class UnknownModelError(WeightFormatError):
    """A state dict no registered network fits (the message names the closest), or that two fit."""


def unwrap_state(obj: Any, source: str) -> dict[str, Tensor]:
    """The state dict inside what a file holds: :data:`WRAPPERS` unwrapped, DataParallel's
    ``module.`` prefixes dropped (``source`` names the file in errors).

    Raises:
        WeightFormatError: no mapping of names to tensors inside.
    """
    while isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        inner = next((k for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise WeightFormatError(f"{source} holds {sorted(map(str, obj))[:8]} but no state dict of tensors "
                                    f"(looked under {', '.join(WRAPPERS)})")
        obj = obj[inner]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightFormatError(f"{source} holds a {type(obj).__name__}, not a state dict of tensors")
    return {re.sub(r"^(module\.)+", "", str(k)): v for k, v in obj.items()}


# A key-map pattern's segments it can only match whole: identifiers between two ``\.`` (or an
# anchor) outside any group, in a pattern without top-level alternation or character classes.
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.lru_cache(maxsize=1024)
def required_segments(pattern: str) -> frozenset[str]:
    """The dotted key segments every key ``pattern`` matches (by ``re.search``) has whole: a key
    lacking one cannot match, so a file whose keys lack it needs no search.

    >>> sorted(required_segments(r"\\.residual_group\\.blocks\\."))
    ['blocks', 'residual_group']
    >>> sorted(required_segments(r"^layers\\.(\\d+)\\.blocks\\.")), sorted(required_segments(r"rpe_biases$"))
    (['blocks', 'layers'], [])
    >>> sorted(required_segments(r"^a\\.b\\.|c")), sorted(required_segments(r"^(x\\.)?y\\.z\\."))
    ([], ['z'])
    """
    if "[" in pattern:
        return frozenset()
    pieces, depth, start, i = [], 0, 0, 0  # (text, every character outside groups)
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if pattern[i + 1] == "." and depth == 0:
                pieces.append(pattern[start:i])
                start = i + 2
            i += 2
            continue
        if char == "|" and depth == 0:
            return frozenset()
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1
    pieces.append(pattern[start:])
    found = set()
    for n, piece in enumerate(pieces):
        left = n > 0 or piece.startswith("^")
        right = (n < len(pieces) - 1 and pieces[n + 1][:1] not in ("?", "*", "+", "{")) or piece.endswith("$")
        text = piece.removeprefix("^") if n == 0 else piece
        text = text.removesuffix("$") if n == len(pieces) - 1 else text
        if left and right and _SEGMENT.fullmatch(text):
            found.add(text)
    return frozenset(found)


class KeyIndex:
    """The keys of one state dict, and which of them each key-map pattern matches: searched once
    per pattern however many layouts share it, and not at all where a segment the pattern
    needs is in no key (most layouts touch nothing in most files)."""

    def __init__(self, keys: Iterator[str] | list[str]) -> None:
        self.keys = list(keys)
        self.segments = {segment for key in self.keys for segment in key.split(".")}
        self._hits: dict[str, frozenset[str]] = {}

    def hits(self, pattern: str) -> frozenset[str]:
        """The keys ``pattern`` matches (``re.search``)."""
        if pattern not in self._hits:
            search = re.compile(pattern).search
            self._hits[pattern] = frozenset(k for k in self.keys if search(k)) \
                if required_segments(pattern) <= self.segments else frozenset()
        return self._hits[pattern]

    def union(self, patterns: Iterator[str] | list[str]) -> frozenset[str]:
        """The keys any of ``patterns`` matches."""
        return frozenset().union(*(self.hits(p) for p in patterns))


def in_layout(fmt: ReleaseFormat, state: Mapping[str, Tensor],
              index: KeyIndex | None = None) -> tuple[dict[str, Tensor], dict[str, tuple[str, Tensor]]]:
    """A file's state dict in our names through ``fmt``, and its derived keys apart (``index``:
    the state dict's keys, shared between layouts)."""
    index = index or KeyIndex(list(state))
    derived_keys = index.union(list(fmt.derived))
    touched = index.union([p for p, _ in fmt.key_map]) | derived_keys
    if not touched:
        return dict(state), {}
    ours: dict[str, Tensor] = {}
    derived: dict[str, tuple[str, Tensor]] = {}
    for key, value in state.items():
        if key not in touched:
            ours[key] = value
        elif key in derived_keys:
            derived[fmt.our_key(key)] = (key, value)
        else:
            ours[fmt.our_key(key)] = value
    return ours, derived


# torch.nn.init's in-place initialisers: while building a network only for its shapes they
# do nothing (on the meta device there are no values to fill, and they cost most of the build).
INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_")


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build modules on the meta device with ``torch.nn.init`` initialisers skipped."""
    saved = {name: getattr(torch.nn.init, name) for name in INITIALISERS}
    try:
        for name in INITIALISERS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused: building candidate networks allocates
    thousands of modules, which otherwise trigger full collections over everything torch
    has loaded (a 50 ms detection then took 200 ms)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_shapes(cls: type[SRNet], kwargs: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The key -> shape of ``cls(**kwargs)`` (built without memory or initialisation where the
    network allows it, once per process for each network and arguments), or None when the
    arguments do not make a network."""
    return _shapes(cls, json.dumps(kwargs, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _shapes(cls: type[SRNet], kwargs_json: str) -> dict[str, tuple[int, ...]] | None:
    kwargs = json.loads(kwargs_json)
    try:
        try:
            with shapes_only():
                net = cls(**kwargs)
        except (NotImplementedError, RuntimeError):  # a constructor that computes buffers from data
            net = cls(**kwargs)
    except (UserError, TypeError, ValueError, ZeroDivisionError):
        return None
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@functools.cache
def layouts(cls: type[SRNet]) -> dict[str, ReleaseFormat]:
    """``cls.release_formats()``, made once per class (their compiled key maps are kept)."""
    return cls.release_formats()


def candidates(state: Mapping[str, Tensor]) -> list[Detection]:
    """Every network whose detector answers, in a layout of its own, and which, built with the
    answer, has exactly the state dict's keys and shapes; a network that fits in several of
    its layouts (their names agree on this file) once, in the first (ours before the release's)."""
    found: list[Detection] = []
    views: dict[tuple[Any, ...], tuple[dict[str, Tensor], dict[str, tuple[str, Tensor]]]] = {}
    index = KeyIndex(list(state))
    for cls in NETS.values():
        for layout, fmt in layouts(cls).items():
            view = (fmt.key_map, fmt.derived)  # networks sharing a layout (ours, above all) share its view
            if view not in views:
                views[view] = in_layout(fmt, state, index)
            ours, derived = views[view]
            kwargs = cls.detect({**ours, **{k: v for k, (_, v) in derived.items()}})
            if kwargs is None or any(d.name == cls.name and d.kwargs == kwargs for d in found):
                continue
            shapes = build_shapes(cls, kwargs)
            if shapes is not None and first_mismatch(shapes, ours) is None:
                found.append(Detection(cls.name, kwargs, layout, ours, derived))
    return found


@functools.cache
def _patterns(cls: type[SRNet]) -> frozenset[str]:
    """The key patterns (indices as ``#``) of the network at its defaults, in our names."""
    shapes = build_shapes(cls, {})
    return frozenset(re.sub(r"\.\d+(?=\.)", ".#", k) for k in shapes or {})


def closest(state: Mapping[str, Tensor]) -> tuple[str, int, int, str | None]:
    """The network whose key patterns the state dict shares most: (name, matched, its count,
    the first of its patterns the file lacks)."""
    best = ("", 0, 1, None)
    index = KeyIndex(list(state))
    for cls in NETS.values():
        ours = _patterns(cls)
        if not ours:
            continue
        for fmt in layouts(cls).values():
            mine = {re.sub(r"\.\d+(?=\.)", ".#", k) for k in in_layout(fmt, state, index)[0]}
            matched = len(ours & mine)
            if matched / len(ours) > best[1] / best[2]:
                best = (cls.name, matched, len(ours), min(ours - mine, default=None))
    return best


def detect(state_dict: Any, source: str = "the state dict", architecture: str | None = None,
           option: str = "architecture") -> Detection:
    """The one registered network a state dict (a whole file's content: wrappers allowed) holds.

    Args:
        state_dict: what the file holds, read as data.
        source: how errors name it (``"'x4.pth'"``).
        architecture: the network to take when several fit (a registry name), or None.
        option: how errors name the option that sets ``architecture``.

    Raises:
        WeightFormatError: not a state dict of tensors.
        UnknownModelError: no network fits (the closest named, with how many of its keys
            matched), several do and ``architecture`` picks none of them (all named, and the
            option that picks one), or ``architecture`` is not among those that fit.
    """
    state = unwrap_state(state_dict, source)
    with no_cyclic_gc():
        found = candidates(state)
    fitting = " and ".join(f"{d.name} ({d.layout} layout)" for d in found)
    if architecture is not None and found:
        picked = [d for d in found if d.name == architecture]
        if not picked:
            raise UnknownModelError(f"{option}={architecture}: {source} is not a {architecture} file; "
                                    f"it fits {fitting}")
        found = picked
    if len(found) == 1:
        return found[0]
    if found:
        raise UnknownModelError(f"{source} fits {fitting}: pick one with "
                                f"{' or '.join(f'{option}={d.name}' for d in found)}")
    name, matched, total, missing = closest(state)
    near = f"; closest: {name} ({matched} of {total} key patterns{f', missing {missing}' if missing else ''})" \
        if name else ""
    raise UnknownModelError(f"{source} is not a network sr_lightning knows ({len(state)} tensors, e.g. "
                            f"{', '.join(sorted(state)[:3])}){near}")
