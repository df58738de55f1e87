#!/usr/bin/env bash
# Installs Debian's chromium when it is missing (`make test`): the browser test of
# /docs (tests/e2e/test_docs_in_browser.py) drives /usr/bin/chromium through
# Playwright, which may not download a browser of its own here.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    echo "chromium is missing: installing it with apt-get" >&2
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        as_root=(sudo)
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
