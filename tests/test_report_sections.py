"""The report over hand-written run files (no game, no training): only a missing file reads
as missing; a file that is there but cannot be read fails loudly, naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdnworld.errors import DataError, MissingError
from mdnworld.layout import RunLayout
from mdnworld.report import write_report
from mdnworld.report.build import build_sections
from mdnworld.report.context import Context
from mdnworld.report.sections import committed

COMMITTED = {
    "model": 0,
    "tests": 2,
    "steps": 20,
    "start_t": 5,
    "classes": ["Explosion", "Fireball"],
    "median_frames": [
        {"component": 0, "Explosion": 0.0, "Fireball": 3.0},
        {"component": 1, "Explosion": 4.0, "Fireball": 1.5},
    ],
    "explosion_component": 1,
    "paper": "the explosion component made ~520 explosion frames per 1000",
    "note": "An intervention.",
}


def _run(tmp_path: Path, results: object) -> RunLayout:
    run = RunLayout(tmp_path / "run")
    path = run.analysis_results("committed")
    path.parent.mkdir(parents=True)
    path.write_text(results if isinstance(results, str) else json.dumps(results))
    return run


def _section(index: Path, sid: str) -> str:
    return index.read_text().split(f'<section id="{sid}">')[1].split("</section>")[0]


def test_a_section_with_its_file_is_shown(tmp_path: Path) -> None:
    run = _run(tmp_path, COMMITTED)
    html = _section(write_report(run.root, log=lambda s: None), "committed")
    assert "Missing:" not in html
    assert '<tr class="hl"><th scope="row">k=1</th>' in html
    assert 'title="median_frames[1].Explosion in analysis/committed/results.json"' in html
    assert (run.report_dir / "data" / "analysis" / "committed" / "results.json").is_file()


def test_a_missing_file_shows_as_missing_with_its_command(tmp_path: Path) -> None:
    run = _run(tmp_path, COMMITTED)
    run.analysis_results("committed").unlink()
    html = _section(write_report(run.root, log=lambda s: None), "committed")
    assert "Missing: analysis C (<code>analysis/committed/results.json</code> not found)" in html
    assert f"mdnworld analyze committed {run.root}" in html


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ('{"model": 0,', r"committed/results\.json: not valid JSON"),
        ({k: v for k, v in COMMITTED.items() if k != "tests"}, r"results\.json: no key 'tests'"),
        ({**COMMITTED, "median_frames": [{"component": 0}]},
         r"no key 'median_frames\[0\]\.Explosion'"),
        ({**COMMITTED, "classes": 3}, r"results\.json: TypeError"),
    ],
)  # fmt: skip
def test_a_malformed_file_fails_loudly_not_as_missing(
    tmp_path: Path, broken: object, message: str
) -> None:
    run = _run(tmp_path, broken)
    with pytest.raises(DataError, match=message):
        write_report(run.root, log=lambda s: None)
    assert not run.report_index.exists()


def test_a_file_gone_while_a_section_reads_shows_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that vanishes between a section's check and its read (a stage rewriting it)
    reads as missing; any other error of a section propagates."""
    run = _run(tmp_path, COMMITTED)

    def gone(path: Path) -> None:
        raise MissingError(f"{path}: file not found")

    monkeypatch.setattr(committed, "read_committed", gone)
    logged: list[str] = []
    section = {s.id: s for s in build_sections(Context(run.root, logged.append))}["committed"]
    assert not section.present
    assert "Missing:" in section.body and "file not found" in section.body
    assert f"mdnworld analyze committed {run.root}" in section.body
    assert any("file not found" in line for line in logged)

    def bug(path: Path) -> None:
        raise KeyError("a bug, not a missing file")

    monkeypatch.setattr(committed, "read_committed", bug)
    with pytest.raises(KeyError):
        build_sections(Context(run.root, logged.append))
