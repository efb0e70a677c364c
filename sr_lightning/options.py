"""Option dataclasses from mappings, by OmegaConf's structured configs: the one parser of every
options group sr_lightning reads outside Hydra (a checkpoint's evaluation protocol, the
Python API's arguments). Hydra validates the same dataclasses when it composes the configs
(they are its ConfigStore schemas: :func:`sr_lightning.config.register_schemas`), so the
defaults are stated once, in the dataclass, and unknown keys and wrong types are refused
with the key named either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sr_lightning.errors import UserError

T = TypeVar("T")


def schema(cls: type) -> DictConfig:
    """``cls`` (a dataclass) as a config node Hydra can merge files onto: its fields, types and
    defaults (a frozen dataclass's node is made writable; the dataclass stays the type)."""
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def _writable(node: Any) -> None:
    """Clear the read-only flag frozen dataclasses set, on ``node`` and the nodes below it."""
    OmegaConf.set_readonly(node, None)
    if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
        for key in node:
            _writable(node._get_node(key))


def checked(cls: type, values: Mapping[str, Any] | None, option: str) -> dict[str, Any]:
    """``values`` merged onto ``cls``'s defaults and checked against its fields' types, as plain
    data (for options whose checks need more than the types: ranges, probabilities).

    Raises:
        UserError: ``<option>.<key>: <what is wrong>`` for an unknown key, a value of the wrong
            type, or a required option left unset.
    """
    try:
        merged = OmegaConf.merge(schema(cls), OmegaConf.create(dict(values or {})))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise UserError(f"{option}.{missing[0]} must be given")
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:
        owner = err.object_type if dataclasses.is_dataclass(err.object_type) else cls
        raise UserError(f"{option}.{err.full_key}: {str(err).splitlines()[0]} (the options there: "
                        f"{', '.join(f.name for f in dataclasses.fields(owner))})") from None


def parse_options(cls: type[T], values: Mapping[str, Any] | None, option: str) -> T:
    """A ``cls`` instance from a (partial) mapping: unset options take the dataclass's defaults;
    its own checks (``__post_init__``) run on the result.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     size: int = 8
    >>> parse_options(Opts, {"size": 3}, "data.opts")
    Opts(size=3)
    >>> parse_options(Opts, {"sise": 3}, "data.opts")
    Traceback (most recent call last):
    ...
    sr_lightning.errors.UserError: data.opts.sise: Key 'sise' not in 'Opts' (the options there: size)

    Raises:
        UserError: as :func:`checked`, or the dataclass's own check.
    """
    return cls(**checked(cls, values, option))
