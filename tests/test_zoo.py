"""The zoo table: every registered network, FLOPs that scale as expected, README in sync."""

from __future__ import annotations

import pytest

from sr_lightning import zoo
from sr_lightning.nets import list_nets


def test_table_lists_every_network_and_the_readme_has_it(capsys):
    assert zoo.main([]) == 0
    printed = capsys.readouterr().out.strip()
    names = [line.split("|")[1].strip() for line in printed.splitlines()[2:]]
    assert names == list_nets()
    readme = zoo.README.read_text()
    assert printed in readme, "README's zoo table is stale: run python -m sr_lightning.zoo --write-readme"


def test_flops_per_megapixel():
    # ESPCN at x2 on RGB: per LR pixel 5*5*3*64 + 3*3*64*32 + 3*3*32*12 MACs, 4 output pixels per LR pixel.
    macs = 5 * 5 * 3 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 12
    assert zoo.gflops_per_megapixel("espcn", 2) == pytest.approx(2 * macs / 4 * 1e6 / 1e9, rel=1e-6)
    assert zoo.gflops_per_megapixel("unet", 5) is None  # not a supported scale
