"""The zoo table: every registered network, FLOPs that scale as expected, docs/zoo.md in sync."""

from __future__ import annotations

import pytest

from sr_lightning import cost, zoo
from sr_lightning.nets import create_net, list_nets
from sr_lightning.nets.flops import gflops_per_megapixel


def _readme_rows() -> dict[str, list[str]]:
    text = zoo.ZOO_PAGE.read_text().split(zoo.MARK_START, 1)[1].split(zoo.MARK_END, 1)[0]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.strip().splitlines()[2:]]
    return {row[0]: row for row in cells}


def test_readme_zoo_table_has_every_network_and_its_parameters():
    """The fast check: names and parameter counts (the FLOPs columns: the slow test below)."""
    rows = _readme_rows()
    assert list(rows) == list_nets(), "docs/zoo.md's table is stale: run python -m sr_lightning.zoo --write-docs"
    for name in list_nets():
        params = create_net(name, scale=2, in_channels=3).deployed_parameter_count()
        assert rows[name][1] == f"{params:,}", f"{name}: run python -m sr_lightning.zoo --write-docs"


@pytest.mark.slow  # FLOPs of every network at three scales: about a minute on 2 AVX2 cores
def test_table_lists_every_network_and_the_readme_has_it(capsys):
    """Every computed column as in docs/zoo.md (the measured memory column aside: it is a
    measurement of one machine, written with --memory)."""
    assert zoo.main([]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    names = [line.split("|")[1].strip() for line in printed[2:]]
    assert names == list_nets()
    memory = zoo.header(memory=True).index(f"peak MiB, 1 MP x{zoo.MEMORY_SCALE}")
    readme = {name: row[:memory] + row[memory + 1:] for name, row in _readme_rows().items()}
    for line in printed[2:]:
        row = [c.strip() for c in line.strip().strip("|").split("|")]
        assert readme[row[0]] == row, "docs/zoo.md's table is stale: python -m sr_lightning.zoo --memory --write-docs"


def test_memory_figures_of_networks_not_measured_are_kept_from_the_readme(monkeypatch):
    """``--memory --nets A``: A is measured, every other network keeps the page's figure."""
    figures = zoo.readme_memory(zoo.ZOO_PAGE.read_text())
    assert set(figures) == set(list_nets()) and all(v.replace(",", "").isdigit() or v == "-" for v in figures.values())
    measured = []
    monkeypatch.setattr(zoo, "peak_activation_mib", lambda name, *a, **k: measured.append(name) or 1234.0)
    monkeypatch.setattr(zoo, "gflops_per_megapixel", lambda *a, **k: 1.0)
    table = zoo.rows(memory=True, measured={k: v for k, v in figures.items() if k != "espcn"})
    memory = zoo.header(memory=True).index(f"peak MiB, 1 MP x{zoo.MEMORY_SCALE}")
    assert measured == ["espcn"]
    assert {row[0]: row[memory] for row in table} == {**figures, "espcn": "1,234"}


def test_memory_is_measured_in_a_fresh_process():
    """ESPCN x4, 1 MP out: at least its output (3 x 1000 x 1000 float32 = 11.4 MiB) and its
    widest activation (64 x 250 x 250 float32 = 15.3 MiB), far less than a pre-upsampling net."""
    espcn = cost.peak_activation_mib("espcn", 4, runs=1)
    assert 11.4 + 15.3 < espcn < 200
    assert cost.peak_activation_mib("unet", 5) is None  # not a supported scale


def test_flops_per_megapixel():
    # ESPCN at x2 on RGB: per LR pixel 5*5*3*64 + 3*3*64*32 + 3*3*32*12 MACs, 4 output pixels per LR pixel.
    macs = 5 * 5 * 3 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 12
    assert gflops_per_megapixel("espcn", 2) == pytest.approx(2 * macs / 4 * 1e6 / 1e9, rel=1e-6)
    assert gflops_per_megapixel("unet", 5) is None  # not a supported scale


def test_latency_backends_and_the_table():
    net = create_net("espcn", scale=2, in_channels=3)
    lat = cost.frame_latency(net, backends=("fp32", "bf16", "compile"), budget_s=1e-6, bf16_fast=False)
    assert lat.ms["fp32"] > 0  # over the budget: the one cold frame is the measurement ...
    assert lat.ms["bf16"] is None and lat.why["bf16"] == "no bf16 units (AMX) on this CPU"
    assert lat.ms["compile"] is None and "fp32 over" in lat.why["compile"]  # ... and the rest are left out
    table = zoo.latency_table({"a": {"2": {"ms": {"fp32": 20.0, "bf16": None, "compile": 40.0, "onnxruntime": 30.0}}},
                               "b": {"4": {"ms": {"fp32": 250.0, "bf16": None, "compile": None, "onnxruntime": None}}}})
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [c.strip() for c in rows[0]] == ["a", "x2", "20", "-", "40", "30", "50", "yes"]  # 1000 / 20 ms
    assert [c.strip() for c in rows[1]] == ["b", "x4", "250", "-", "-", "-", "4", ""]
