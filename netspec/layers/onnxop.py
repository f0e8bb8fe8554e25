"""An ONNX operator netspec has no layer for, kept as it is by the ONNX front end so that a
report of any ONNX model completes (its counts are 0 and the report says so)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netspec.graph import BATCH_SYMBOL, TensorType
from netspec.layers.base import (
    Arity,
    Emitter,
    Kind,
    Layer,
    LayerError,
    LayerParams,
    ParamSpec,
    ParamValue,
    param,
    register,
)
from netspec.lazy import numpy as np


@dataclass(frozen=True)
class _AsRead(Kind):
    """A value the ONNX reader built itself (never written in a spec): taken as it is."""

    description = "a value read from an ONNX file"

    def convert(self, value: ParamValue) -> Any:
        return value


@register
class OnnxOp(Layer["OnnxOp.Params"]):
    """An ONNX node kept as it is (``op_type`` with its attributes), made only by the ONNX
    front end for operators netspec has no layer for; it cannot be written in a .net spec.

    Its output types are ONNX shape inference's. params = the sizes of its initializer inputs
    (LayerNormalization's scale and bias, say); MACs = FLOPs = 0 (not counted: the report's
    header says the totals exclude these nodes).
    """

    type_name = "OnnxOp"
    arity = Arity(0, None)
    uncounted = True

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        op_type: str = param(_AsRead(), doc="the ONNX operator")
        domain: str = param(_AsRead(), "", "the operator's domain ('' for ai.onnx)")
        attributes: tuple[tuple[str, Any], ...] = param(_AsRead(), (), "the node's attributes")
        roles: tuple[str, ...] = param(
            _AsRead(),
            (),
            "each ONNX input: 'x' a tensor input, 'pK' stored array K, 'c' a constant, '' absent",
        )
        constants: tuple[tuple[int, str, tuple[int, ...], tuple[float, ...]], ...] = param(
            _AsRead(), (), "small constant inputs: (index, dtype, shape, values)"
        )
        array_shapes: tuple[tuple[int, ...], ...] = param(_AsRead(), (), "shapes of the stored arrays")
        output_types: tuple[TensorType, ...] = param(_AsRead(), (), "the outputs' types from ONNX inference")

    def check(self) -> None:
        if not self.params.output_types:
            raise LayerError(
                "OnnxOp stands for an ONNX node the ONNX reader could not map; a spec cannot use it",
                hint="write the netspec layer that computes the same thing",
            )

    def output_arity(self) -> Arity:
        count = max(len(self.params.output_types), 1)
        return Arity(count, count)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        batch = inputs[0].dims[0] if inputs and inputs[0].rank else BATCH_SYMBOL
        return tuple(
            TensorType(tuple(batch if d == BATCH_SYMBOL else d for d in t.dims), t.dtype)
            for t in self.params.output_types
        )

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        return tuple(
            ParamSpec(f"input{self._index(k)}", shape) for k, shape in enumerate(self.params.array_shapes)
        )

    def _index(self, array: int) -> int:
        return self.params.roles.index(f"p{array}")

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None  # unknown: receptive fields stop here

    def emit(self, node: Emitter) -> None:
        constants = {index: (dtype, shape, values) for index, dtype, shape, values in self.params.constants}
        names: list[str] = []
        tensors = iter(node.inputs)
        for index, role in enumerate(self.params.roles):
            if role == "x":
                names.append(next(tensors))
            elif role.startswith("p"):
                names.append(node.param(f"input{index}"))
            elif role == "c":
                dtype, shape, values = constants[index]
                names.append(node.constant(f"input{index}", np.array(values, dtype).reshape(shape)))
            else:
                names.append("")
        node.add(self.params.op_type, names, node.outputs, **dict(self.params.attributes))

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        raise LayerError(f"netspec has no reference semantics for the ONNX operator {self.params.op_type}")
