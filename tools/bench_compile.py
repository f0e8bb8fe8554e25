#!/usr/bin/env python3
"""Benchmark netspec's compiler: per zoo model, the time to analyse (parse + elaborate + infer +
count) and to compile fully (random weights + ONNX + serialise), and the scaling of analysis on
generated specs of 1,000 and 10,000 layers (DESIGN.md §9: linear, 10k ≤ ~10× 1k).

    python tools/bench_compile.py                 # whole zoo + scaling
    python tools/bench_compile.py zoo/resnet50.net --repeat 5
    python tools/bench_compile.py --torch         # also time torch.onnx.export of torchvision models
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from netspec.compiler import compile_graph, load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """Median wall time of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def analyse(path: Path) -> object:
    return bind(load_graph(path)).counts


def compile_full(path: Path) -> bytes:
    return compile_graph(bind(load_graph(path))).SerializeToString()


def generated_spec(layers: int, templates: bool) -> str:
    """A chain of ``layers`` layers (conv/relu pairs) on a small input, written out one layer a
    line, or through a template and ``repeat``."""
    head = 'name: "chain"\ninput data: [N, 8, 8, 8]\n'
    pairs = layers // 2
    if templates:
        return head + (
            "template unit(c) {\n"
            "  Convolution conv { num_output: c  kernel_size: 3  pad: 1 }\n"
            "  ReLU relu\n"
            "}\n"
            f"repeat {pairs} as i {{ unit block{{i}}(8) }}\n"
        )
    body = []
    for i in range(pairs):
        body.append(f"Convolution conv{i} {{ num_output: 8  kernel_size: 3  pad: 1 }}\n")
        body.append(f"ReLU relu{i}\n")
    return head + "".join(body)


def scaling(repeat: int) -> list[tuple[str, int, float]]:
    rows = []
    for templates in (False, True):
        for layers in (1_000, 10_000):
            text = generated_spec(layers, templates)

            def run(text: str = text) -> object:
                graph = elaborate(SourceFile("chain.net", text))
                return bind(graph).counts

            label = "template+repeat" if templates else "one line a layer"
            rows.append((label, layers, best_of(repeat, run)))
    return rows


def torch_export_time(model_name: str) -> float | None:
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    example = torch.randn(1, 3, 224, 224)

    def export() -> None:
        buffer = io.BytesIO()
        torch.onnx.export(model, (example,), buffer, opset_version=17, dynamo=False)

    return best_of(3, export)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", type=Path, help="spec files (default: every zoo model)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the generated 1k/10k specs")
    parser.add_argument("--torch", action="store_true", help="compare with torch.onnx.export (needs torch)")
    args = parser.parse_args(argv)

    specs = args.specs or sorted((ROOT / "zoo").glob("*.net"))
    print(f"{'model':<22}{'layers':>7}{'params':>14}{'analyse ms':>12}{'compile ms':>12}{'MB':>9}")
    for spec in specs:
        analysis = bind(load_graph(spec))
        totals = analysis.counts.totals
        analyse_time = best_of(args.repeat, lambda spec=spec: analyse(spec))
        compile_time = best_of(args.repeat, lambda spec=spec: compile_full(spec))
        size = len(compile_full(spec)) / 1e6
        print(
            f"{spec.stem:<22}{totals.layers:>7}{totals.params:>14,}{analyse_time * 1e3:>12.1f}"
            f"{compile_time * 1e3:>12.1f}{size:>9.1f}"
        )
        if args.torch and spec.stem in ("resnet18", "resnet50", "vgg16", "densenet121", "alexnet"):
            torch_time = torch_export_time(spec.stem)
            if torch_time is None:
                print("  torch/torchvision not installed: no comparison")
            else:
                print(
                    f"  torch.onnx.export {torch_time * 1e3:.1f} ms: netspec is "
                    f"{torch_time / compile_time:.1f}x faster"
                )
    if not args.no_scaling:
        print()
        print(f"{'generated spec':<20}{'layers':>8}{'analyse ms':>12}{'per layer us':>14}")
        rows = scaling(args.repeat)
        for label, layers, seconds in rows:
            print(f"{label:<20}{layers:>8}{seconds * 1e3:>12.1f}{seconds / layers * 1e6:>14.1f}")
        for label in ("one line a layer", "template+repeat"):
            small, large = (s for lbl, _, s in rows if lbl == label)
            print(f"{label}: 10,000 layers take {large / small:.1f}x the time of 1,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
