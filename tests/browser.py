"""Headless Chromium for the tests that drive a page (the report, the play page)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_api():
    """Playwright's sync API, to drive Debian's chromium. `make test` installs the browser
    (.ci/install-browser.sh); the test skips, saying why, only where it is still missing, and
    under .ci/run (MDNWORLD_REQUIRE_BROWSER=1) it fails instead."""
    missing = None
    if not CHROMIUM.exists():
        missing = (
            f"{CHROMIUM} not found: `make test` installs Debian's chromium with "
            ".ci/install-browser.sh, which needs apt-get and root or password-less sudo"
        )
    else:
        try:
            from playwright import sync_api
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("MDNWORLD_REQUIRE_BROWSER"):
            pytest.fail(f"{missing} (MDNWORLD_REQUIRE_BROWSER is set: the browser test must run)")
        pytest.skip(missing)
    return sync_api
