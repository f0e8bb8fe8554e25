#!/usr/bin/env python3
"""Trained weights in, memory at the floor: VGG-16's 528 MiB of float32 weights written to a
``.safetensors`` file, then read back by netspec's memory-mapped reader and by the safetensors
library's numpy reader (which copies every tensor into a new buffer), and compiled from the file
to an ONNX file. Allocations are measured with tracemalloc, which numpy reports its array
buffers to (memory-mapped pages are the page cache's, not the process's heap); times are medians
of ``--rounds``, the two readers in turns, the file in the page cache.

    PYTHONPATH=. python tools/bench_weights.py [--model vgg16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from netspec.compiler import load_graph, lower_graph
from netspec.output import write_model
from netspec.typed import bind
from netspec.weightfile import load_weights, write_weights
from netspec.weights import initialize_weights


def measured(action: Callable[[], object]) -> tuple[float, int]:
    """Wall seconds and peak traced allocation (bytes) of ``action``; what it returns is
    dropped inside the measurement, as a caller done with it would."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg16", help="zoo model (default vgg16)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from safetensors.numpy import load_file

    typed = bind(load_graph(args.model))
    folder = Path(tempfile.mkdtemp(prefix="netspec-weights-"))
    path = str(folder / f"{args.model}.safetensors")
    write_weights(path, initialize_weights(typed))
    size = Path(path).stat().st_size

    def compile_from_file() -> int:
        lowered = lower_graph(typed, load_weights(path, typed))
        return write_model(lowered, folder / "m.onnx").size

    actions = {
        "netspec load_weights (memory-mapped)": lambda: load_weights(path, typed),
        "safetensors.numpy.load_file (copies)": lambda: load_file(path),
        "netspec compile from the file": compile_from_file,
    }
    for action in actions.values():  # the file in the page cache, code paths warm
        action()
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in actions}
    for index in range(args.rounds):
        for name in list(actions) if index % 2 == 0 else list(reversed(actions)):
            samples[name].append(measured(actions[name]))
    print(f"{args.model}: {size / 2**20:,.0f} MiB safetensors; medians of {args.rounds} rounds in turns")
    print(f"{'work':40s} {'median s':>9s} {'peak heap MiB':>14s} {'of file':>8s}")
    for name, runs in samples.items():
        seconds = statistics.median(s for s, _ in runs)
        peak = max(p for _, p in runs)
        print(f"{name:40s} {seconds:9.3f} {peak / 2**20:14.1f} {peak / size:7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
