#!/usr/bin/env bash
# The GPU check for a machine that is lent a device (designed to finish within 8 minutes):
# netspec's dependencies and onnxruntime-gpu in a folder of their own, then tools/device_check.py
# (CUDA fp32 and fp16 through IO binding, outputs against CPU and the float64 reference, a
# latency table).
#
#   bash tools/device_check.sh                 # from the repository root
#   NETSPEC_WHEELS=/path/to/wheels bash tools/device_check.sh   # offline: install these wheels
#
# The device machine may have no network: then it uses the onnxruntime-gpu already installed
# for the python it finds (or the wheels in $NETSPEC_WHEELS), and says so if there is none.
# (onnxruntime-gpu's wheel is ~245 MiB: where a transfer is capped, split it here with
# `split -b 49M`, send the parts one by one and `cat` them back into the wheel there.)
set -uo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
PY=${PYTHON:-python3}
# Packages go into a folder of their own on PYTHONPATH, not a venv: the python found may itself
# be a venv's (as on the device machines), whose packages a nested venv would not see.
SITE=${NETSPEC_GPU_SITE:-/tmp/netspec-gpu-site}
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
# netspec's own dependencies (lark, numpy, onnx, networkx, protobuf, safetensors) and the GPU runtime.
if [ -n "${NETSPEC_WHEELS:-}" ]; then
  # Offline: install exactly the wheels given, resolving nothing (the python's own packages
  # supply the rest: numpy, onnx, the nvidia-* CUDA libraries).
  timeout 180 "$PY" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$SITE" "$NETSPEC_WHEELS"/*.whl \
    || echo "device_check: could not install the wheels in $NETSPEC_WHEELS"
elif ! "$PY" -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" 2>/dev/null; then
  timeout 180 "$PY" -m pip install --quiet --target "$SITE" '.[cuda]' \
    || echo "device_check: could not install netspec-compiler[cuda]; using what is there"
fi
"$PY" -c "import lark, numpy, onnx, onnxruntime" || { echo "device_check: netspec's dependencies are missing"; exit 3; }
# CUDA and cuDNN from the nvidia-* wheels wherever this python sees them (onnxruntime's
# preload_dlls knows only some layouts; the loader finds the rest through LD_LIBRARY_PATH).
nvidia_libs=$("$PY" -c "
import glob, os, sys
found = {os.path.dirname(p) for d in sys.path if os.path.isdir(d) for p in glob.glob(os.path.join(d, 'nvidia', '**', 'lib*.so*'), recursive=True)}
print(':'.join(sorted(found)))")
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
echo "setup took $((SECONDS - started)) s"
# Whatever setup took, the checks get the rest of NETSPEC_CHECK_SECONDS (7.5 minutes unless
# set; the script's own budget stops starting models 80 s before that, so that the last finishes).
left=$((${NETSPEC_CHECK_SECONDS:-450} - (SECONDS - started)))
timeout "$left" "$PY" tools/device_check.py --budget $((left - 80)) "$@"
rc=$?
echo "device_check finished in $((SECONDS - started)) s (exit $rc)"
exit $rc
