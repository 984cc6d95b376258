#!/usr/bin/env bash
# The report's browser test (tests/test_report.py) drives Debian's chromium through Playwright
# (installed by pip with the dev extras; `playwright install` is never needed). Installs the
# chromium package when /usr/bin/chromium is missing; does nothing otherwise. Called by
# `make test` (which goes on without it: the test then skips, saying why) and by .ci/run.
# Exits non-zero, with the reason, where it cannot install: no apt-get, or neither root nor
# password-less sudo (it never waits for a password).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-browser: /usr/bin/chromium not found and there is no apt-get to install it" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
        echo "install-browser: /usr/bin/chromium not found; installing it needs root or" \
            "password-less sudo (run: sudo apt-get install chromium)" >&2
        exit 1
    fi
    SUDO="sudo -n"
fi
echo "install-browser: /usr/bin/chromium not found, installing Debian's chromium"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
/usr/bin/chromium --version
