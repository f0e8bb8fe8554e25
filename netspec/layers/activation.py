"""Elementwise activations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from netspec.graph import TensorType
from netspec.layers.base import Float, Layer, numel, param, register

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
