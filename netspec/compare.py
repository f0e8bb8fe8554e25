"""``netspec compare``: one row per model — params, MACs, FLOPs, weight and peak activation
memory, depth in weighted layers, receptive field of the final feature map, a zoo model's
family and published ImageNet top-1/top-5 accuracy (zoo/catalog.json), and optionally measured
latency — sortable, in text, JSON, CSV or Markdown.

Conventions (also in the text header):

- **depth**: the largest number of weighted layers on any path from an input to an output,
  where a weighted layer is one whose MACs are counted (DESIGN.md §5: convolution, depthwise
  and transposed convolution, fully connected, locally connected). Normalisation, activation,
  pooling and merge layers add nothing, and neither do gating side branches (an input broadcast
  over the positions of a larger output, as squeeze-and-excitation's channel weights). This is
  the depth in the models' names: ResNet-50 and SE-ResNet-50 are 50, VGG-16 16, DenseNet-121
  121, GoogLeNet 22.
- **receptive field**: that of the last layer, in execution order, whose output is a 4-D
  feature map with more than one position (the final feature map before global pooling or the
  classifier); size and stride (jump) in input pixels per axis.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from netspec.bench import BenchResult, ModelSource, run_benchmarks, unique_names
from netspec.catalog import percent
from netspec.diagnostics import UsageError, did_you_mean
from netspec.graph import Graph, TensorType
from netspec.limits import DEFAULT_LIMITS, Limits
from netspec.progress import QUIET, Progress
from netspec.receptive import ReceptiveField
from netspec.tables import (
    field_text,
    human_bytes,
    human_count,
    render_csv_table,
    render_markdown_table,
    render_text_table,
)
from netspec.typed import TypedGraph, bind
from netspec.zoo import ZooEntry, catalogued

COUNT_KEYS = ("params", "macs", "flops", "weight_bytes", "peak_activation_bytes", "depth", "receptive_field")
ACCURACY_KEYS = ("top1", "top5")
BENCH_KEYS = ("latency_ms", "throughput")
SORT_KEYS = ("name", *COUNT_KEYS, *ACCURACY_KEYS, *BENCH_KEYS)

NOTE_WIDTH = 100
CONVENTIONS = (
    "MACs: multiply-accumulates of convolution and fully connected layers (and attention's "
    "activation products); FLOPs: every "
    "floating-point operation; memory: float32 bytes; depth: weighted (convolution, fully "
    "connected) layers on the longest path, gating branches excluded; RF: receptive field "
    "size/stride of the final feature "
    "map (the last output with more than one position)"
)


def weighted_depth(analysis: TypedGraph) -> int:
    """The most weighted layers (layers with counted MACs) on any input-to-output path, not
    counting gating side branches: an input that is broadcast over the output's positions (a
    squeeze-and-excitation gate, 1x1 spatially, scaling a larger map) does not carry depth."""
    graph, types = analysis.graph, analysis.types
    weighted = {row.name for row in analysis.counts.layers if row.macs > 0}
    depth: dict[str, int] = {}
    for node in graph.nodes:  # nodes are in topological order
        output = types[node.outputs[0]]
        carriers = [t for t in node.inputs if not _is_broadcast_gate(types[t], output)] or node.inputs
        reached = max((depth[t] for t in carriers), default=0) + (node.name in weighted)
        for tensor in node.outputs:
            depth[tensor] = reached
    return max((depth[t] for t in graph.outputs), default=0)


def _is_broadcast_gate(operand: TensorType, output: TensorType) -> bool:
    """A 4-D operand with one spatial position applied to a 4-D output with several."""
    if operand.rank != 4 or output.rank != 4:
        return False
    return math.prod(operand.static_dims[2:]) == 1 < math.prod(output.static_dims[2:])


@dataclass(frozen=True)
class FinalField:
    """The receptive field of the final feature map and the layer that produces it."""

    layer: str
    field: ReceptiveField


def final_feature_field(analysis: TypedGraph) -> FinalField | None:
    """The receptive field of the last output, in execution order, that is a feature map with
    more than one position; None for a network without one, or where the field is unknown
    there (a layer on the way has no receptive-field rule)."""
    graph, types = analysis.graph, analysis.types
    fields = analysis.receptive_fields
    for node in reversed(graph.nodes):
        tensor = node.outputs[0]
        dims = types[tensor].static_dims
        if len(dims) == 4 and math.prod(dims[2:]) > 1:
            field = fields.get(tensor)
            return None if field is None else FinalField(node.name, field)
    return None


@dataclass(frozen=True)
class CompareRow:
    """One model's row: exact integers; the receptive field of its final feature map; for a zoo
    model its family and published ImageNet accuracy with its source (None elsewhere, never an
    estimate); with ``--bench``, the device and the measured median latency (ms) and
    throughput (images/s), None when not measured."""

    name: str
    source: str
    batch: int | None
    params: int
    macs: int
    flops: int
    weight_bytes: int
    peak_activation_bytes: int
    depth: int
    receptive_field: FinalField | None
    family: str | None
    top1: float | None
    top5: float | None
    accuracy_source: str | None
    accuracy_evaluation: str | None
    device: str | None = None
    latency_ms: float | None = None
    throughput: float | None = None

    @property
    def measured(self) -> bool:
        return self.latency_ms is not None

    def to_dict(self) -> dict[str, Any]:
        """The row of ``netspec compare --format json``: the receptive field as its layer and
        size and stride lists; the measurements only where measured."""
        final = self.receptive_field
        data: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "batch": self.batch,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "depth": self.depth,
            "receptive_field": None
            if final is None
            else {"layer": final.layer, "size": list(final.field.size), "stride": list(final.field.stride)},
            "family": self.family,
            "top1": self.top1,
            "top5": self.top5,
            "accuracy_source": self.accuracy_source,
            "accuracy_evaluation": self.accuracy_evaluation,
        }
        if self.measured:
            data |= {"device": self.device, "latency_ms": self.latency_ms, "throughput": self.throughput}
        return data


def compare_row(analysis: TypedGraph, name: str, source: str, entry: ZooEntry | None = None) -> CompareRow:
    """One model's row; a zoo model's catalogue ``entry`` gives its family and published accuracy."""
    totals = analysis.counts.totals
    imagenet = entry.imagenet if entry is not None else None
    return CompareRow(
        name=name,
        source=source,
        batch=analysis.batch,
        params=totals.params,
        macs=totals.macs,
        flops=totals.flops,
        weight_bytes=totals.weight_bytes,
        peak_activation_bytes=totals.peak_activation_bytes,
        depth=weighted_depth(analysis),
        receptive_field=final_feature_field(analysis),
        family=entry.family if entry is not None else None,
        top1=imagenet.top1 if imagenet is not None else None,
        top5=imagenet.top5 if imagenet is not None else None,
        accuracy_source=imagenet.source if imagenet is not None else None,
        accuracy_evaluation=imagenet.evaluation if imagenet is not None else None,
    )


def compare_rows(
    analyses: Sequence[TypedGraph],
    sources: Sequence[str],
    entries: Sequence[ZooEntry | None] | None = None,
) -> list[CompareRow]:
    """A row per analysed model, in argument order; models sharing a name get their file's stem."""
    names = unique_names([a.graph.name for a in analyses], sources)
    if entries is None:
        entries = [catalogued(source) for source in sources]
    rows = zip(analyses, names, sources, entries, strict=True)
    return [compare_row(a, n, s, e) for a, n, s, e in rows]


