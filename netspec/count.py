"""Per-layer and total counts: params, buffers, MACs, FLOPs, output and weight bytes, and the
peak of live activation memory along the execution order (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netspec.graph import DTYPE_SIZES, Graph, TensorType

if TYPE_CHECKING:
    from netspec.typed import TypedGraph


@dataclass(frozen=True)
class LayerCounts:
    """One layer's counts (its stored arrays, the shared ones at their first user)."""

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
    """The whole graph's counts and memory."""

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
    """Every layer's counts, in execution order, and the totals."""

    layers: tuple[LayerCounts, ...]
    totals: Totals


def count_graph(typed: TypedGraph) -> Counts:
    """Count every layer of ``typed`` (its types fully static: batch bound), bytes in its dtype."""
    graph = typed.graph
    element = DTYPE_SIZES[typed.dtype]
    rows = []
    counted: set[str] = set()
    # MACs and FLOPs per layer and types (a template's layers are one object in all instances).
    work: dict[tuple[object, ...], tuple[int, int]] = {}
    for typed_node in typed.nodes:
        node, inputs, outputs = typed_node.node, list(typed_node.inputs), list(typed_node.outputs)
        params = buffers = frozen = 0
        # An array shared by several layers (Caffe's param { name }) counts at its first user.
        arrays = [a for a in typed_node.arrays if a.name not in counted]
        counted.update(a.name for a in arrays)
        for array in arrays:
            if not array.spec.learnable:
                buffers += array.spec.size
                continue
            params += array.spec.size
            frozen += array.spec.size if array.frozen else 0
        key = (node.layer, *typed_node.inputs, *typed_node.outputs)
        found = work.get(key)
        if found is None:
            found = work[key] = (node.layer.macs(inputs, outputs), node.layer.flops(inputs, outputs))
        macs, flops = found
        rows.append(
            LayerCounts(
                name=node.name,
                type=node.type,
                params=params,
                buffers=buffers,
                frozen=frozen,
                macs=macs,
                flops=flops,
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
        # Layer outputs only: the graph inputs are the caller's (and the report's rows add up to this).
        activation_bytes=sum(
            r.output_bytes for r, node in zip(rows, graph.nodes, strict=True) if node.inputs
        ),
        peak_activation_bytes=peak_activation_bytes(graph, typed.types, element),
        layers=sum(1 for node in graph.nodes if node.inputs),
    )
    return Counts(tuple(rows), totals)


def peak_activation_bytes(graph: Graph, types: Mapping[str, TensorType], element: int) -> int:
    """The most activation bytes alive at once while the nodes run in their listed order.

    Convention (the report header and README state it): every tensor lives in a buffer, alive
    from the step that writes it to the last step that reads it (graph outputs to the end); while
    a node runs, its inputs and outputs are alive together. A layer's output gets a buffer of its
    own, except where its ``output_memory`` says otherwise: a "view" (Dropout, Flatten, Reshape,
    Split) shares its first input's buffer, and an "in_place" layer (elementwise activations,
    BatchNorm, Scale, Eltwise) writes into its first input's buffer when nothing reads that
    buffer later, it is not a graph input or output, and the sizes match. Caffe's in-place blobs
    are distinct tensors in netspec; this rule gives them back their shared buffer.
    """
    change = [0] * (len(graph.nodes) + 2)  # live bytes at step s: the sum of change[: s + 1]
    for buffer in _assign_buffers(graph, types, element):
        change[buffer.created] += buffer.size
        change[buffer.last_use + 1] -= buffer.size
    live = peak = 0
    for step in range(len(graph.nodes)):
        live += change[step]
        peak = max(peak, live)
    return peak


@dataclass
class _Buffer:
    """An activation buffer of the peak-memory rule: the steps it lives through."""

    created: int  # the step that writes it first
    size: int
    last_use: int  # the last step that reads it (len(graph.nodes) for graph outputs)
    pinned: bool = False  # holds a graph input or output


def _assign_buffers(graph: Graph, types: Mapping[str, TensorType], element: int) -> list[_Buffer]:
    """Give every tensor a buffer (the rule of :func:`peak_activation_bytes`); the buffers."""
    last_read: dict[str, int] = {}
    for step, node in enumerate(graph.nodes):
        for tensor in node.inputs:
            last_read[tensor] = step
    end = len(graph.nodes)
    for tensor in graph.outputs:
        last_read[tensor] = end
    pinned = {node.outputs[0] for node in graph.input_nodes} | set(graph.outputs)
    buffer_of: dict[str, _Buffer] = {}
    buffers: list[_Buffer] = []
    for step, node in enumerate(graph.nodes):
        storage = node.layer.output_memory if node.inputs else "new"
        source = buffer_of.get(node.inputs[0]) if node.inputs else None
        for index, tensor in enumerate(node.outputs):
            size = types[tensor].numel * element
            in_place = (
                storage == "in_place"
                and index == 0
                and source is not None
                and source.last_use <= step
                and not source.pinned
                and source.size == size
            )
            if source is not None and (storage == "view" or in_place):
                buffer = source
            else:
                buffer = _Buffer(step, size, step)
                buffers.append(buffer)
            buffer_of[tensor] = buffer
            buffer.last_use = max(buffer.last_use, last_read.get(tensor, step))
            buffer.pinned = buffer.pinned or tensor in pinned
    return buffers
