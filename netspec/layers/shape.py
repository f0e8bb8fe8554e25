"""Layers that only rearrange dimensions: Caffe Flatten and Reshape.

Both lower to ONNX Reshape (or Flatten) with a constant target shape computed at emit time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from netspec.graph import Dim, TensorType
from netspec.layers.base import (
    Int,
    Layer,
    LayerError,
    ListOf,
    normalize_axis,
    param,
    register,
    static_dim,
)

if TYPE_CHECKING:
    from netspec.export.onnx import NodeEmitter


def reshape_target(source: TensorType, target: Sequence[Dim]) -> list[int]:
    """The ONNX Reshape ``shape`` input that turns ``source`` into ``target`` dims.

    Static dims are written out. A symbolic dim (the batch) becomes 0, ONNX's "copy the input
    dim at this index", when the input has it at the same index, else -1 ("infer it").
    """
    shape: list[int] = []
    for index, dim in enumerate(target):
        if isinstance(dim, int):
            shape.append(dim)
        elif index < source.rank and source.dims[index] == dim:
            shape.append(0)
        else:
            shape.append(-1)
    if shape.count(-1) > 1:
        raise LayerError(
            f"cannot express the reshape of {source} to "
            f"[{', '.join(map(str, target))}] with a constant shape; fix the batch size"
        )
    return shape


def emit_reshape(
    node: NodeEmitter,
    source: str,
    source_type: TensorType,
    target: Sequence[Dim],
    output: str,
    suffix: str = "shape",
) -> None:
    """Add an ONNX Reshape of ``source`` to ``target`` dims, writing ``output``."""
    shape = node.constant(suffix, np.array(reshape_target(source_type, target), np.int64))
    node.add("Reshape", [source, shape], [output])


def merged_dim(tensor: TensorType, start: int, end: int) -> Dim:
    """The product of ``tensor``'s dims [start, end); a lone symbolic dim stays symbolic."""
    if end - start == 1:
        return tensor.dims[start]
    return math.prod(static_dim(tensor, axis) for axis in range(start, end))


@register
class Flatten(Layer):
    """Merge axes ``axis`` … ``end_axis`` (inclusive) into one (Caffe Flatten).

    ``[N, C, H, W]`` becomes ``[N, C·H·W]`` with the defaults. Counts nothing.
    """

    type_name = "Flatten"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        axis: int = param(Int(), 1, "first axis to merge (negative: from the end)")
        end_axis: int = param(Int(), -1, "last axis to merge, inclusive (negative: from the end)")

    def axes(self, x: TensorType) -> tuple[int, int]:
        """The merged range as [start, end) of non-negative axes."""
        start = normalize_axis(self.params.axis, x)
        end = normalize_axis(self.params.end_axis, x, "end_axis") + 1
        if end <= start:
            raise LayerError(
                f"end_axis {self.params.end_axis} comes before axis {self.params.axis} "
                f"for the {x.rank}-D input {x}",
                param="end_axis",
            )
        return start, end

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        start, end = self.axes(x)
        dims = (*x.dims[:start], merged_dim(x, start, end), *x.dims[end:])
        return (TensorType(dims, x.dtype),)

    def emit(self, node: NodeEmitter) -> None:
        x = node.input_types[0]
        start, end = self.axes(x)
        if start == 1 and end == x.rank:
            # NOTE: ONNX Flatten always yields 2-D [prod(dims[:axis]), prod(dims[axis:])], which is
            # Caffe's result only when merging everything after the batch axis.
            node.add("Flatten", node.inputs, node.outputs, axis=1)
        else:
            emit_reshape(node, node.inputs[0], x, node.output_types[0].dims, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        start, end = self.axes(TensorType(x.shape))
        return [x.reshape(*x.shape[:start], -1, *x.shape[end:])]


@register
class Reshape(Layer):
    """Caffe Reshape: replace the input dims [axis, axis + num_axes) by ``shape``, where 0 copies
    the input dim at that position and one -1 is inferred from the element count.

    ``num_axes: -1`` replaces everything from ``axis`` on; a negative ``axis`` counts from the
    end, -1 meaning after the last axis (Caffe's rule). Counts nothing.
    """

    type_name = "Reshape"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        shape: tuple[int, ...] = param(ListOf(Int(min=-1)), doc="new dims: 0 copies, -1 is inferred")
        axis: int = param(Int(), 0, "first input axis replaced (negative: from the end, -1 = after the last)")
        num_axes: int = param(Int(min=-1), -1, "how many input axes are replaced (-1: all from axis on)")

    def check(self) -> None:
        if list(self.params.shape).count(-1) > 1:
            raise LayerError(
                f"shape {list(self.params.shape)} has more than one -1; only one dimension can be inferred",
                param="shape",
            )

    def replaced(self, x: TensorType) -> tuple[int, int]:
        """The replaced input axes as [start, end)."""
        p = self.params
        start = p.axis if p.axis >= 0 else x.rank + p.axis + 1
        if not 0 <= start <= x.rank:
            raise LayerError(f"axis {p.axis} is out of range for the {x.rank}-D input {x}", param="axis")
        end = x.rank if p.num_axes == -1 else start + p.num_axes
        if end > x.rank:
            raise LayerError(
                f"axis {p.axis} with num_axes {p.num_axes} goes past the last axis of "
                f"the {x.rank}-D input {x}",
                param="num_axes",
            )
        return start, end

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        start, end = self.replaced(x)
        wanted = f"[{', '.join(map(str, self.params.shape))}]"
        new_dims: list[Dim] = []
        for i, dim in enumerate(self.params.shape):
            if dim == 0 and start + i >= x.rank:
                raise LayerError(
                    f"shape {wanted} copies input axis {start + i} (a 0 at position {i}), "
                    f"but the input {x} has only {x.rank} axes",
                    param="shape",
                )
            new_dims.append(x.dims[start + i] if dim == 0 else dim)
        # Dims copied from their own position pass through unchanged (a symbolic batch may only
        # do that); every other replaced or new dim must be static to count elements.
        kept = {start + i for i, dim in enumerate(self.params.shape) if dim == 0 and start + i < end}
        count = math.prod(static_dim(x, axis) for axis in range(start, end) if axis not in kept)
        known = 1
        for i, dim in enumerate(new_dims):
            if start + i in kept or dim == -1:
                continue
            if not isinstance(dim, int):
                raise LayerError(
                    f"shape {wanted} moves the symbolic dim '{dim}' of {x}; "
                    "fix the batch size or copy it at its own position",
                    param="shape",
                )
            known *= dim
        if -1 in new_dims:
            if count % known:
                raise LayerError(
                    f"cannot reshape {x} with shape {wanted}: the {count} elements of the "
                    f"replaced axes do not divide into parts of {known}",
                    param="shape",
                )
            new_dims[new_dims.index(-1)] = count // known
        elif count != known:
            raise LayerError(
                f"cannot reshape {x} with shape {wanted}: the replaced axes hold {count} "
                f"elements, the new shape {known}",
                param="shape",
            )
        return (TensorType((*x.dims[:start], *new_dims, *x.dims[end:]), x.dtype),)

    def emit(self, node: NodeEmitter) -> None:
        emit_reshape(node, node.inputs[0], node.input_types[0], node.output_types[0].dims, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        (out,) = self.infer([TensorType(x.shape)])
        return [x.reshape(out.dims)]