def with_measurements(rows: Sequence[CompareRow], results: Sequence[BenchResult]) -> list[CompareRow]:
    """``rows`` with each model's measured median latency (ms), throughput (images/s) and device."""
    return [
        replace(
            row, device=result.device, latency_ms=result.latency.median * 1e3, throughput=result.throughput
        )
        for row, result in zip(rows, results, strict=True)
    ]


def _sort_value(row: CompareRow, key: str) -> float:
    if key == "receptive_field":
        final = row.receptive_field
        return -1 if final is None else final.field.size[0] * final.field.size[1]
    value: float | None = getattr(row, key)
    return -1 if value is None else value


def check_sort_key(key: str, benched: bool) -> None:
    """Raise a UsageError unless rows can be sorted by ``key``."""
    if key not in SORT_KEYS:
        hint = did_you_mean(key, SORT_KEYS)
        raise UsageError(
            f"cannot sort by '{key}'" + (f"; {hint}" if hint else "") + f" (keys: {', '.join(SORT_KEYS)})"
        )
    if key in BENCH_KEYS and not benched:
        raise UsageError(f"sorting by '{key}' needs measurements: add --bench")


def sort_rows(rows: Sequence[CompareRow], key: str) -> list[CompareRow]:
    """Rows ordered by ``key``: names ascending, numbers descending (receptive fields by area;
    models without a published accuracy last), ties in name order."""
    check_sort_key(key, all(row.measured for row in rows))
    by_name = sorted(rows, key=lambda row: row.name)
    if key == "name":
        return by_name
    return sorted(by_name, key=lambda row: _sort_value(row, key), reverse=True)


