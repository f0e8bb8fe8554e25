"""Per-layer and total counts: params, buffers, MACs, FLOPs, output and weight bytes, and the
peak of live activation memory along the execution order (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netspec.graph import DTYPE_SIZES, Graph, TensorType
from netspec.weights import node_arrays


@dataclass(frozen=True)
class LayerCounts:
    name: str
    type: str
    params: int
    buffers: int
    frozen: int
    macs: int
    flops: int
    output_bytes: int
    weight_bytes: int


@dataclass(frozen=True)
class Totals:
    params: int
    buffers: int
    frozen: int
    macs: int
    flops: int
    weight_bytes: int
    activation_bytes: int
    peak_activation_bytes: int
    layers: int


@dataclass(frozen=True)
class Counts:
    layers: tuple[LayerCounts, ...]
    totals: Totals


def count_graph(graph: Graph, types: Mapping[str, TensorType], dtype: str = "float32") -> Counts:
    """Count every layer of ``graph`` given fully static ``types`` (batch bound)."""
    element = DTYPE_SIZES[dtype]
    rows = []
    counted: set[str] = set()
    for node in graph.nodes:
        inputs = [types[t] for t in node.inputs]
        outputs = [types[t] for t in node.outputs]
        # An array shared by several layers (Caffe's param { name }) counts at its first user.
        arrays = [a for a in node_arrays(node, inputs) if a.name not in counted]
        counted.update(a.name for a in arrays)
        params = sum(a.spec.size for a in arrays if a.spec.learnable)
        buffers = sum(a.spec.size for a in arrays if not a.spec.learnable)
        rows.append(
            LayerCounts(
                name=node.name,
                type=node.type,
                params=params,
                buffers=buffers,
                frozen=sum(a.spec.size for a in arrays if a.spec.learnable and a.frozen),
                macs=node.layer.macs(inputs, outputs),
                flops=node.layer.flops(inputs, outputs),
                output_bytes=sum(t.numel for t in outputs) * element,
                weight_bytes=(params + buffers) * element,
            )
        )
    totals = Totals(
        params=sum(r.params for r in rows),
        buffers=sum(r.buffers for r in rows),
        frozen=sum(r.frozen for r in rows),
        macs=sum(r.macs for r in rows),
        flops=sum(r.flops for r in rows),
        weight_bytes=sum(r.weight_bytes for r in rows),
        activation_bytes=sum(r.output_bytes for r in rows),
        peak_activation_bytes=peak_activation_bytes(graph, types, element),
        layers=sum(1 for node in graph.nodes if node.inputs),
    )
    return Counts(tuple(rows), totals)


def peak_activation_bytes(graph: Graph, types: Mapping[str, TensorType], element: int) -> int:
    """The most activation bytes alive at once while the nodes run in order.

    A tensor is alive from the step that produces it to the last step that reads it (graph
    outputs to the end). While a node runs, its inputs and outputs are alive together.
    """
    last_use: dict[str, int] = {}
    for step, node in enumerate(graph.nodes):
        for tensor in node.inputs:
            last_use[tensor] = step
    end = len(graph.nodes)
    for tensor in graph.outputs:
        last_use[tensor] = end
    live = 0
    peak = 0
    releases: dict[int, int] = {}
    for step, node in enumerate(graph.nodes):
        for tensor in node.outputs:
            size = types[tensor].numel * element
            live += size
            releases[last_use.get(tensor, step)] = releases.get(last_use.get(tensor, step), 0) + size
        peak = max(peak, live)
        live -= releases.pop(step, 0)
    return peak
