#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from the Debian packages when they are missing.
# Idempotent: does nothing (and needs no root) when both are already installed.
# Used by the browser test (tests/e2e/test_dashboard.py); prints the chromium path on success.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

find_chromium() {
    for name in chromium chromium-browser; do
        if have "$name"; then command -v "$name"; return 0; fi
    done
    return 1
}

if find_chromium >/dev/null && have chromedriver; then
    find_chromium
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else
        echo "browser.sh: chromium is missing and this user cannot install packages" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
find_chromium
