"""``netspec bench --profile``: where a model's time goes, per spec layer and per template scope,
from onnxruntime's own profiler (what ``caffe time`` and ``trtexec --dumpProfile`` show).

onnxruntime names the kernels it runs after the nodes netspec emitted, which are named after the
spec's layers (a fused kernel keeps the name of one of the nodes it fused, plus a suffix such as
``_nchwc``). A row is one *fusion group*: a layer with multiply-accumulates (Conv, Gemm, ...) and
the chain of same-shaped element-wise layers after it (BatchNorm, Scale, ReLU, a residual Add)
that onnxruntime folds into its kernel, so a Conv's time and its epilogue's land on one row
whichever name the fused kernel kept. GFLOP/s is the group's FLOPs (netspec's count) / its time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec.graph import Graph, Node, TensorType
from netspec.runtime import RuntimeFailure, create_session, random_feeds
from netspec.tables import render_csv_table, render_markdown_table, render_text_table

# Kernels that belong to no spec layer (layout reorders onnxruntime inserts) are shown under
# this name followed by their operator.
RUNTIME_ROW = "(onnxruntime)"


@dataclass(frozen=True)
class ProfileRow:
    """One fusion group (or, folded, one scope): its layers' names and types, the onnxruntime
    kernels that ran for it, and its mean kernel seconds per run."""

    name: str
    layers: tuple[str, ...]
    types: tuple[str, ...]
    kernels: tuple[str, ...]
    seconds: float
    macs: int
    flops: int


@dataclass(frozen=True)
class Profile:
    """Per-run kernel time of one model at one batch, over ``runs`` profiled runs."""

    model: str
    batch: int
    device: str
    runs: int
    depth: int
    rows: tuple[ProfileRow, ...]  # slowest first
    run_seconds: float  # mean wall time of one session run, as the profiler saw it

    @property
    def kernel_seconds(self) -> float:
        return sum(row.seconds for row in self.rows)


def fusion_groups(graph: Graph, types: dict[str, TensorType], macs: dict[str, int]) -> dict[str, str]:
    """Every layer's group: the name of the layer with MACs that heads it, or its own name."""
    consumers = graph.consumers
    group: dict[str, str] = {}
    for node in graph.nodes:
        group.setdefault(node.name, node.name)
        if macs.get(node.name, 0) == 0 or len(node.outputs) != 1:
            continue
        tail = node
        while True:
            readers = consumers.get(tail.outputs[0], [])
            if len(readers) != 1 or not _is_epilogue(readers[0], types, macs):
                break
            tail = readers[0]
            if tail.name in group:
                break
            group[tail.name] = node.name
    return group


def _is_epilogue(node: Node, types: dict[str, TensorType], macs: dict[str, int]) -> bool:
    """An element-wise layer onnxruntime can fuse after a Conv/Gemm: no MACs, one output of the
    same shape as every input."""
    if macs.get(node.name, 0) or len(node.outputs) != 1 or not node.inputs:
        return False
    shape = types[node.outputs[0]].dims
    return all(types[tensor].dims == shape for tensor in node.inputs)


def spec_layer_of(kernel: str, layers: set[str]) -> str | None:
    """The spec layer a profiled kernel name belongs to: netspec names a layer's nodes ``name``
    or ``name/Op_2``; onnxruntime prefixes ``fused `` and appends suffixes such as ``_nchwc``."""
    candidate = kernel.removeprefix("fused ")
    while candidate:
        if candidate in layers:
            return candidate
        head = candidate.split("/", 1)[0]
        if head != candidate and head in layers:
            return head
        candidate, underscore, _ = candidate.rpartition("_")
        if not underscore:
            return None
    return None


def fold_name(name: str, depth: int) -> str:
    """``name`` folded to its scope ``depth`` deep (``layer1.0.conv1`` at 1 is ``layer1``)."""
    if depth <= 0:
        return name
    parts = name.split(".")
    return ".".join(parts[:depth]) if len(parts) > depth else name


