#!/usr/bin/env bash
# The GPU check for a machine that is lent a device (designed to finish within 8 minutes):
# a venv with netspec and onnxruntime-gpu, then tools/device_check.py (CUDA fp32 and fp16 through
# IO binding, outputs against CPU and the float64 reference, a latency table).
#
#   bash tools/device_check.sh                 # from the repository root
#   NETSPEC_WHEELS=/path/to/wheels bash tools/device_check.sh   # offline: install these wheels
#
# The device machine may have no network: then it uses the onnxruntime-gpu already installed
# for the python it finds (or the wheels in $NETSPEC_WHEELS), and says so if there is none.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
PY=${PYTHON:-python3}
VENV=${NETSPEC_GPU_VENV:-/tmp/netspec-gpu-venv}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV" || exit 3
fi
# netspec's own dependencies (lark, numpy, onnx, networkx, protobuf, safetensors) and the GPU runtime.
if [ -n "${NETSPEC_WHEELS:-}" ]; then
  # Offline: install exactly the wheels given, resolving nothing (the machine's own packages,
  # seen through --system-site-packages, supply the rest: numpy, onnx, the nvidia-* CUDA libraries).
  timeout 180 "$VENV/bin/pip" install --quiet --no-index --no-deps --no-compile "$NETSPEC_WHEELS"/*.whl \
    || echo "device_check: could not install the wheels in $NETSPEC_WHEELS"
elif ! "$VENV/bin/python" -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" 2>/dev/null; then
  timeout 180 "$VENV/bin/pip" install --quiet -e '.[cuda]' || timeout 180 "$VENV/bin/pip" install --quiet -e . \
    || echo "device_check: could not install netspec-compiler[cuda]; using what is there"
fi
"$VENV/bin/python" -c "import lark, numpy, onnx, onnxruntime" || { echo "device_check: netspec's dependencies are missing"; exit 3; }
# CUDA and cuDNN from the nvidia-* wheels wherever this python sees them (onnxruntime's
# preload_dlls knows only some layouts; the loader finds the rest through LD_LIBRARY_PATH).
nvidia_libs=$("$VENV/bin/python" -c "
import glob, os, sys
found = {os.path.dirname(p) for d in sys.path if os.path.isdir(d) for p in glob.glob(os.path.join(d, 'nvidia', '**', 'lib*.so*'), recursive=True)}
print(':'.join(sorted(found)))")
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$VENV/bin/python" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
echo "setup took $((SECONDS - started)) s"
# Whatever setup took, the checks get the rest of NETSPEC_CHECK_SECONDS (7.5 minutes unless
# set; the script's own budget stops starting models 80 s before that, so that the last finishes).
left=$((${NETSPEC_CHECK_SECONDS:-450} - (SECONDS - started)))
PYTHONPATH=$PWD timeout "$left" "$VENV/bin/python" tools/device_check.py --budget $((left - 80)) "$@"
rc=$?
echo "device_check finished in $((SECONDS - started)) s (exit $rc)"
exit $rc
