"""The benchmark's report: results.md is what its results.json renders, every machine class
side by side; a bad --isa is refused in one line."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "experiments" / "benchmarks"


def _run_py():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # its dataclasses look their module up
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


def _gpu_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_bench

    return gpu_bench


def test_the_gpu_benchmark_needs_cuda_in_one_line(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("sys.argv", ["run.py", "--device", "cuda"])
    with pytest.raises(SystemExit) as exit_info:
        _run_py().main()
    assert str(exit_info.value).startswith("error: --device cuda: torch.cuda.is_available() is False here")


@pytest.mark.slow  # 30 s on a 2-core EPYC; the CUDA check above runs in every run
def test_the_gpu_benchmark_measures_and_renders_every_section(sr_data, tmp_path, monkeypatch):
    """The GPU benchmark's code, dry-run on the CPU in this process at small sizes (two networks,
    one compiled; 16x16 LR patches; 0 and 1 loader workers on Set5; Set5): every section is measured and rendered, and
    the loader's verdict is the first worker count whose batches/s reach the consumer's."""
    from types import SimpleNamespace

    gpu = _gpu_bench(monkeypatch)
    for name, value in (("CONSUMERS", ("espcn",)), ("LOADER_WORKERS", (0, 1)), ("LOADER_BATCHES", (4,)),
                        ("EVAL_SETS", ("Set5",)), ("LR_PATCH", 16),
                        ("LOADER_SET", "benchmark/Set5")):
        monkeypatch.setattr(gpu, name, value)
    monkeypatch.setattr("sys.argv", ["run.py", "--device", "cuda"])
    result = gpu.bench(SimpleNamespace(steps=1, nets="espcn,edsr_quick", compile="espcn"), device="cpu",
                       measure=lambda kind, steps, device, *extra: gpu.MEASURES[kind](steps, device, *extra),
                       results=(tmp_path / "r.json", tmp_path / "r.md"))
    assert set(result["roof TFLOP/s"]) >= {"matmul bf16", "conv3x3 bf16", "conv3x3 fp32", "conv3x3 bf16 fwd+bwd"}
    rows = {row["net"]: row for row in result["train step"]}
    assert rows["espcn"]["channels"] == 1 and rows["edsr_quick"]["channels"] == 3  # each at its paper's colour
    assert all(isinstance(rows["espcn"][k], float) for k in ("plain", "defaults", "compile"))
    assert "compile" not in rows["edsr_quick"]
    assert [(r["mode"], r["batch"]) for r in result["loader"]] == [("memory", 4), ("disk", 4), ("shards", 4)]
    assert list(result["evaluation s"]) == ["Set5"] and result["evaluation s"]["Set5"]["cpu"] > 0
    md = (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["gpus"] == {result["device"]["gpu"]: result}
    need = result["consumption batches/s"]["espcn, batch 4"]
    for row in result["loader"]:
        enough = [w for w in ("0", "1") if row[w] >= need]
        verdict = f"espcn: {enough[0]} workers" if enough else "espcn: none"
        assert f"| {row['mode']} | 4 | {row['0']:.1f} | {row['1']:.1f} | {verdict} |" in md
    assert "| espcn | 1 |" in md and "img/s" in md


def test_results_cuda_md_is_the_rendering_of_results_cuda_json(monkeypatch):
    results = BENCH / "results_cuda.json"
    if not results.is_file():
        pytest.skip("no GPU benchmark recorded yet (experiments/gpu/README.md)")
    gpus = json.loads(results.read_text())["gpus"]
    assert (BENCH / "results_cuda.md").read_text() == _gpu_bench(monkeypatch).markdown(gpus), \
        "results_cuda.md is stale: make bench ARGS=\"--device cuda\" rewrites both"


def test_a_gpu_run_stopped_early_renders_what_it_measured(monkeypatch):
    """A benchmark stopped at its time limit after the roof: that section, and which were not measured."""
    gpu = _gpu_bench(monkeypatch)
    run = {"date": "2026-12-02", "command": "make bench", "device": {"gpu": "X"},
           "roof TFLOP/s": {"matmul bf16": 700.0, "conv3x3 bf16": 400.0}}
    md = gpu.markdown({"X": run})
    assert "| conv3x3 bf16 | 400.0 |" in md and "### Training step" not in md
    assert "Not measured (the run stopped before): train step, evaluation s, consumption batches/s, loader." in md
