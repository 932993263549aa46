#!/usr/bin/env bash
# Stylize the real 7-Scenes "redkitchen" scan end to end and record wall time and peak memory.
# Usage: scripts/run_redkitchen.sh [OUT_DIR] [STYLE_IMAGE] [extra `meshstyle stylize` options...]
# Writes OUT_DIR (the run folder), OUT_DIR.log (progress) and OUT_DIR.time (/usr/bin/time -v).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/redkitchen_run}
style=${2:-/work/shared/styles/starry_night.jpg}
shift $(( $# > 2 ? 2 : $# ))
/usr/bin/time -v -o "$out.time" .venv/bin/meshstyle stylize /work/shared/scans/redkitchen \
    --style "$style" --out "$out" "$@" 2>&1 | tee "$out.log"
grep -E "Elapsed|Maximum resident" "$out.time"
