#!/usr/bin/env python3
"""netspec's emitted graph against torch's exports of the same torchvision model, in onnxruntime
(DESIGN.md §9: never slower). For each model: netspec compiles the zoo spec with the torchvision
module's weights, every one randomised (``randomise``: BatchNorm statistics, layer scales and
zero-initialised heads too), in deployment form (BatchNorm folded); torch exports the same module
with the TorchScript exporter (opset 17) and, with --dynamo, the dynamo exporter (opset 18). All
sessions get the same options (CPU, ORT_ENABLE_ALL, --threads, no spinning threads unless
--spinning). Then, per torch export, ``--pairs`` paired runs on one input, the order alternating
within each pair, give the ratio of minima and the median of paired ratios (netspec / torch: below
1.00 netspec is faster), with node counts before and after onnxruntime's optimiser, the session-
creation times, the output agreement, and the op types on which the optimised graphs differ
(--profile adds onnxruntime's per-op-type kernel time).

torch is not a netspec dependency: run it from an environment that has torch and torchvision,
with this checkout on the path (the session is loaded: keep --pairs modest, ~2 minutes a run):

    PYTHONPATH=. /work/torchvenv/bin/python tools/bench_graph_vs_torch.py resnet50 mobilenet_v2
    PYTHONPATH=. /work/torchvenv/bin/python tools/bench_graph_vs_torch.py --all --pairs 30
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package
from bench_vs_torch import TORCH_OPSETS, import_torch

from netspec.compiler import compile_graph, load_graph
from netspec.typed import bind
from netspec.weightfile import fit_named_arrays

ROOT = Path(__file__).resolve().parent.parent
# Zoo specs that torchvision also has, under the same name.
TORCHVISION_MODELS = (
    "alexnet",
    "vgg11",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnet101",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
    "googlenet",
    "inception_v3",
    "squeezenet1_0",
    "squeezenet1_1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
    "efficientnet_v2_s",
    "regnet_y_400mf",
)


def torch_module(torchvision: Any, name: str) -> Any:
    extra = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    return getattr(torchvision.models, name)(weights=None, **extra).eval()


def randomise(model: object, seed: int) -> None:
    """Non-trivial values for every array: weights as torch initialises them, then every
    1-D norm weight in [0.5, 1.5], biases N(0, 0.1²), BatchNorm statistics random, layer scale
    in [0.1, 1] (torchvision's 1e-6 would hide the residual branches), tokens and embeddings
    N(0, 0.5²), and arrays torch starts at zero N(0, 0.02²)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if not value.is_floating_point():
                continue
            if leaf == "layer_scale":
                value.copy_(torch.rand(value.shape, generator=generator) * 0.9 + 0.1)
            elif leaf in ("class_token", "pos_embedding") or "relative_position_bias_table" in leaf:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.5)
            elif leaf == "running_var":
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            elif leaf == "running_mean" or (leaf == "bias"):
                value.copy_(torch.randn(value.shape, generator=generator) * 0.1)
            elif leaf == "weight" and value.dim() == 1:
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            elif not value.any():  # zero-initialised (ViT's heads.head): a constant output
                value.copy_(torch.randn(value.shape, generator=generator) * 0.02)


def torch_weights(module: Any) -> dict[str, np.ndarray]:
    return {
        key: value.detach().numpy()
        for key, value in module.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }


def torch_export(module: Any, example: Any, dynamo: bool) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(module, (example,), buffer, opset_version=TORCH_OPSETS[dynamo], dynamo=dynamo)
    return buffer.getvalue()


# NOTE: onnxruntime's intra-op threads spin after each run by default; with two sessions taking
# turns on a small shared machine, one session's spinning threads steal the cores the other runs
# on. Both sessions get the same setting; --spinning restores onnxruntime's default.
SPINNING = {"spinning": "0"}


