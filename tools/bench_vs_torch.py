#!/usr/bin/env python3
"""netspec against PyTorch on ResNet-50 (DESIGN.md §9): the time to produce an ONNX model
(`netspec` compile with random weights vs `torch.onnx.export` of torchvision's resnet50, both
exporters), and the onnxruntime latency of the two graphs with the same session options,
measured interleaved so that load on the machine hits both alike. Both graphs get torchvision's
weights for the latency runs, and their outputs are compared, so they are the same network.

torch and torchvision are not netspec dependencies; use a separate environment:

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python tools/bench_vs_torch.py [--repeat 3] [--rounds 4] [--iterations 10]
"""

from __future__ import annotations

import argparse
import io
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package
from bench_compile import best_of

from netspec.bench import Latency, session_runner, time_runs
from netspec.compiler import compile_graph, load_graph
from netspec.runtime import create_session
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "zoo" / "resnet50.net"
INPUT_SHAPE = (1, 3, 224, 224)
TORCH_OPSETS = {False: 17, True: 18}  # TorchScript exporter; dynamo exporter (its default)


def import_torchvision() -> types.ModuleType:
    """torchvision, also where its compiled operators do not load (a CUDA torchvision wheel
    beside a CPU torch): resnet50 needs none of them."""
    try:
        import torchvision
    except RuntimeError:
        # NOTE: torchvision registers fake kernels for its C++ operators at import time, which
        # fails when they did not load; without that module the pure-Python models still work.
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


def import_torch() -> tuple[types.ModuleType, types.ModuleType] | None:
    """torch and torchvision, or None after saying that they are needed."""
    try:
        import torch

        return torch, import_torchvision()
    except ImportError:
        print("torch and torchvision are needed: see this file's docstring", file=sys.stderr)
        return None


def torch_export(model: object, example: object, dynamo: bool) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(model, (example,), buffer, opset_version=TORCH_OPSETS[dynamo], dynamo=dynamo)
    return buffer.getvalue()


def netspec_compile(weights: dict[str, np.ndarray] | None = None) -> bytes:
    return compile_graph(bind(load_graph(SPEC), batch=1), weights).SerializeToString()


def interleaved_latencies(
    models: dict[str, bytes], threads: int | None, rounds: int, iterations: int
) -> dict[str, Latency]:
    """Median etc. of ``rounds`` × ``iterations`` CPU runs per model, the models taking turns
    (the order reversed every round) so that background load is shared."""
    feeds = {"input": np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32)}
    runners = {}
    for name, model in models.items():
        session = create_session(model, "cpu", threads)
        (input_name,) = session.input_names
        runners[name] = session_runner(session, {input_name: feeds["input"]})
        time_runs(runners[name], 3, 0, name, None)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(rounds):
        order = list(models) if round_index % 2 == 0 else list(reversed(models))
        for name in order:
            samples[name] += time_runs(runners[name], 0, iterations, name, None)
    return {name: Latency.of(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="compile/export runs per tool (median)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved latency rounds")
    parser.add_argument("--iterations", type=int, default=10, help="timed runs per model and round")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    modules = import_torch()
    if modules is None:
        return 2
    torch, torchvision = modules

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}; ResNet-50, batch 1")
    netspec_seconds = best_of(args.repeat, netspec_compile)
    print(f"netspec compile (random weights, serialised): {netspec_seconds * 1e3:8.0f} ms")
    model = torchvision.models.resnet50(weights=None).eval()
    example = torch.randn(*INPUT_SHAPE)
    exported = {}
    for dynamo in (False, True):
        label = "dynamo" if dynamo else "TorchScript"
        seconds = best_of(args.repeat, lambda dynamo=dynamo: torch_export(model, example, dynamo))
        exported[dynamo] = torch_export(model, example, dynamo)
        print(
            f"torch.onnx.export ({label}, opset {TORCH_OPSETS[dynamo]}): {seconds * 1e3:8.0f} ms"
            f"   netspec is {seconds / netspec_seconds:5.1f}x faster"
        )

    weights = {
        name: value.detach().numpy()
        for name, value in model.state_dict().items()
        if not name.endswith("num_batches_tracked")
    }
    models = {
        "netspec": netspec_compile(weights),
        "torch (TorchScript)": exported[False],
        "torch (dynamo)": exported[True],
    }
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPE, dtype=np.float32)
    outputs = {}
    for name, data in models.items():
        session = create_session(data, "cpu", args.threads)
        (input_name,) = session.input_names
        (outputs[name],) = session.run({input_name: x}).values()
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy().astype(np.float64)
    scale = np.abs(reference).max()
    for name, value in outputs.items():
        print(f"{name:20s} max |out − torch| / max |torch| = {np.abs(value - reference).max() / scale:.2e}")

    threads = f"{args.threads} threads" if args.threads else "onnxruntime's default threads"
    print(f"onnxruntime CPU latency, {threads}, {args.rounds}×{args.iterations} interleaved runs:")
    latencies = interleaved_latencies(models, args.threads, args.rounds, args.iterations)
    base = latencies["netspec"].median
    for name, latency in latencies.items():
        print(
            f"  {name:20s} median {latency.median * 1e3:7.1f} ms  p90 {latency.p90 * 1e3:7.1f} ms  "
            f"min {latency.minimum * 1e3:7.1f} ms   median / netspec's {latency.median / base:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
