#!/usr/bin/env bash
# Headless Chromium for the test that looks at `meshstyle view` in a real browser (Debian package
# `chromium`). Only `make test` and CI need it, so `make demo` does not install it. When it cannot be
# installed (no root, no package source) the browser test skips and says why.
set -uo pipefail
for name in chromium chromium-browser google-chrome; do
    command -v "$name" >/dev/null 2>&1 && exit 0
done
echo "setup: installing Debian package chromium (the viewer's browser test)"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! { $SUDO apt-get update -qq && \
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
    echo "setup: warning: could not install chromium; the viewer's browser test will be skipped" >&2
fi
exit 0
