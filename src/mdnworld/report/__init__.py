"""``mdnworld report``: one self-contained HTML page per run (``RUN_DIR/report/index.html``)."""

from mdnworld.report.build import REPORT_DIR, make_server, serve, write_report

__all__ = ["REPORT_DIR", "make_server", "serve", "write_report"]