def compare_graphs(
    sources: Sequence[str],
    graphs: Sequence[Graph],
    *,
    batch: int = 1,
    bench: bool = False,
    device: str = "auto",
    progress: Progress = QUIET,
    limits: Limits = DEFAULT_LIMITS,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    entries: Sequence[ZooEntry | None] | None = None,
) -> list[CompareRow]:
    """The comparison rows of ``graphs`` (read from ``sources``) at ``batch`` with
    ``input_shapes``, in argument order, tensor sizes within ``limits``; with ``bench``, each
    model's latency and throughput measured by :mod:`netspec.bench` with its default warm-up
    and iterations. Each model's catalogue entry (published accuracy) is ``entries``' where
    given, else the zoo model the source names (:func:`netspec.zoo.catalogued`)."""
    analyses = [bind(graph, batch, input_shapes, limits=limits) for graph in graphs]
    rows = compare_rows(analyses, sources, entries)
    if bench:
        models = [ModelSource.spec(s, g, input_shapes) for s, g in zip(sources, graphs, strict=True)]
        rows = with_measurements(rows, run_benchmarks(models, [batch], device=device, progress=progress))
    return rows


def _table(rows: Sequence[CompareRow]) -> tuple[list[str], list[list[str]], set[int]]:
    benched = bool(rows) and rows[0].measured
    published = any(row.top1 is not None for row in rows)
    header = ["model", "params", "MACs", "FLOPs", "weights", "peak activations", "depth", "RF/stride"]
    if published:
        header += ["top-1", "top-5"]
    if benched:
        header += ["latency ms", "images/s"]
    table = []
    for row in rows:
        cells = [
            row.name,
            human_count(row.params),
            human_count(row.macs),
            human_count(row.flops),
            human_bytes(row.weight_bytes),
            human_bytes(row.peak_activation_bytes),
            str(row.depth),
            field_text(None if row.receptive_field is None else row.receptive_field.field),
        ]
        if published:
            cells += [percent(row.top1), percent(row.top5)]
        if benched:
            cells += [f"{row.latency_ms:.3g}", f"{row.throughput:,.1f}"]
        table.append(cells)
    return header, table, set(range(1, len(header)))


def _csv_cells(row: CompareRow) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.to_dict().items():
        if key != "receptive_field":
            flat[key] = value
            continue
        flat["rf_layer"] = value["layer"] if value else None
        flat["rf_size"] = "x".join(map(str, value["size"])) if value else None
        flat["rf_stride"] = "x".join(map(str, value["stride"])) if value else None
    return flat


def render_rows(rows: Sequence[CompareRow], fmt: str) -> str:
    """Text (a conventions header and a table), Markdown, CSV, or JSON (the list of rows)."""
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=1) + "\n"
    if fmt == "csv":
        flat = [_csv_cells(row) for row in rows]
        return render_csv_table(list(flat[0]), [list(r.values()) for r in flat])
    header, table, numeric = _table(rows)
    note = f"batch {rows[0].batch}; {CONVENTIONS}"
    if any(row.top1 is not None for row in rows):
        note += "; top-1/top-5: published ImageNet accuracy % (netspec zoo --format json: sources)"
    if rows[0].measured:
        note += f"; latency: median onnxruntime run on {rows[0].device} (netspec bench)"
    if fmt == "md":
        return f"_{note}_\n\n" + render_markdown_table(header, table, numeric)
    return textwrap.fill(note, NOTE_WIDTH) + "\n\n" + render_text_table(header, table, numeric)