def session(model: bytes, threads: int, optimised: str | None = None, profile: str | None = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", SPINNING["spinning"])
    options.log_severity_level = 3
    if optimised:
        options.optimized_model_filepath = optimised
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def session_seconds(first: bytes, second: bytes, threads: int, repeat: int = 3) -> tuple[float, float]:
    """Median session-creation seconds of two models, created in turns (before any optimised
    model is written to disk, whose write-back would slow whichever came next)."""
    times: tuple[list[float], list[float]] = ([], [])
    for index in range(2 * repeat):
        which = index % 2 if (index // 2) % 2 == 0 else 1 - index % 2
        started = time.perf_counter()
        session((first, second)[which], threads)
        times[which].append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def op_types(model: bytes | str) -> collections.Counter[str]:
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    return collections.Counter(
        node.op_type for node in proto.graph.node if node.op_type not in ("Constant", "Identity")
    )


def optimised_graph(model: bytes, threads: int, folder: str, tag: str) -> tuple[collections.Counter, ...]:
    """The op types of onnxruntime's optimised graph, and its nodes' signatures (domain, op
    type, attributes, input shapes of constants): equal signatures mean the same kernels."""
    import onnx

    path = str(Path(folder) / f"{tag}.onnx")
    session(model, threads, optimised=path)
    proto = onnx.load(path)
    shapes = {tensor.name: tuple(tensor.dims) for tensor in proto.graph.initializer}
    signatures: collections.Counter[tuple] = collections.Counter()
    for node in proto.graph.node:
        attributes = tuple(sorted((a.name, repr(onnx.helper.get_attribute_value(a))) for a in node.attribute))
        constants = tuple(shapes.get(name) for name in node.input)
        signatures[(node.domain, node.op_type, attributes, constants)] += 1
    return op_types(path), signatures


def paired(first: Any, second: Any, feeds: tuple[dict, dict], pairs: int) -> tuple[float, float]:
    """Ratio of minima and median of paired ratios (first / second), the order within each
    pair alternating."""
    runs = [lambda: first.run(None, feeds[0]), lambda: second.run(None, feeds[1])]
    for run in runs * 3:  # warm-up
        run()
    a, b = [], []
    for index in range(pairs):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            started = time.perf_counter()
            runs[which]()
            (a if which == 0 else b).append(time.perf_counter() - started)
    a_array, b_array = np.array(a), np.array(b)
    return float(a_array.min() / b_array.min()), float(np.median(a_array / b_array))


def kernel_time_by_op(model: bytes, threads: int, feeds: dict, runs: int, folder: str, tag: str) -> dict:
    ort_session = session(model, threads, profile=str(Path(folder) / tag))
    for _ in range(3 + runs):
        ort_session.run(None, feeds)
    events = json.loads(Path(ort_session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    starts = [e["ts"] for e in events if e.get("name") == "model_run"][-runs:]
    totals: dict[str, float] = collections.defaultdict(float)
    for event in kernels:
        if event["ts"] >= starts[0]:
            totals[event["args"].get("op_name", "?")] += event["dur"] / 1e3 / runs
    return dict(totals)


def compare_model(torchvision: Any, name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    module = torch_module(torchvision, name)
    randomise(module, seed=0)
    typed = bind(load_graph(ROOT / "zoo" / f"{name}.net"), batch=1)
    (data,) = typed.graph.input_nodes
    shape = typed.types[data.outputs[0]].static_dims  # the spec's input size (299, 384, ...)
    weights = fit_named_arrays("torchvision's state_dict", torch_weights(module), typed)
    ours = compile_graph(typed, weights, fold_bn=True).SerializeToString()
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    ours_session = session(ours, args.threads)
    ours_feeds = {ours_session.get_inputs()[0].name: x}
    scale = float(np.abs(reference).max())
    rows = []
    with tempfile.TemporaryDirectory(prefix="netspec-vs-torch-") as folder:
        for index, dynamo in enumerate((False, True) if args.dynamo else (False,)):
            exporter = "dynamo" if dynamo else "TorchScript"
            theirs = torch_export(module, torch.from_numpy(x), dynamo)
            session_s = session_seconds(ours, theirs, args.threads)
            theirs_session = session(theirs, args.threads)
            theirs_feeds = {theirs_session.get_inputs()[0].name: x}
            agreement = max(
                float(np.abs(ours_session.run(None, ours_feeds)[0] - reference).max()),
                float(np.abs(theirs_session.run(None, theirs_feeds)[0] - reference).max()),
            )
            minima, median = paired(ours_session, theirs_session, (ours_feeds, theirs_feeds), args.pairs)
            if index == 0:  # written after the timings: a big file's write-back slows what follows
                ours_optimised, ours_signatures = optimised_graph(ours, args.threads, folder, "netspec")
            theirs_optimised, theirs_signatures = optimised_graph(theirs, args.threads, folder, exporter)
            differ = {
                op: (ours_optimised[op], theirs_optimised[op])
                for op in sorted(set(ours_optimised) | set(theirs_optimised))
                if ours_optimised[op] != theirs_optimised[op]
            }
            row = {
                "model": name,
                "exporter": exporter,
                "nodes": (sum(op_types(ours).values()), sum(op_types(theirs).values())),
                "optimised_nodes": (sum(ours_optimised.values()), sum(theirs_optimised.values())),
                "session_ms": (session_s[0] * 1e3, session_s[1] * 1e3),
                "ratio_of_minima": minima,
                "median_paired_ratio": median,
                "max_error_vs_torch": agreement / scale,
                "optimised_ops_that_differ": differ,
                # nodes of the optimised graphs without an identical twin in the other one
                "optimised_nodes_unmatched": (
                    sum((ours_signatures - theirs_signatures).values()),
                    sum((theirs_signatures - ours_signatures).values()),
                ),
            }
            if args.profile:
                row["kernel_ms_by_op"] = {
                    "netspec": kernel_time_by_op(ours, args.threads, ours_feeds, args.pairs, folder, "pn"),
                    "torch": kernel_time_by_op(theirs, args.threads, theirs_feeds, args.pairs, folder, "pt"),
                }
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | exporter | nodes (netspec / torch) | after ORT | session ms | ratio of minima "
        "| median paired ratio | optimised ops that differ (netspec/torch) | unmatched optimised nodes |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        differ = ", ".join(f"{op} {a}/{b}" for op, (a, b) in r["optimised_ops_that_differ"].items()) or "none"
        lines.append(
            f"| {r['model']} | {r['exporter']} | {r['nodes'][0]} / {r['nodes'][1]} "
            f"| {r['optimised_nodes'][0]} / {r['optimised_nodes'][1]} "
            f"| {r['session_ms'][0]:.0f} / {r['session_ms'][1]:.0f} | {r['ratio_of_minima']:.3f} "
            f"| {r['median_paired_ratio']:.3f} | {differ} "
            f"| {r['optimised_nodes_unmatched'][0]} / {r['optimised_nodes_unmatched'][1]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="*", help=f"zoo names (default resnet50); any of: {' '.join(TORCHVISION_MODELS)}"
    )
    parser.add_argument("--all", action="store_true", help="every zoo model torchvision also has")
    parser.add_argument("--pairs", type=int, default=30, help="paired runs per comparison (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    parser.add_argument("--dynamo", action="store_true", help="also compare the dynamo exporter (slow)")
    parser.add_argument("--profile", action="store_true", help="add per-op-type kernel times")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    parser.add_argument(
        "--spinning", action="store_true", help="let onnxruntime's threads spin (its default)"
    )
    args = parser.parse_args()
    SPINNING["spinning"] = "1" if args.spinning else "0"
    modules = import_torch()
    if modules is None:
        return 2
    torch, torchvision = modules
    names = list(TORCHVISION_MODELS) if args.all else args.models or ["resnet50"]
    unknown = [n for n in names if n not in TORCHVISION_MODELS]
    if unknown:
        print(f"not a zoo model that torchvision has: {' '.join(unknown)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; onnxruntime CPU, "
        f"{args.threads} threads, {args.pairs} pairs; ratios are netspec / torch",
        file=sys.stderr,
    )
    rows = []
    for name in names:
        rows += compare_model(torchvision, name, args)
        print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
    sys.stdout.write(markdown(rows))
    if args.profile:
        for r in rows:
            ours, theirs = r["kernel_ms_by_op"]["netspec"], r["kernel_ms_by_op"]["torch"]
            print(f"\n{r['model']} ({r['exporter']}) kernel ms per run by op type, netspec / torch:")
            for op in sorted(set(ours) | set(theirs), key=lambda o: -max(ours.get(o, 0), theirs.get(o, 0))):
                print(f"  {op:24s} {ours.get(op, 0):8.3f} {theirs.get(op, 0):8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
