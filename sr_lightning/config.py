"""The Hydra config tree: where it is (:data:`CONF_DIR`, shipped inside the package), its
schemas (:func:`register_schemas`) and resolvers, and the one way to compose it from code
(:func:`compose_config`).

The schemas are the option dataclasses themselves (and :class:`SRDataModule`'s signature), so
a default is stated once, in Python, and Hydra refuses an unknown key or a wrong type at
composition with the key named; the YAML files set only what differs or follows other keys.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from sr_lightning.errors import UserError
from sr_lightning.nets import class_path, net_class
from sr_lightning.options import schema

# The Hydra config tree (the entry points' config_path).
CONF_DIR = Path(__file__).resolve().parent / "conf"


def unique_run_dir(base: str) -> str:
    """``${sr.unique_run_dir:...}`` (``hydra.run.dir``): ``base``, or ``base_1``, ``base_2``, ...
    when a run started in the same second made it first. The folder is made here, with one
    ``mkdir`` (atomic: two processes never both make one), so every run has a folder of its
    own. Outside a Hydra run (composing a config to read it: ``resume=auto`` looking for
    the runs folder) it is ``base`` and nothing is made."""
    if not HydraConfig.initialized() or str(HydraConfig.get().mode).endswith("MULTIRUN"):
        return base
    path = Path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        candidate = path if i == 0 else path.with_name(f"{path.name}_{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise UserError(f"hydra.run.dir: 10000 runs already started as '{base}'; set hydra.run.dir to another folder")


def run_name(target: str, scale: int, lr: float | None = None) -> str:
    """A readable run name, ``vdsr-x2-lr1e-3``, from the model's ``_target_``, the scale and the lr."""
    try:
        name = net_class({"_target_": target}).name
    except (ValueError, TypeError):
        name = str(target).rsplit(".", 1)[-1].lower()
    out = f"{name}-x{scale}"
    if lr is not None:
        out += "-lr" + f"{float(lr):.0e}".replace("e-0", "e-").replace("e+0", "e")
    return out


def sweep_group() -> str | None:
    """The W&B group of a multirun's jobs (``sweep-<sweep folder name>``); None for a single run
    or outside Hydra."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return f"sweep-{Path(hc.sweep.dir).name}" if str(hc.mode).endswith("MULTIRUN") else None


def schema_of(target: type, required: Collection[str] = ()) -> DictConfig:
    """A class's keyword arguments as a config schema: ``_target_`` and each argument with its
    default (``???`` where it has none, and for the ``required`` ones: what every config must
    choose, since a file's ``???`` does not unset a schema's value) and its type where
    OmegaConf can check it (int, float, bool, str, optional ones; anything else untyped)."""
    hints = typing.get_type_hints(target.__init__)
    items: list[tuple[str, Any, Any]] = [("_target_", str, dataclasses.field(default=class_path(target)))]
    for name, param in inspect.signature(target.__init__).parameters.items():
        if param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD) or name == "self":
            continue
        hint = hints.get(name, Any)
        simple = {int, float, bool, str}
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = set(typing.get_args(hint)) - {type(None)} if union else set()
        optional = union and type(None) in typing.get_args(hint) and len(args) == 1 and args <= simple
        typ = hint if hint in simple else Optional[next(iter(args))] if optional else Any  # noqa: UP045 - OmegaConf reads Optional
        default = param.default
        if default is inspect.Parameter.empty or name in required:
            items.append((name, typ, dataclasses.field(default=MISSING)))
        elif isinstance(default, list | tuple | dict):
            plain = dict(default) if isinstance(default, dict) else list(default)
            items.append((name, typ, dataclasses.field(default_factory=lambda d=plain: copy.deepcopy(d))))
        else:
            items.append((name, typ, dataclasses.field(default=default)))
    return schema(dataclasses.make_dataclass(f"{target.__name__}Config", items))


def register_schemas() -> None:
    """Store the config groups' schemas in Hydra's ConfigStore, where the YAML files' defaults
    lists name them (``- schema``, ``- /schema/shards@shards``): ``evaluation`` (the protocol,
    :class:`~sr_lightning.lit.evaluation.Evaluation`), ``data`` (:class:`SRDataModule`'s
    arguments), ``data/degradation`` (:class:`~sr_lightning.data.pairs.Degradation`; ``realesrgan``:
    :class:`~sr_lightning.data.realesrgan.RealESRGANDegradation`),
    ``data.shards`` and ``data.internal`` (their options)."""
    from sr_lightning.data import SRDataModule
    from sr_lightning.data.internal import InternalOptions
    from sr_lightning.data.pairs import Degradation
    from sr_lightning.data.realesrgan import RealESRGANDegradation
    from sr_lightning.data.shards import ShardOptions
    from sr_lightning.lit.evaluation import Evaluation

    store = ConfigStore.instance()
    store.store(group="evaluation", name="schema", node=schema(Evaluation))
    # A data config names its training images (the Python API's default is the bundled sample).
    store.store(group="data", name="schema", node=schema_of(SRDataModule, required=("train_dir",)))
    store.store(group="data/degradation", name="schema", node=schema(Degradation))
    store.store(group="data/degradation", name="realesrgan_schema", node=schema(RealESRGANDegradation))
    store.store(group="schema", name="shards", node=schema(ShardOptions))
    store.store(group="schema", name="internal", node=schema(InternalOptions))


def register_resolvers() -> None:
    """The config tree's schemas (:func:`register_schemas`) and resolvers:
    ``${sr.unique_run_dir:...}`` (``hydra.run.dir``), ``${sr.run_name:...}`` and
    ``${sr.sweep_group:}`` (the logger configs); registered before Hydra composes anything
    (the entry points' argv preparation, :func:`compose_config`)."""
    register_schemas()
    OmegaConf.register_new_resolver("sr.unique_run_dir", unique_run_dir, replace=True)
    OmegaConf.register_new_resolver("sr.run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("sr.sweep_group", sweep_group, replace=True)


def updated(cfg: DictConfig, updates: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with ``updates`` (dotted keys, e.g. ``trainer.max_steps``) set: what a
    command decides is recorded in the config it runs with, and the config it was given
    stays as composed."""
    out = copy.deepcopy(cfg)
    with open_dict(out):
        for key, value in updates.items():
            OmegaConf.update(out, key, value, merge=False, force_add=True)
    return out


def quote_numeric_choices(argv: list[str], conf_dir: str | Path) -> list[str]:
    """Quote config-group choices that are numbers (``data=291`` -> ``data='291'``).

    Hydra parses ``291`` as an int and rejects it as a group choice; quoting makes it the
    option name it is. Only keys that are config groups in ``conf_dir`` are touched.
    """
    groups = {p.name for p in Path(conf_dir).iterdir() if p.is_dir()}
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in groups and value.replace(".", "", 1).isdigit():
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


def compose_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config an entry point's command line would compose (``train``, ``eval``, ...), with
    its ``hydra`` node: numeric choices quoted. A Hydra app of the caller's keeps its state."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        register_resolvers()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=quote_numeric_choices(list(overrides), CONF_DIR),
                           return_hydra_config=True)
    finally:
        restore_gh_from_backup(backup)
