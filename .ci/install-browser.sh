#!/usr/bin/env bash
# The report's browser test (tests/test_report.py) drives Debian's chromium through Playwright
# (installed by pip with the dev extras; `playwright install` is never needed). Installs the
# chromium package when /usr/bin/chromium is missing; does nothing otherwise.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-browser: /usr/bin/chromium not found, installing Debian's chromium"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
