"""The zoo table: every registered network, FLOPs that scale as expected, README in sync."""

from __future__ import annotations

import pytest

from sr_lightning import zoo
from sr_lightning.nets import create_net, list_nets


def _readme_rows() -> dict[str, list[str]]:
    text = zoo.README.read_text().split(zoo.MARK_START, 1)[1].split(zoo.MARK_END, 1)[0]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.strip().splitlines()[2:]]
    return {row[0]: row for row in cells}


def test_readme_zoo_table_has_every_network_and_its_parameters():
    """The fast check: names and parameter counts (the FLOPs columns: the slow test below)."""
    rows = _readme_rows()
    assert list(rows) == list_nets(), "README's zoo table is stale: run python -m sr_lightning.zoo --write-readme"
    for name in list_nets():
        params = create_net(name, scale=2, in_channels=3).deployed_parameter_count()
        assert rows[name][1] == f"{params:,}", f"{name}: run python -m sr_lightning.zoo --write-readme"


@pytest.mark.slow  # FLOPs of every network at three scales: about a minute on 2 AVX2 cores
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
