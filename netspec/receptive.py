"""Receptive fields by the standard recurrence (Araujo et al., Distill 2019):
r_out = r_in + (k − 1)·j_in, j_out = j_in·s, start_out = start_in + ((k − 1)/2 − p)·j_in,
per spatial axis, taking the largest field over the paths into a node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netspec.graph import Graph, TensorType
from netspec.layers.base import Window


@dataclass(frozen=True)
class ReceptiveField:
    """Size, stride (jump) and offset (centre of the first output's field, in input pixels)."""

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[float, float]


_INPUT_FIELD = ReceptiveField((1, 1), (1, 1), (0.0, 0.0))


def _step(field: ReceptiveField, windows: tuple[Window, Window]) -> ReceptiveField:
    """One layer of the recurrence, on both axes."""
    h, w = (
        (
            size + (window.kernel - 1) * jump,
            jump * window.stride,
            start + ((window.kernel - 1) / 2 - window.pad) * jump,
        )
        for size, jump, start, window in zip(field.size, field.stride, field.offset, windows, strict=True)
    )
    return ReceptiveField((h[0], w[0]), (h[1], w[1]), (h[2], w[2]))


def receptive_fields(graph: Graph, types: Mapping[str, TensorType]) -> dict[str, ReceptiveField | None]:
    """The receptive field of every tensor with a spatial layout (None elsewhere)."""
    fields: dict[str, ReceptiveField | None] = {}
    for node in graph.nodes:
        if not node.inputs:
            spatial = types[node.outputs[0]].rank == 4
            fields[node.outputs[0]] = _INPUT_FIELD if spatial else None
            continue
        inputs = [types[t] for t in node.inputs]
        outputs = [types[t] for t in node.outputs]
        windows = node.layer.spatial_windows(inputs, outputs)
        incoming = [fields.get(t) for t in node.inputs]
        if windows is None or any(f is None for f in incoming):
            result = None
        else:
            widest = max(incoming, key=lambda f: f.size[0] * f.size[1])  # type: ignore[union-attr]
            assert widest is not None
            result = _step(widest, windows)
        for tensor in node.outputs:
            fields[tensor] = result
    return fields
