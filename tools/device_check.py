#!/usr/bin/env python3
"""The GPU path, checked in one go (run by tools/device_check.sh on a machine with a GPU).

For a few zoo models: compile with random weights in float32 and float16, run on CUDA through IO
binding (inputs and outputs stay on the device), compare each CUDA output with onnxruntime's CPU
float32 output and with netspec's float64 reference, and print a latency table (median, p90, min
ms; images/s) per model, dtype and batch. Stops starting new models past ``--budget`` seconds so
that the whole check fits its time slot. Exit 0 when every output is within tolerance, 1 when one
is not, 3 when CUDA is not usable.
"""

from __future__ import annotations

import argparse
import sys
import time

from netspec.bench import Latency, session_runner, time_runs
from netspec.compiler import compile_graph, load_graph
from netspec.reference import run_reference
from netspec.runtime import RuntimeFailure, create_session
from netspec.typed import bind
from netspec.verify import TOLERANCES, max_relative_error, sample_inputs
from netspec.weights import initialize_weights

MODELS = ("resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0", "convnext_tiny", "vit_b_16", "vgg16")


def check_model(name: str, batches: list[int], args: argparse.Namespace) -> tuple[list[list[str]], bool]:
    graph = load_graph(f"zoo/{name}.net")
    rows, ok, weights = [], True, None
    for batch in batches:
        typed = bind(graph, batch)
        if weights is None:  # the arrays do not depend on the batch: drawn once
            weights = initialize_weights(typed, seed=0)
        feeds = sample_inputs(typed, seed=batch)
        started = time.perf_counter()
        expected = run_reference(graph, weights, feeds) if batch == 1 else None
        reference_s = time.perf_counter() - started
        fp32 = compile_graph(typed, weights).SerializeToString()
        cpu = create_session(fp32, "cpu").run(feeds)
        for dtype in ("float32", "float16"):
            data = fp32
            if dtype != "float32":
                data = compile_graph(typed.with_dtype(dtype), weights).SerializeToString()
            created = time.perf_counter()
            session = create_session(data, args.device)
            session_ms = (time.perf_counter() - created) * 1e3
            session_feeds = session.as_inputs(feeds)
            got = session.run(session_feeds)
            vs_cpu = max(max_relative_error(got[k], cpu[k]) for k in cpu)
            vs_ref = (
                None if expected is None else max(max_relative_error(got[k], expected[k]) for k in expected)
            )
            tolerance = TOLERANCES[dtype]
            passed = vs_cpu <= tolerance and (vs_ref is None or vs_ref <= tolerance)
            ok &= passed
            run = session_runner(session, session_feeds)  # IO binding on CUDA
            latency = Latency.of(time_runs(run, args.warmup, args.iterations, f"{name} {dtype}"))
            rows.append(
                [
                    name,
                    dtype,
                    str(batch),
                    f"{session_ms:.0f}",
                    f"{latency.median * 1e3:.3f}",
                    f"{latency.p90 * 1e3:.3f}",
                    f"{latency.minimum * 1e3:.3f}",
                    f"{batch / latency.median:,.0f}",
                    f"{vs_cpu:.2e}",
                    "-" if vs_ref is None else f"{vs_ref:.2e} ({reference_s:.0f} s)",
                    "ok" if passed else f"ABOVE {tolerance:g}",
                ]
            )
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--batch", default="1,8", help="batch sizes (the reference runs at batch 1)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script without a GPU")
    parser.add_argument("--budget", type=float, default=360.0, help="start no model after this many seconds")
    args = parser.parse_args()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}")
    try:
        probe = compile_graph(bind(load_graph("zoo/lenet5.net"), batch=1)).SerializeToString()
        create_session(probe, args.device)
    except RuntimeFailure as exc:
        print(f"device_check: {exc}", file=sys.stderr)
        return 3
    started = time.perf_counter()
    header = ["model", "dtype", "batch", "session ms", "median ms", "p90 ms", "min ms", "images/s"]
    header += ["max rel err vs CPU fp32", "vs float64 reference", "verdict"]
    rows, ok = [], True
    for name in args.models:
        if time.perf_counter() - started > args.budget:
            print(f"device_check: over the {args.budget:.0f} s budget, skipped {name}", file=sys.stderr)
            continue
        model_rows, model_ok = check_model(name, [int(b) for b in args.batch.split(",")], args)
        rows += model_rows
        ok &= model_ok
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    verdict = "all within tolerance" if ok else "SOME ABOVE TOLERANCE"
    print(f"total {time.perf_counter() - started:.0f} s; {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
