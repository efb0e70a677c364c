"""The benchmark's report: results.md is what its results.json renders, every machine class
side by side; a bad --isa is refused in one line."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "experiments" / "benchmarks"


def _run_py():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_is_the_rendering_of_results_json():
    machines = json.loads((BENCH / "results.json").read_text())["machines"]
    assert (BENCH / "results.md").read_text() == _run_py().markdown(machines), \
        "results.md is stale: make bench rewrites both"
    for run in machines.values():
        assert run["machine"]["cpu"] and run["machine"]["class"]
        assert {row["net"] for row in run["train step"]} <= set(_run_py().DEFAULT_NETS) | {"edsr"}


def test_a_single_machine_class_renders_alone():
    machines = json.loads((BENCH / "results.json").read_text())["machines"]
    name, run = next(iter(machines.items()))
    md = _run_py().markdown({name: run})
    assert f"| setting | {name} |" in md and md.count(f"{name} plain (ms)") == 1


def test_an_isa_the_cpu_lacks_is_refused_in_one_line(monkeypatch, capsys):
    bench = _run_py()
    monkeypatch.setattr("sr_lightning.hardware.cpu_flags", lambda: frozenset({"avx", "avx2"}))
    monkeypatch.setattr("sys.argv", ["run.py", "--isa", "amx"])
    with pytest.raises(SystemExit) as exit_info:
        bench.main()
    assert str(exit_info.value).startswith("error: --isa amx: this CPU (") and "it can run native, avx2" in str(
        exit_info.value)


def _frontier():
    spec = importlib.util.spec_from_file_location("frontier", BENCH / "frontier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frontier_plot_is_drawn_from_the_measured_latency(tmp_path, monkeypatch):
    """The README's plot from the committed measurement: every network with a PSNR and a latency
    is a point; the frontier holds exactly the points nothing beats on both axes."""
    frontier = _frontier()
    latency = json.loads((BENCH / "zoo_latency.json").read_text())
    points = frontier.points(latency)
    assert {label for label, *_ in points[4]} == {"bicubic", "SRCNN 9-5-5", "VDSR", "IMDN"}
    for pts in points.values():
        front = frontier.frontier(pts)
        for p in pts:
            dominated = any(q[1] <= p[1] and q[2] > p[2] or q[1] < p[1] and q[2] >= p[2] for q in pts)
            assert (p in front) != dominated
    monkeypatch.setattr("sys.argv", ["frontier.py", "--output", str(tmp_path / "f.png")])
    frontier.main()
    from PIL import Image

    assert Image.open(tmp_path / "f.png").size[0] > 600
