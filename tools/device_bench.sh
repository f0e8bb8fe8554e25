#!/usr/bin/env bash
# netspec's emitted graph against torch's exports in onnxruntime, on a quiet CPU: a device
# machine's otherwise idle cores (issues 15 and 17: paired runs, the same session options,
# 2 intra-op threads as in README "Benchmarks"). Needs torch and torchvision in the python found
# (the device machines have them); netspec's own dependencies come from that python or from the
# wheels in $NETSPEC_WHEELS (lark, usually). Designed to finish within 8 minutes.
#
#   NETSPEC_WHEELS=path/to/wheels bash tools/device_bench.sh [OUT_FOLDER]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
PY=${PYTHON:-python3}
SITE=${NETSPEC_GPU_SITE:-/tmp/netspec-gpu-site}
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${NETSPEC_WHEELS:-}" ]; then
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" "$NETSPEC_WHEELS"/lark*.whl
fi
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" -c "import torch, torchvision, onnx, onnxruntime; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)" || exit 3
# The transformer-era models: outputs against torch eager, then the paired latency.
timeout "${NETSPEC_TRANSFORMER_SECONDS:-170}" "$PY" tools/torch_transformers.py --bench --rounds 40 --threads 2 \
  --models convnext_tiny vit_b_16 swin_t efficientnet_v2_s regnet_y_400mf 2>&1 | tee "$out/transformers.txt"
# Every zoo model torchvision also has, against the TorchScript exporter.
timeout "${NETSPEC_TORCHVISION_SECONDS:-280}" "$PY" tools/bench_graph_vs_torch.py --all --pairs 30 --threads 2 \
  --json "$out/graph_vs_torch.json" 2>&1 | tee "$out/graph_vs_torch.txt"
