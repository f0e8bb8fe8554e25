#!/usr/bin/env python3
"""Per zoo model, onnxruntime's (CPU) max relative error against netspec's float64 reference
executor, at the smallest square input from 64 the model takes (its own input otherwise), with
random weights and standard-normal inputs at one seed: the figures of the numerics note.

    python tools/reference_errors.py                    # every zoo/*.net
    python tools/reference_errors.py zoo/resnet50.net --keep-bn --dtype float16

The error of an output is max|ort − ref| / max|ref| (netspec.verify); a model with several
outputs shows the largest. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError
from netspec.verify import TOLERANCES, relative_errors, small_input_shapes

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("specs", nargs="*", type=Path, help="specs (default: every zoo/*.net)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs (default 0)")
    parser.add_argument(
        "--keep-bn", action="store_true", help="compile with the BatchNormalization nodes kept"
    )
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    args = parser.parse_args()
    specs = args.specs or sorted((ROOT / "zoo").glob("*.net"))
    tolerance = TOLERANCES[args.dtype]
    print(f"onnxruntime CPU vs float64 reference, {args.dtype}, keep-bn {args.keep_bn}, seed {args.seed}\n")
    print("| model | input | max relative error | within " + f"{tolerance:g} | seconds |")
    print("|---|---|---:|---|---:|")
    failures = 0
    for path in specs:
        started = time.perf_counter()
        try:
            graph = load_graph(path)
            shapes = small_input_shapes(graph)
            errors = relative_errors(
                graph, input_shapes=shapes, seed=args.seed, fold_bn=not args.keep_bn, dtype=args.dtype
            )
        except NetspecError as exc:
            failures += 1
            print(f"| {path.name} | | error: {exc.render().splitlines()[0]} | no | |")
            continue
        worst = max(errors.values())
        within = worst <= tolerance
        failures += not within
        inputs = ", ".join(f"{n}:{'x'.join(map(str, d[1:]))}" for n, d in (shapes or {}).items()) or "own"
        elapsed = time.perf_counter() - started
        # An infinite error: onnxruntime's output overflowed (float16 tops out at 65504).
        shown = f"{worst:.2e}" if worst != float("inf") else "inf (overflow)"
        print(
            f"| {path.name} | {inputs} | {shown} | {'yes' if within else 'NO'} | {elapsed:.1f} |",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
