"""What every report section shares: the run's layout, the files the page quotes (copied into
``report/``), links from numbers to their files, figure paths, and each section's spec."""

from __future__ import annotations

import contextlib
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdnworld.io import atomic_path
from mdnworld.layout import RunLayout
from mdnworld.media import write_png
from mdnworld.report import figures
from mdnworld.report.html import Section, code, esc, image, link, missing, video
from mdnworld.text import fmt, is_number

OWN_DIRS = ("data", "media", "fig")
"""Sub-folders of ``report/`` that belong to the report (stale files there are deleted)."""

Log = Callable[[str], None]


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically, unless ``dst`` already has its size and mtime."""
    s = src.stat()
    with contextlib.suppress(FileNotFoundError):
        d = dst.stat()
        if d.st_size == s.st_size and d.st_mtime_ns == s.st_mtime_ns:
            return
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


class Context:
    """The run being reported on; copies what the page quotes and names the figures it draws.

    Paths are the run's (from ``self.run``, a ``RunLayout``); hrefs are relative to
    ``report/``: a run file ``vae/model.json`` is quoted as ``data/vae/model.json``.
    """

    def __init__(self, run_dir: Path, log: Log) -> None:
        self.run = RunLayout(run_dir)
        self.out = self.run.report_dir
        self.log = log
        self.keep: set[str] = set()
        """Files (relative to ``report/``, POSIX) the page uses."""

    def rel(self, path: Path) -> str:
        return self.run.rel(path)

    def copy(self, path: Path, folder: str) -> str:
        """Copy run file ``path`` to ``report/<folder>/<its run-relative path>``; the href."""
        href = f"{folder}/{self.rel(path)}"
        if href not in self.keep:
            _copy_if_changed(path, self.out / href)
            self.keep.add(href)
        return href

    def data(self, path: Path) -> str:
        return self.copy(path, "data")

    def media(self, path: Path) -> str:
        return self.copy(path, "media")

    def picture(self, path: Path, alt: str, caption: str, pixel: bool = False) -> str:
        """Run image ``path`` (copied to media/) as a figure, or "" when the run has none; a
        plot (white background) unless ``pixel`` (frames, drawn pixelated)."""
        if not path.is_file():
            return ""
        return image(self.media(path), alt, caption, plot=not pixel, pixel=pixel)

    def video(self, path: Path, caption: str) -> str:
        """Run video ``path`` (copied to media/) with a poster: a frame drawn from it."""
        return video(self.media(path), caption, self.poster(path))

    def poster(self, path: Path) -> str | None:
        href = f"fig/posters/{Path(self.rel(path)).with_suffix('.png').as_posix()}"
        dst = self.out / href
        try:
            if not (dst.is_file() and dst.stat().st_mtime_ns >= path.stat().st_mtime_ns):
                write_png(dst, figures.video_frame(path))
        except (OSError, ValueError, RuntimeError, StopIteration) as e:
            self.log(f"report: no poster frame for {self.rel(path)}: {e}")
            return None
        self.keep.add(href)
        return href

    def figure(self, name: str) -> tuple[Path, str]:
        """Where to draw figure ``name`` and its href."""
        href = f"fig/{name}"
        self.keep.add(href)
        return self.out / href, href

    def source(self, path: Path, text: str | None = None) -> str:
        """A link to a quoted data file (copied into ``report/data/``)."""
        rel = self.rel(path)
        return link(code(text or rel), self.data(path), f"{rel} of the run, copied here")

    def num(self, value: Any, path: Path, key: str, spec: str = ".4g") -> str:
        """``value`` as text that links to the data file it came from."""
        text = esc(fmt(value, spec))
        if not is_number(value):
            return text
        rel = self.rel(path)
        return link(text, self.data(path), f"{key} in {rel}", "num")

    def cmd(self, *args: str) -> str:
        """A command line on this run directory."""
        return "mdnworld " + " ".join([*args[:1], shlex.quote(str(self.run.root)), *args[1:]])

    def summary_link(self) -> str:
        """The analyses' summary.md, when there is one."""
        path = self.run.analysis_summary
        return f" All three analyses in one file: {self.source(path)}." if path.is_file() else ""

    def prune(self) -> int:
        """Delete files in the report's own folders that this page no longer uses."""
        n = 0
        for folder in OWN_DIRS:
            root = self.out / folder
            if not root.is_dir():
                continue
            for p in sorted(root.rglob("*"), reverse=True):
                rel = p.relative_to(self.out).as_posix()
                if p.is_file() and rel not in self.keep:
                    p.unlink()
                    n += 1
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
        return n


@dataclass(frozen=True)
class Spec:
    """A section: its anchor, title, the two lines on how to read it and the command that
    makes its files."""

    id: str
    title: str
    how: str
    command: tuple[str, ...]

    def section(self, body: str, present: bool = True) -> Section:
        return Section(self.id, self.title, self.how, body, present)

    def missing(self, ctx: Context, what: str, *command: str) -> Section:
        """The section when its main input is missing: what (HTML) and the command."""
        return self.section(missing(what, ctx.cmd(*(command or self.command))), False)


# --- listings of run folders ------------------------------------------------------------------
