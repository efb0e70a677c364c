"""The layers of docs/architecture.md are the import contract `make lint` checks, and every
module of the package is in one of them (a new module has to be placed)."""

from __future__ import annotations

import re

import tomllib

from tests.conftest import ROOT

PACKAGE = ROOT / "sr_lightning"
# Not code the contract orders: the config files' package and the package's own __init__.
OUTSIDE = {"conf", "__init__"}


def _layers() -> list[list[str]]:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contract if c["type"] == "layers")["layers"]
    return [[m.strip().removeprefix("sr_lightning.") for m in re.split(r"[|:]", layer)] for layer in layers]


def test_every_module_of_the_package_is_in_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                         if p.is_dir() and (p / "__init__.py").is_file()}
    placed = {m for layer in _layers() for m in layer}
    assert modules - OUTSIDE - placed == set(), "add the new module to [tool.importlinter] in pyproject.toml"
    assert placed - modules == set()


def test_the_architecture_page_names_every_layer_in_the_contracts_order():
    page = (ROOT / "docs/architecture.md").read_text()
    block = page.split("## The layers", 1)[1].split("```")[1]
    def first(module: str) -> int:  # the module named as such: "data/" or "data (", not "the data."
        found = re.search(rf"(?<![\w.]){re.escape(module)}(\.py|/)?(?=[\s|:(,]|$)", block)
        assert found, f"docs/architecture.md does not name {module} in its layers"
        return found.start()

    positions = [[first(m) for m in layer] for layer in _layers()]
    for upper, lower in zip(positions, positions[1:], strict=False):
        assert max(upper) < min(lower), "docs/architecture.md lists the layers top to bottom, as the contract does"