def profile_model(
    graph: Graph,
    name: str,
    *,
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 3,
    runs: int = 20,
    depth: int = 0,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> Profile:
    """Compile ``graph`` at ``batch`` with ``input_shapes`` (random weights), run it ``warmup``
    times unprofiled and ``runs`` times under onnxruntime's profiler, and sum its kernels per
    fusion group."""
    from netspec.compiler import compile_graph
    from netspec.typed import bind

    analysis = bind(graph, batch, input_shapes)
    counts = {row.name: row for row in analysis.counts.layers}
    macs = {layer: row.macs for layer, row in counts.items()}
    graph = analysis.graph
    groups = fusion_groups(graph, dict(analysis.types), macs)
    model = compile_graph(analysis).SerializeToString()
    with tempfile.TemporaryDirectory(prefix="netspec-profile-") as folder:
        session = create_session(model, device, threads, profile_prefix=str(Path(folder) / "ort"))
        feeds = random_feeds(session, batch=batch)
        events = _profiled_events(session, feeds, warmup, runs)
    kernel_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    run_events = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    # Events before the warm-up's end are not timed: keep the last ``runs`` session runs.
    run_events = run_events[-runs:]
    start = run_events[0]["ts"] if run_events else 0
    timed = [e for e in kernel_events if e["ts"] >= start]

    layer_names = {node.name for node in graph.nodes}
    totals: dict[str, float] = {}
    kernels: dict[str, set[str]] = {}
    for event in timed:
        layer = spec_layer_of(event["name"][: -len("_kernel_time")], layer_names)
        op = str(event.get("args", {}).get("op_name", "?"))
        key = f"{RUNTIME_ROW} {op}" if layer is None else groups[layer]
        totals[key] = totals.get(key, 0.0) + event["dur"] * 1e-6 / runs
        kernels.setdefault(key, set()).add(op)

    members: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.inputs:
            members.setdefault(groups[node.name], []).append(node.name)
    folded: dict[str, dict[str, Any]] = {}
    for key, seconds in totals.items():
        layers = members.get(key, [])
        row = folded.setdefault(
            fold_name(key, depth) if layers else key,
            {"layers": [], "types": [], "kernels": set(), "seconds": 0.0, "macs": 0, "flops": 0},
        )
        row["layers"] += layers
        row["types"] += [counts[layer].type for layer in layers]
        row["kernels"] |= kernels[key]
        row["seconds"] += seconds
        row["macs"] += sum(counts[layer].macs for layer in layers)
        row["flops"] += sum(counts[layer].flops for layer in layers)
    rows = tuple(
        sorted(
            (
                ProfileRow(
                    name=key,
                    layers=tuple(row["layers"]),
                    types=tuple(dict.fromkeys(row["types"])),
                    kernels=tuple(sorted(row["kernels"])),
                    seconds=row["seconds"],
                    macs=row["macs"],
                    flops=row["flops"],
                )
                for key, row in folded.items()
            ),
            key=lambda r: (-r.seconds, r.name),
        )
    )
    run_seconds = sum(e["dur"] for e in run_events) * 1e-6 / max(len(run_events), 1)
    return Profile(name, batch, session.device, runs, depth, rows, run_seconds)


def _profiled_events(session: Any, feeds: dict[str, Any], warmup: int, runs: int) -> list[dict[str, Any]]:
    ort_session = session.session
    try:
        for _ in range(warmup + runs):
            ort_session.run(None, feeds)
        path = ort_session.end_profiling()
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeFailure(f"onnxruntime failed to profile the model: {exc}") from None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def profile_records(profile: Profile) -> list[dict[str, Any]]:
    """The rows as JSON/CSV records: milliseconds per run, % of the kernel total, GFLOP/s."""
    total = profile.kernel_seconds or 1.0
    return [
        {
            "name": row.name,
            "types": list(row.types),
            "layers": len(row.layers),
            "kernels": list(row.kernels),
            "ms": row.seconds * 1e3,
            "percent": 100 * row.seconds / total,
            "macs": row.macs,
            "flops": row.flops,
            "gflops": row.flops / row.seconds / 1e9 if row.macs and row.seconds else None,
        }
        for row in profile.rows
    ]


def render_profiles(profiles: Sequence[Profile], fmt: str) -> str:
    """Profiles as text or Markdown (a line and a table each), JSON (a list) or CSV (one table)."""
    if fmt == "json":
        out = [
            {
                "model": p.model,
                "batch": p.batch,
                "device": p.device,
                "runs": p.runs,
                "depth": p.depth,
                "kernel_ms": p.kernel_seconds * 1e3,
                "run_ms": p.run_seconds * 1e3,
                "rows": profile_records(p),
            }
            for p in profiles
        ]
        return json.dumps(out, indent=1) + "\n"
    if fmt == "csv":
        records = [
            {"model": p.model, "batch": p.batch, **record} for p in profiles for record in profile_records(p)
        ]
        if not records:
            return ""
        for record in records:
            record["types"] = " ".join(record["types"])
            record["kernels"] = " ".join(record["kernels"])
        return render_csv_table(list(records[0]), [list(r.values()) for r in records])
    header = ["layer" if all(p.depth == 0 for p in profiles) else "scope", "types", "kernels"]
    header += ["ms", "%", "cum %", "GFLOP/s"]
    parts = []
    for p in profiles:
        line = (
            f"{p.model} batch {p.batch} on {p.device}: {p.kernel_seconds * 1e3:.3g} ms in kernels "
            f"of {p.run_seconds * 1e3:.3g} ms per run (mean of {p.runs} profiled runs)"
        )
        rows, cumulative = [], 0.0
        for record in profile_records(p):
            cumulative += record["percent"]
            types = record["types"]
            rows.append(
                [
                    record["name"],
                    "+".join(types[:3]) + ("+…" if len(types) > 3 else ""),
                    ",".join(record["kernels"]),
                    f"{record['ms']:.3f}",
                    f"{record['percent']:.1f}",
                    f"{cumulative:.1f}",
                    "-" if record["gflops"] is None else f"{record['gflops']:,.1f}",
                ]
            )
        numeric = set(range(3, len(header)))
        if fmt == "md":
            parts.append(f"_{line}_\n\n" + render_markdown_table(header, rows, numeric))
        else:
            parts.append(line + "\n\n" + render_text_table(header, rows, numeric))
    return "\n".join(parts)
