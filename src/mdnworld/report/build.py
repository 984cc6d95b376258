"""``mdnworld report RUN_DIR``: one HTML page per run, in ``RUN_DIR/report/index.html``.

The report reads only files of the run directory (JSON, JSONL, CSV, PNG, MP4; it never loads
a model), through ``mdnworld.records``, and works on a partial run: each section is there when
its inputs exist, and otherwise says in one line what is missing and which command makes it.
Only a missing file reads as missing: a file that is there but cannot be read (bad JSON, a
missing key) raises, naming the file.

The folder is self-contained, so it can be copied or opened from disk: the videos and images
it shows are copied to ``report/media/``, the JSON/JSONL/CSV files it quotes to
``report/data/`` (every number on the page links to the file it came from), and the figures
it draws itself (matplotlib) go to ``report/fig/``. Every file is written atomically;
``index.html`` last, then files of an earlier report that the new page no longer uses are
deleted. Each section is a module of ``report/sections/``; ``report/context.py`` holds what
they share.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import os
from pathlib import Path
from typing import Any

from mdnworld.errors import MissingError
from mdnworld.io import atomic_write_text
from mdnworld.layout import RunLayout
from mdnworld.report.context import Context, Log
from mdnworld.report.html import Section, code, esc, page
from mdnworld.report.sections import SECTIONS

REPORT_DIR = RunLayout(Path()).report_dir.name
"""The report's folder in the run directory (``RunLayout.report_dir``)."""


def build_sections(ctx: Context) -> list[Section]:
    """Every section, in page order. A file that vanished between a section's check and its
    read shows as missing; any other error propagates."""
    out = []
    for spec, make in SECTIONS:
        try:
            out.append(make(ctx))
        except MissingError as e:
            ctx.log(f"report: section {spec.title!r}: {e}")
            out.append(spec.missing(ctx, esc(e)))
    return out


def _header(ctx: Context) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    config = ctx.run.config_json
    cfg = ""
    if config.is_file():
        cfg = f" Latest command's settings: {ctx.source(config, config.name)}."
    return (
        f'<p class="meta">Run directory {code(str(ctx.run.root))}; report written '
        f"{esc(now)}.{cfg}<br>Every number links to the JSON or CSV file it comes from "
        f"(copied into {code(ctx.rel(ctx.out) + '/data/')}); sections whose files are missing "
        f"say so and name the command that makes them.</p>"
    )


def write_report(run_dir: Path, log: Log = print) -> Path:
    """Write ``RUN_DIR/report/index.html`` (and its media, data and figures); returns its
    path. Works on a partial run; raises FileNotFoundError when ``run_dir`` does not exist,
    and ``DataError`` (naming the file) when a file is there but cannot be read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingError(f"{run_dir}: no such run directory")
    ctx = Context(run_dir, log)
    sections = build_sections(ctx)
    absent = [s.title for s in sections if not s.present]
    header = _header(ctx)
    if absent:
        header += f'<p class="missing">Not in this run yet: {esc("; ".join(absent))}.</p>'
    name = run_dir.resolve().name
    footer = (
        f"Made by {code('mdnworld report')} from the files of {code(name)} only; "
        f"open {code(ctx.run.report_index.name)} from disk or serve the folder with "
        f"{code(ctx.cmd('report', '--serve'))}."
    )
    html = page(f"mdnworld report: {name}", header, sections, footer)
    index = ctx.run.report_index
    atomic_write_text(index, html)
    removed = ctx.prune()
    present = len(sections) - len(absent)
    log(
        f"report: {present}/{len(sections)} sections"
        + (f" (missing: {', '.join(absent)})" if absent else "")
        + (f", {removed} stale file(s) removed" if removed else "")
        + f"; {index}"
    )
    return index


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def make_server(report_dir: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``report_dir`` on 127.0.0.1 (port 0: any free port)."""
    report_dir = Path(report_dir)
    index = report_dir / RunLayout(Path()).report_index.name
    if not index.is_file():
        raise MissingError(f"{index}: no report (run mdnworld report)")
    handler = functools.partial(_QuietHandler, directory=os.fspath(report_dir))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(report_dir: Path, port: int = 8000, log: Log = print) -> None:
    """Serve the report folder on http://127.0.0.1:PORT/ until interrupted (Ctrl-C)."""
    with make_server(report_dir, port) as server:
        host, real_port = server.server_address[:2]
        log(
            f"report: serving {report_dir} on http://{host}:{real_port}/ (Ctrl-C stops it; "
            f"on a remote machine: ssh -L {real_port}:127.0.0.1:{real_port} HOST, then open "
            "that address here)"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("report: server stopped")
