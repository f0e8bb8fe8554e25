"""Elementwise activations, Dropout (the identity at inference) and Softmax."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from netspec.graph import TensorType
from netspec.layers.base import Float, Int, Layer, LayerError, normalize_axis, numel, param, register

if TYPE_CHECKING:
    from netspec.export.onnx import NodeEmitter


class Elementwise(Layer):
    """A layer whose output has its input's type; FLOPs = ``flops_per_element`` × elements."""

    flops_per_element = 1

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return self.flops_per_element * numel(outputs[0])


@register
class ReLU(Elementwise):
    """max(x, 0), or leaky with ``negative_slope`` (x < 0: slope·x).

    FLOPs = 1 per element (a comparison), 2 when leaky (and a multiply).
    """

    type_name = "ReLU"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        negative_slope: float = param(Float(), 0.0, "slope for x < 0 (0: plain ReLU)")

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]
        return 1 if self.params.negative_slope == 0 else 2

    def emit(self, node: NodeEmitter) -> None:
        if self.params.negative_slope == 0:
            node.add("Relu", node.inputs, node.outputs)
        else:
            node.add("LeakyRelu", node.inputs, node.outputs, alpha=self.params.negative_slope)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        return [np.where(x > 0, x, x * self.params.negative_slope)]


@register
class TanH(Elementwise):
    """tanh(x). FLOPs = 1 per element."""

    type_name = "TanH"

    def emit(self, node: NodeEmitter) -> None:
        node.add("Tanh", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.tanh(np.asarray(inputs[0], np.float64))]


@register
class Sigmoid(Elementwise):
    """1 / (1 + exp(−x)). FLOPs = 1 per element."""

    type_name = "Sigmoid"

    def emit(self, node: NodeEmitter) -> None:
        node.add("Sigmoid", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [1.0 / (1.0 + np.exp(-np.asarray(inputs[0], np.float64)))]


@register
class Dropout(Elementwise):
    """Dropout: the identity at inference (emitted as Identity, which onnxruntime removes).

    FLOPs = 0.
    """

    type_name = "Dropout"
    flops_per_element = 0

    @dataclass(frozen=True, kw_only=True)
    class Params:
        dropout_ratio: float = param(
            Float(min=0.0, max=1.0), 0.5, "training-time drop probability, in [0, 1)"
        )

    def check(self) -> None:
        if self.params.dropout_ratio >= 1.0:
            raise LayerError(
                f"dropout_ratio must be below 1, got {self.params.dropout_ratio}", param="dropout_ratio"
            )

    def emit(self, node: NodeEmitter) -> None:
        node.add("Identity", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64)]


@register
class Softmax(Elementwise):
    """exp(x) / Σ exp(x) along ``axis`` (default: channels).

    FLOPs = 3 per element: an exponential, an add into the sum and a divide (the maximum
    subtracted for numerical stability is not counted).
    """

    type_name = "Softmax"
    flops_per_element = 3

    @dataclass(frozen=True, kw_only=True)
    class Params:
        axis: int = param(Int(), 1, "the axis normalised (negative: from the end)")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        normalize_axis(self.params.axis, inputs[0])
        return (inputs[0],)

    def emit(self, node: NodeEmitter) -> None:
        # NOTE: opset >= 13 normalises along this one axis; older opsets flattened from it.
        axis = normalize_axis(self.params.axis, node.input_types[0])
        node.add("Softmax", node.inputs, node.outputs, axis=axis)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        shifted = np.exp(x - x.max(axis=self.params.axis, keepdims=True))
        return [shifted / shifted.sum(axis=self.params.axis, keepdims=True)]
