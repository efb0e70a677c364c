"""The front door and the manual: a short README whose links resolve, and every page of the
manual in the site's navigation (``make docs`` builds it with ``--strict`` in CI)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"(https?:|mailto:|#)", t)]


def test_the_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 220
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", readme), "measurements are dated in experiments/, not here"
    for target in _links(readme):
        assert (ROOT / target.split("#", 1)[0]).exists(), target


def test_every_manual_page_is_in_the_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(items):
        for item in items:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(nav))
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= listed
    assert all((ROOT / "docs" / page).exists() for page in listed)


def _block(path, start: str, end: str) -> str:
    return path.read_text().split(start, 1)[1].split(end, 1)[0].strip()


def _reproduce():
    import importlib.util
    import sys

    folder = ROOT / "experiments/paper_tables"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("reproduce", folder / "reproduce.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_generated_sections_are_up_to_date_with_their_json():
    """Each table a script writes is what that script makes of its committed JSON: the
    reproduction table and its summary in the manual (reproduce.json), the latency table
    (experiments/benchmarks/zoo_latency.json)."""
    import json

    from sr_lightning import zoo

    reproduce = _reproduce()
    rows = json.loads(reproduce.ROWS.read_text())
    stale = "stale: run python experiments/paper_tables/reproduce.py --write-readme (or write it from reproduce.json)"
    table = _block(reproduce.HERE / "README.md", reproduce.MARK_START, reproduce.MARK_END)
    assert table == reproduce.markdown(rows), stale
    summary = _block(reproduce.SUMMARY_PAGE, reproduce.SUMMARY_START, reproduce.SUMMARY_END)
    assert summary == reproduce.summary(rows), stale
    latency = json.loads((ROOT / "experiments/benchmarks/zoo_latency.json").read_text())
    block = f"Measured on: {latency['machine']}.\n\n{zoo.latency_table(latency['results'])}"
    assert _block(zoo.LATENCY_PAGE, zoo.LATENCY_START, zoo.LATENCY_END) == block, "python -m sr_lightning.zoo --latency"


def test_every_command_block_is_marked_for_what_it_is():
    """A shell block in the README or the manual is either run by a named test
    (``<!-- run-by: tests/file.py::test_name -->`` before it, and that test exists) or marked as
    an excerpt (``<!-- excerpt -->``): a reader can tell a checked command from an illustration."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.lstrip().startswith("```bash"):
                continue
            mark = lines[i - 1].strip() if i else ""
            run_by = re.fullmatch(r"<!-- run-by: (tests/[\w/]+\.py)::(\w+) -->", mark)
            assert mark == "<!-- excerpt -->" or run_by, f"{page.name}:{i + 1}: mark the block"
            if run_by:
                assert f"def {run_by[2]}(" in (ROOT / run_by[1]).read_text(), f"{page.name}:{i + 1}: {mark}"


def test_the_worked_example_trains(tmp_path, monkeypatch):
    """docs/adding-a-network.md's example, as written there: its module and config files, then
    its command (the default bundled data; fewer validation images' worth of steps)."""
    from sr_lightning.nets import registry
    from tests.conftest import run_cli

    monkeypatch.setattr(registry, "NETS", dict(registry.NETS))  # the example registers into a copy
    page = (ROOT / "docs/adding-a-network.md").read_text().split("## A worked example", 1)[1]
    blocks = re.findall(r"```(?:python|yaml|bash)\n(.*?)```", page, re.S)
    assert len(blocks) == 3
    for block in blocks[:2]:
        name = block.splitlines()[0].removeprefix("# ")
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(block)
    command = blocks[2].split()
    assert command[:4] == ["PYTHONPATH=.", "python", "-m", "sr_lightning.train"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = run_cli("sr_lightning.train", *[a if a != "myconf" else str(tmp_path / "myconf") for a in command[4:]],
                  "callbacks.progress_bar=null", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}")
    assert "tinynet x2" in run.stdout and (tmp_path / "run/checkpoints/last.ckpt").is_file()
