"""Layers that merge several tensors: Caffe Eltwise (residual sums), Concat (Inception,
DenseNet) and SENet's Axpy."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

from netspec.graph import TensorType
from netspec.layers.base import (
    Arity,
    Emitter,
    Enum,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    ListOf,
    NoParams,
    aligned_shape,
    emit_aligned,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np


@register
class Eltwise(Layer["Eltwise.Params"]):
    """Elementwise SUM (optionally weighted by ``coeff``), PROD or MAX of inputs of one shape.

    FLOPs = (inputs − 1) per element, plus 1 per element for each ``coeff`` other than 1.
    """

    type_name = "Eltwise"
    output_memory = "in_place"
    arity = Arity(2, None)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        operation: str = param(Enum(("SUM", "PROD", "MAX")), "SUM", "SUM, PROD or MAX")
        coeff: tuple[float, ...] | None = param(
            ListOf(Float(), min_length=1), None, "SUM only: one factor per input"
        )

    def check(self) -> None:
        if self.params.coeff is not None and self.params.operation != "SUM":
            raise LayerError(f"coeff applies to SUM only, not {self.params.operation}", param="coeff")

    def coefficients(self, count: int) -> tuple[float, ...]:
        return (1.0,) * count if self.params.coeff is None else self.params.coeff

    def input_scales(self, count: int) -> tuple[float, ...] | None:
        return self.coefficients(count) if self.params.operation == "SUM" else None

    def with_input_scales(self, scales: tuple[float, ...]) -> Layer:
        coeff = None if all(scale == 1.0 for scale in scales) else tuple(scales)
        return type(self)(dataclasses.replace(self.params, coeff=coeff), self.output_count)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        if any(t.dims != inputs[0].dims for t in inputs):
            # The infer stage appends every input's shape to messages without a param.
            raise LayerError(
                "needs inputs of one shape",
                hint="Eltwise does not broadcast; a projection shortcut can match the shapes",
            )
        if self.params.coeff is not None and len(self.params.coeff) != len(inputs):
            raise LayerError(
                f"has {len(self.params.coeff)} coeff values for {len(inputs)} inputs; give one per input",
                param="coeff",
            )
        return (inputs[0],)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        scaled = sum(1 for c in self.coefficients(len(inputs)) if c != 1.0)
        return (len(inputs) - 1 + scaled) * numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        operation = self.params.operation
        if operation == "PROD":
            # NOTE: ONNX Mul is binary (Sum and Max are variadic): chain it.
            product = node.inputs[0]
            for index, operand in enumerate(node.inputs[1:], start=1):
                last = index == len(node.inputs) - 1
                result = node.outputs[0] if last else node.temp(f"product_{index}")
                node.add("Mul", [product, operand], [result])
                product = result
            return
        if operation == "MAX":
            node.add("Max", node.inputs, node.outputs)
            return
        terms = []
        for index, (tensor, factor) in enumerate(
            zip(node.inputs, self.coefficients(len(node.inputs)), strict=True)
        ):
            if factor == 1.0:
                terms.append(tensor)
                continue
            scaled = node.temp(f"scaled_{index}")
            node.add("Mul", [tensor, node.constant(f"coeff_{index}", np.array(factor, np.float32))], [scaled])
            terms.append(scaled)
        # NOTE: two terms as Add, what exporters write and onnxruntime's quantiser turns into
        # QLinearAdd (it leaves Sum in float).
        node.add("Add" if len(terms) == 2 else "Sum", terms, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = [np.asarray(x, np.float64) for x in inputs]
        if self.params.operation == "PROD":
            return [reduce(np.multiply, arrays)]
        if self.params.operation == "MAX":
            return [reduce(np.maximum, arrays)]
        return [reduce(np.add, (c * x for c, x in zip(self.coefficients(len(arrays)), arrays, strict=True)))]


@register
class Concat(Layer["Concat.Params"]):
    """Concatenation along ``axis``; every other dim must agree. Counts nothing."""

    type_name = "Concat"
    arity = Arity(1, None)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "the axis joined (negative: from the end)")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        first = inputs[0]
        if any(t.rank != first.rank for t in inputs):
            raise LayerError("needs inputs of one rank")
        axis = normalize_axis(self.params.axis, first)
        others = [d for i, d in enumerate(first.dims) if i != axis]
        for tensor in inputs[1:]:
            if [d for i, d in enumerate(tensor.dims) if i != axis] != others:
                raise LayerError(
                    f"needs inputs that agree on every axis except the concatenation axis {axis}"
                )
        joined = sum(static_dim(t, axis) for t in inputs) if len(inputs) > 1 else first.dims[axis]
        return (TensorType((*first.dims[:axis], joined, *first.dims[axis + 1 :]), first.dtype),)

    def emit(self, node: Emitter) -> None:
        axis = normalize_axis(self.params.axis, node.input_types[0])
        node.add("Concat", node.inputs, node.outputs, axis=axis)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.concatenate([np.asarray(x, np.float64) for x in inputs], axis=self.params.axis)]


@register
class Axpy(Layer[NoParams]):
    """SENet's Axpy (Caffe fork): a·x + y for inputs ``[a, x, y]``, where a holds one factor per
    image and channel ([N, C] or [N, C, 1, 1]) and x and y share one shape [N, C, ...].

    FLOPs = 2 per output element (a multiply and an add).
    """

    type_name = "Axpy"
    arity = Arity(3, 3)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        factor, x, y = inputs
        if x.dims != y.dims:
            raise LayerError("needs its 2nd and 3rd inputs (x and y in a·x + y) of one shape")
        if x.rank < 2:
            raise LayerError(f"expects inputs with a channel axis (N, C, ...), got {x.rank}-D {x}")
        if factor.dims not in (x.dims[:2], aligned_shape(x.dims[:2], x.rank, 0)):
            raise LayerError(
                f"needs a first input of one factor per image and channel, "
                f"[{x.dims[0]}, {x.dims[1]}] or {TensorType(aligned_shape(x.dims[:2], x.rank, 0))}"
            )
        return (x,)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        factor = emit_aligned(
            node, node.inputs[0], node.input_types[0], node.input_types[1].rank, 0, "factor"
        )
        product = node.temp("product")
        node.add("Mul", [factor, node.inputs[1]], [product])
        node.add("Add", [product, node.inputs[2]], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        factor, x, y = (np.asarray(t, np.float64) for t in inputs)
        return [factor.reshape(aligned_shape(factor.shape, x.ndim, 0)) * x + y]
