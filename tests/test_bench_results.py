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
