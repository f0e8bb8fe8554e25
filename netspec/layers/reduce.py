"""Layers that reduce along an axis: Caffe ArgMax (the top-k indices, and optionally values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import Dim, TensorType
from netspec.layers.base import (
    Bool,
    Emitter,
    Int,
    Layer,
    LayerError,
    LayerParams,
    emit_reshape,
    normalize_axis,
    numel,
    param,
    register,
    spatial_numel,
    static_dim,
)
from netspec.lazy import numpy as np


@register
class ArgMax(Layer["ArgMax.Params"]):
    """Caffe ArgMax: the indices of the ``top_k`` largest values, in decreasing order of value, as
    floats (Caffe's blobs are float).

    Without ``axis`` it ranks each image's values flattened, giving [N, 1, top_k] (padded with ones
    to the input's rank), or [N, 2, top_k] with ``out_max_val``: the indices, then the values.
    With ``axis`` it ranks along that axis, which becomes top_k long, and ``out_max_val`` gives
    the values instead of the indices. Of equal values the first ranks first (Caffe's sort puts
    the later first). FLOPs = 1 per input element (a comparison).
    """

    type_name = "ArgMax"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        out_max_val: bool = param(Bool(), False, "also (no axis) or instead (with axis) give the values")
        top_k: int = param(Int(min=1), 1, "how many of the largest values")
        axis: int | None = param(Int(), None, "rank along this axis (negative: from the end); unset: all")

    def ranked(self, x: TensorType) -> tuple[int | None, int]:
        """The axis ranked (None: each image flattened) and how many values it ranks."""
        if self.params.axis is None:
            if x.rank < 2:
                raise LayerError(f"expects an input with a batch axis (N, ...), got {x.rank}-D {x}")
            return None, spatial_numel(x)
        axis = normalize_axis(self.params.axis, x)
        return axis, static_dim(x, axis)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        p = self.params
        axis, count = self.ranked(x)
        if p.top_k > count:
            where = "each image's values" if axis is None else f"axis {axis}"
            raise LayerError(f"top_k {p.top_k} exceeds the {count} values of {where} in {x}", param="top_k")
        dims: list[Dim]
        if axis is None:
            dims = [x.dims[0], 2 if p.out_max_val else 1, p.top_k] + [1] * (x.rank - 3)
        else:
            dims = [*x.dims[:axis], p.top_k, *x.dims[axis + 1 :]]
        return (TensorType(tuple(dims), "float32"),)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(inputs[0])

    def emit(self, node: Emitter) -> None:
        from onnx import TensorProto

        p = self.params
        x = node.input_types[0]
        axis, _ = self.ranked(x)
        source = node.inputs[0]
        if axis is None and x.rank > 2:
            source = node.temp("flat")
            node.add("Flatten", node.inputs, [source], axis=1)
        ranked_axis = 1 if axis is None else axis
        values, indices = node.temp("values"), node.temp("indices")
        if p.top_k == 1 and not p.out_max_val:
            node.add("ArgMax", [source], [indices], axis=ranked_axis, keepdims=1)
        else:
            k = node.constant("k", np.array([p.top_k], np.int64))
            node.add("TopK", [source, k], [values, indices], axis=ranked_axis, largest=1, sorted=1)
        if axis is not None:
            if p.out_max_val:
                node.add("Identity", [values], node.outputs)
            else:
                node.add("Cast", [indices], node.outputs, to=TensorProto.FLOAT)
            return
        # Each image's [k] indices (then its [k] values) become [N, 1 or 2, k, 1, ...].
        ranked = node.temp("ranked")
        node.add("Cast", [indices], [ranked], to=TensorProto.FLOAT)
        if p.out_max_val:
            both = node.temp("indices_and_values")
            node.add("Concat", [ranked, values], [both], axis=1)
            ranked = both
        flat = TensorType((x.dims[0], (2 if p.out_max_val else 1) * p.top_k))
        emit_reshape(node, ranked, flat, node.output_types[0].dims, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        axis, _ = self.ranked(TensorType(x.shape))
        source = x.reshape(x.shape[0], -1) if axis is None else x
        ranked_axis = 1 if axis is None else axis
        # A stable sort of the negated values: largest first, equal values in index order.
        order = np.argsort(-source, axis=ranked_axis, kind="stable")
        top = np.take(order, np.arange(p.top_k), axis=ranked_axis)
        values = np.take_along_axis(source, top, axis=ranked_axis)
        if axis is not None:
            return [values if p.out_max_val else top.astype(np.float64)]
        rows = [top.astype(np.float64), values] if p.out_max_val else [top.astype(np.float64)]
        (out,) = self.infer([TensorType(x.shape)])
        return [np.stack(rows, axis=1).reshape(tuple(int(d) for d in out.dims))]
