"""Receptive fields by the standard recurrence (Araujo et al., Distill 2019):
r_out = r_in + (k − 1)·j_in, j_out = j_in·s, start_out = start_in + ((k − 1)/2 − p)·j_in,
per spatial axis, taking the largest field over the paths into a node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netspec.graph import Graph, TensorType


@dataclass(frozen=True)
class ReceptiveField:
    """Size, stride (jump) and offset (centre of the first output's field, in input pixels)."""

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[float, float]


_INPUT_FIELD = ReceptiveField((1, 1), (1, 1), (0.0, 0.0))


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
            result = ReceptiveField(
                size=tuple(r + (w.kernel - 1) * j for r, w, j in zip(widest.size, windows, widest.stride)),  # type: ignore[arg-type]
                stride=tuple(j * w.stride for j, w in zip(widest.stride, windows)),  # type: ignore[arg-type]
                offset=tuple(
                    start + ((w.kernel - 1) / 2 - w.pad) * j
                    for start, w, j in zip(widest.offset, windows, widest.stride)
                ),  # type: ignore[arg-type]
            )
        for tensor in node.outputs:
            fields[tensor] = result
    return fields
