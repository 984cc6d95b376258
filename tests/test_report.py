"""The report on real runs: every section of a tiny full pipeline run (controller included), a
partial run that says plainly what is missing, and the page in headless Chromium. (The report
over hand-written files, and its errors: test_report_sections.py.)"""

from __future__ import annotations

import shutil
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, browser_api

from mdnworld.report import make_server, write_report
from mdnworld.report.html import esc
from mdnworld.report.sections import detectors

SECTIONS = (
    "data",
    "vae",
    "rnn",
    "dreams",
    "components",
    "worlds-events",
    "committed",
    "detectors",
    "controller",
)
NEEDS_TRUTH = ("detectors",)  # the full run's episodes are generated without --truth


class _Page(HTMLParser):
    """What the page refers to: images, videos (and posters), links, section ids and the
    text of every table cell with the links inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.videos: list[str] = []
        self.posters: list[str] = []
        self.links: list[str] = []
        self.sections: dict[str, str] = {}
        self.cells: list[tuple[str, list[str]]] = []
        self._section: str | None = None
        self._cell: list | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "video":
            self.videos.append(a["src"])
            if a.get("poster"):
                self.posters.append(a["poster"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
            if self._cell is not None:
                self._cell[1].append(a["href"])
        elif tag == "section":
            self._section = a["id"]
            self.sections[self._section] = ""
        elif tag == "td":
            self._cell = ["", []]

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "td" and self._cell is not None:
            self.cells.append((self._cell[0], self._cell[1]))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._section is not None:
            self.sections[self._section] += data
        if self._cell is not None:
            self._cell[0] += data


def _parse(index: Path) -> _Page:
    p = _Page()
    p.feed(index.read_text())
    return p


def _assert_files_resolve(index: Path, page: _Page) -> None:
    report = index.parent
    for src in [*page.images, *page.videos, *page.posters]:
        assert (report / src).is_file() and (report / src).stat().st_size > 0, src
    for href in page.links:
        if href.startswith("#") or "://" in href:
            continue
        assert (report / href).is_file(), href
        assert report in (report / href).resolve().parents, f"{href} leaves report/"


@pytest.fixture(scope="module")
def full_report(full_run: Path) -> Path:
    return write_report(full_run, log=lambda s: None)


@pytest.mark.slow
def test_full_run_has_every_section(full_run: Path, full_report: Path) -> None:
    assert full_report == full_run / "report" / "index.html"
    page = _parse(full_report)
    assert set(page.sections) == set(SECTIONS)
    text = full_report.read_text()
    header = text.split("<section", 1)[0]
    absent = header.split('class="missing">Not in this run yet: ')[1:]  # [] or ["...</p>..."]
    truthless = [esc(detectors.SPEC.title)]  # the sections of NEEDS_TRUTH
    assert [a.split(".</p>")[0] for a in absent] in ([], truthless), "header lists a missing part"
    for sid in SECTIONS:
        if sid in NEEDS_TRUTH:
            assert f"mdnworld detectors {full_run}" in page.sections[sid]
            continue
        assert "Missing:" not in page.sections[sid], (sid, page.sections[sid])
    assert "Could not read" not in text
    # what each section shows
    videos = set(page.videos)
    assert "media/preview/episode_000000.mp4" in videos
    assert {"media/dreams/model_0/dream_0.mp4", "media/dreams/model_0/dream_1.mp4"} <= videos
    assert {f"media/dreams/model_0/committed_{k}/dream_0.mp4" for k in range(5)} <= videos
    assert {"media/evaluate/best.mp4", "media/evaluate/worst.mp4"} <= videos
    assert len(page.posters) == len(page.videos)
    images = set(page.images)
    figs = ("episode_lengths", "vae_losses", "rnn_nll", "rnn_pi_entropy", "rnn_usage")
    for fig in (*figs, "controller_fitness", "real_scores"):
        assert f"fig/{fig}.png" in images, fig
    for png in (
        "vae/reconstructions.png",
        "analysis/components_over_time/model_1.png",
        "analysis/worlds_events/worlds_events.png",
        "analysis/committed/committed.png",
    ):
        assert f"media/{png}" in images, png
    _assert_files_resolve(full_report, page)
    # every number in a table links to the JSON/CSV it came from, inside report/data/
    numeric = [(t, links) for t, links in page.cells if any(ch.isdigit() for ch in t)]
    assert len(numeric) > 30
    for t, links in numeric:
        assert links and all(h.startswith("data/") for h in links), t
    assert "data/analysis/worlds_events/results.json" in page.links
    assert "data/evaluate/scores.json" in page.links
    assert "Choosing the controller" in page.sections["controller"]
    assert "data/controller/selection.json" in page.links
    # p-values and stars of the paper's test are in the worlds-events table
    assert "Mann–Whitney" in page.sections["worlds-events"]
    assert "null p" in page.sections["worlds-events"]


@pytest.mark.slow
def test_report_is_rewritten_and_pruned(full_run: Path, full_report: Path) -> None:
    stale = full_run / "report" / "fig" / "old_figure.png"
    stale.write_bytes(b"x")
    before = {p.relative_to(full_run) for p in (full_run / "report").rglob("*") if p.is_file()}
    write_report(full_run, log=lambda s: None)
    after = {p.relative_to(full_run) for p in (full_run / "report").rglob("*") if p.is_file()}
    assert not stale.exists()
    assert after == before - {stale.relative_to(full_run)}
    assert not list((full_run / "report").rglob(".*.tmp*"))


@pytest.mark.slow
def test_partial_run_states_what_is_missing(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    for folder in ("episodes", "vae"):
        shutil.copytree(full_run / folder, run / folder)
    logged: list[str] = []
    index = write_report(run, log=logged.append)
    page = _parse(index)
    assert set(page.sections) == set(SECTIONS)
    assert "Missing:" not in page.sections["vae"]
    assert "fig/episode_lengths.png" in page.images and "fig/vae_losses.png" in page.images
    assert "media/vae/reconstructions.png" in page.images
    # the data section is there, without its (absent) preview video
    assert "Missing: the sample episode video" in page.sections["data"]
    assert f"mdnworld show {run}" in page.sections["data"]
    for sid, command in (
        ("rnn", "train-rnn"),
        ("dreams", "dream"),
        ("components", "analyze components-over-time"),
        ("worlds-events", "analyze worlds-events"),
        ("committed", "analyze committed"),
        ("detectors", "detectors"),
        ("controller", "train-controller"),
    ):
        assert "Missing:" in page.sections[sid], sid
        assert f"mdnworld {command} {run}" in page.sections[sid], sid
    text = index.read_text()
    assert "Not in this run yet:" in text and "(missing)" in text
    assert "Could not read" not in text
    _assert_files_resolve(index, page)
    assert logged and "missing" in logged[-1]


def test_empty_and_absent_run_dirs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nope", log=lambda s: None)
    index = write_report(tmp_path, log=lambda s: None)
    page = _parse(index)
    assert all("Missing:" in page.sections[s] for s in SECTIONS)
    assert f"mdnworld generate {tmp_path}" in page.sections["data"]


@pytest.mark.slow
def test_serve(full_report: Path) -> None:
    with make_server(full_report.parent, port=0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}/"
            with urllib.request.urlopen(base, timeout=10) as r:
                assert r.status == 200 and b"mdnworld report" in r.read()
            with urllib.request.urlopen(base + "media/evaluate/best.mp4", timeout=10) as r:
                assert r.headers["Content-Type"] == "video/mp4" and r.read(4)
        finally:
            server.shutdown()
            thread.join(5)


ALL_MEDIA_READY = """() => Array.from(document.querySelectorAll('video'))
    .every(v => v.readyState >= 1 || v.error !== null)"""


@pytest.mark.slow
def test_report_in_headless_chromium(full_report: Path, tmp_path: Path) -> None:
    sync_api = browser_api()
    url = full_report.resolve().as_uri()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            for name, viewport in (
                ("laptop", {"width": 1280, "height": 800}),
                ("phone", {"width": 390, "height": 844}),
            ):
                page = browser.new_page(viewport=viewport)
                errors: list[str] = []
                page.on(
                    "console",
                    lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None,
                )
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.on(
                    "requestfailed",
                    lambda r, errors=errors: errors.append(f"request failed: {r.url}"),
                )
                page.goto(url, wait_until="load")
                page.wait_for_function(ALL_MEDIA_READY, timeout=30_000)
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.getAttribute('src'), "
                    "i.complete, i.naturalWidth, i.naturalHeight])"
                )
                assert len(images) >= 10
                for src, complete, w, h in images:
                    assert complete and w > 0 and h > 0, src
                videos = page.evaluate(
                    "Array.from(document.querySelectorAll('video')).map(v => "
                    "[v.getAttribute('src'), v.readyState, v.error && v.error.code, "
                    "v.videoWidth, v.duration])"
                )
                assert len(videos) >= 10
                for src, ready, error, width, duration in videos:
                    assert error is None and ready >= 1, (src, ready, error)
                    assert width > 0 and duration > 0, src
                assert not errors, errors
                if name == "phone":
                    widths = page.evaluate("[document.body.scrollWidth, window.innerWidth]")
                    assert widths[0] <= widths[1] + 1, f"horizontal overflow on a phone: {widths}"
                shot = tmp_path / f"report_{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                assert shot.stat().st_size > 10_000
                page.close()
        finally:
            browser.close()


@pytest.mark.slow
def test_stages_still_running_are_shown_from_their_logs(full_run: Path, tmp_path: Path) -> None:
    """Episodes without their manifest, and V, M and C with a log but no final files yet."""
    run = tmp_path / "running"
    (run / "episodes").mkdir(parents=True)
    for p in (full_run / "episodes").glob("ep_*.npz"):
        shutil.copy(p, run / "episodes" / p.name)
    for rel in ("vae/log.jsonl", "rnn/model_1/log.jsonl", "controller/log.jsonl"):
        (run / rel).parent.mkdir(parents=True)
        shutil.copy(full_run / rel, run / rel)
    with (run / "vae" / "log.jsonl").open("a") as f:
        f.write('{"step": 99, "train/rec')  # a line being appended
    index = write_report(run, log=lambda s: None)
    page = _parse(index)
    assert "3 episode files but no manifest" in page.sections["data"]
    assert "fig/vae_losses.png" in page.images
    assert "Missing: V's final weights" in page.sections["vae"]
    assert "model_1" in page.sections["rnn"] and "training (last epoch" in page.sections["rnn"]
    assert "fig/rnn_nll.png" in page.images and "fig/rnn_usage.png" in page.images
    assert "fig/controller_fitness.png" in page.images
    assert "Missing: the trained controller" in page.sections["controller"]
    assert "Could not read" not in index.read_text()
    _assert_files_resolve(index, page)
