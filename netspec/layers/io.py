"""Network inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import Arity, Layer, LayerParams, Shape, param, register
from netspec.lazy import numpy as np


@register
class InputLayer(Layer["InputLayer.Params"]):
    """A network input of a declared shape; ``N`` (any name) is a symbolic dimension.

    Written ``input data: [N, 3, 224, 224]`` or ``Input data { shape: [...] }``.
    Counts nothing.
    """

    type_name = "Input"
    arity = Arity(0, 0)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        shape: tuple[int | str, ...] = param(Shape(), doc="dimensions; names are symbolic")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (TensorType(self.params.shape),)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError("inputs are fed, not computed")
