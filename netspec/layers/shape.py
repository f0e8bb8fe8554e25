"""Layers that only move data: Caffe Flatten and Reshape (rearranging dimensions), ShuffleNet's
ChannelShuffle, Crop, Slice, StridedSlice and Split (cutting or copying tensors), Pad (constant
padding).

All lower to ONNX ops with constant shapes, starts or sizes computed at emit time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from netspec.graph import Dim, TensorType
from netspec.layers.base import (
    IDENTITY_WINDOW,
    Arity,
    Emitter,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    ListOf,
    NoParams,
    Window,
    emit_reshape,
    normalize_axis,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np


def merged_dim(tensor: TensorType, start: int, end: int) -> Dim:
    """The product of ``tensor``'s dims [start, end); a lone symbolic dim stays symbolic."""
    if end - start == 1:
        return tensor.dims[start]
    return math.prod(static_dim(tensor, axis) for axis in range(start, end))


@register
class Flatten(Layer["Flatten.Params"]):
    """Merge axes ``axis`` … ``end_axis`` (inclusive) into one (Caffe Flatten).

    ``[N, C, H, W]`` becomes ``[N, C·H·W]`` with the defaults. Counts nothing.
    """

    type_name = "Flatten"
    output_memory = "view"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
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

    def emit(self, node: Emitter) -> None:
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
class Reshape(Layer["Reshape.Params"]):
    """Caffe Reshape: replace the input dims [axis, axis + num_axes) by ``shape``, where 0 copies
    the input dim at that position and one -1 is inferred from the element count.

    ``num_axes: -1`` replaces everything from ``axis`` on; a negative ``axis`` counts from the
    end, -1 meaning after the last axis (Caffe's rule). Counts nothing.
    """

    type_name = "Reshape"
    output_memory = "view"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
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
        for i, new_dim in enumerate(new_dims):
            if start + i in kept or new_dim == -1:
                continue
            if not isinstance(new_dim, int):
                raise LayerError(
                    f"shape {wanted} moves the symbolic dim '{new_dim}' of {x}; "
                    "fix the batch size or copy it at its own position",
                    param="shape",
                )
            known *= new_dim
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

    def emit(self, node: Emitter) -> None:
        emit_reshape(node, node.inputs[0], node.input_types[0], node.output_types[0].dims, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        (out,) = self.infer([TensorType(x.shape)])
        return [x.reshape(out.static_dims)]


@register
class ChannelShuffle(Layer["ChannelShuffle.Params"]):
    """ShuffleNet's channel shuffle (torch ``ChannelShuffle``, torchvision's ``channel_shuffle``,
    the Caffe forks' ShuffleChannel): the C channels, read as a [group, C/group] grid, are
    transposed, so output channel j·group + i is input channel i·(C/group) + j.

    Emitted as Reshape to [N, group, C/group, ...], Transpose, Reshape back. Counts nothing.
    """

    type_name = "ChannelShuffle"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        group: int = param(Int(min=1), doc="channel groups (ShuffleNet v2: 2)")

    def grid(self, x: TensorType) -> tuple[Dim, ...]:
        """The dims with the channels split into [group, C/group]."""
        if x.rank < 2:
            raise LayerError(f"expects an input with a channel axis (N, C, ...), got {x.rank}-D {x}")
        channels, group = static_dim(x, 1), self.params.group
        if channels % group:
            raise LayerError(f"group {group} does not divide the {channels} input channels", param="group")
        return (x.dims[0], group, channels // group, *x.dims[2:])

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.grid(inputs[0])
        return (inputs[0],)

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        grid = self.grid(x)
        split, transposed = node.temp("grid"), node.temp("transposed")
        emit_reshape(node, node.inputs[0], x, grid, split, suffix="grid_shape")
        perm = [0, 2, 1, *range(3, len(grid))]
        node.add("Transpose", [split], [transposed], perm=perm)
        transposed_type = TensorType(tuple(grid[i] for i in perm), x.dtype)
        emit_reshape(node, transposed, transposed_type, x.dims, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        group = self.params.group
        grid = x.reshape(x.shape[0], group, x.shape[1] // group, *x.shape[2:])
        return [grid.swapaxes(1, 2).reshape(x.shape)]


@register
class Crop(Layer["Crop.Params"]):
    """Caffe Crop: the first input cut to the dims of the second from ``axis`` on, each cropped
    axis starting at its ``offset`` (one value for every cropped axis, or one per axis; 0 when
    unset). FCN aligns its upsampled scores this way. Counts nothing.
    """

    type_name = "Crop"
    field_inputs = 1
    arity = Arity(2, 2)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 2, "first axis cropped; later axes are cropped too (negative: from the end)")
        offset: tuple[int, ...] | None = param(
            ListOf(Int(min=0), min_length=1),
            None,
            "crop start: one value for all cropped axes, or one per axis",
        )

    def crops(self, inputs: Sequence[TensorType]) -> list[tuple[int, int, Dim]]:
        """(axis, offset, size) of every cropped axis."""
        x, reference = inputs
        if x.rank != reference.rank:
            raise LayerError(
                f"needs inputs of one rank, got {x.rank}-D {x} and {reference.rank}-D {reference}"
            )
        start = normalize_axis(self.params.axis, x)
        axes = range(start, x.rank)
        offsets = self.params.offset or (0,)
        if len(offsets) == 1:
            offsets = offsets * len(axes)
        elif len(offsets) != len(axes):
            raise LayerError(
                f"has {len(offsets)} offset values for the {len(axes)} cropped axes "
                f"{start} to {x.rank - 1}; give one, or one per axis",
                param="offset",
            )
        result: list[tuple[int, int, Dim]] = []
        for axis, offset in zip(axes, offsets, strict=True):
            if offset == 0 and x.dims[axis] == reference.dims[axis]:
                result.append((axis, 0, x.dims[axis]))  # kept whole (a symbolic batch may be)
                continue
            size, available = static_dim(reference, axis), static_dim(x, axis)
            if offset + size > available:
                raise LayerError(
                    f"cannot crop axis {axis} to {size} at offset {offset}: the first input {x} "
                    f"has {available} there",
                    param="offset",
                )
            result.append((axis, offset, size))
        return result

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        dims = list(inputs[0].dims)
        for axis, _, size in self.crops(inputs):
            dims[axis] = size
        return (TensorType(tuple(dims), inputs[0].dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        if inputs[0].rank != 4:
            return None
        offsets = {axis: offset for axis, offset, _ in self.crops(inputs)}
        # Output pixel 0 is input pixel ``offset``: a window of one with negative padding.
        windows = [Window(1, 1, -offsets[axis]) if axis in offsets else IDENTITY_WINDOW for axis in (2, 3)]
        return (windows[0], windows[1])

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        cut = [(a, o, s) for a, o, s in self.crops(node.input_types) if (o, s) != (0, x.dims[a])]
        if not cut:
            node.add("Identity", node.inputs[:1], node.outputs)
            return
        starts = node.constant("starts", np.array([o for _, o, _ in cut], np.int64))
        ends = node.constant("ends", np.array([o + s for _, o, s in cut], np.int64))  # type: ignore[operator]  # emitted shapes are bound
        axes = node.constant("axes", np.array([a for a, _, _ in cut], np.int64))
        node.add("Slice", [node.inputs[0], starts, ends, axes], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        index = [slice(None)] * x.ndim
        for axis, offset, size in self.crops([TensorType(x.shape), TensorType(inputs[1].shape)]):
            index[axis] = slice(offset, offset + size)  # type: ignore[operator]  # from an array: numbers
        return [x[tuple(index)]]


@register
class Slice(Layer["Slice.Params"]):
    """Caffe Slice: the input cut along ``axis`` at each ``slice_point`` into
    len(slice_point) + 1 outputs; without slice points, into as many equal parts as the layer
    names outputs (``top: [a, b, c]``). Counts nothing.
    """

    type_name = "Slice"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "the axis cut (negative: from the end)")
        slice_point: tuple[int, ...] | None = param(
            ListOf(Int(min=1), min_length=1), None, "where the 2nd, 3rd, ... outputs start (increasing)"
        )
        slice_dim: int | None = param(Int(min=0), None, "old Caffe name of axis (replaces it when given)")

    def check(self) -> None:
        points = self.params.slice_point
        if points is not None and any(a >= b for a, b in pairwise(points)):
            raise LayerError(f"slice_point {list(points)} must be increasing", param="slice_point")

    def output_arity(self) -> Arity:
        if self.params.slice_point is None:
            return Arity(1, None)
        parts = len(self.params.slice_point) + 1
        return Arity(parts, parts)

    def axis(self, x: TensorType) -> int:
        if self.params.slice_dim is not None:
            return normalize_axis(self.params.slice_dim, x, "slice_dim")
        return normalize_axis(self.params.axis, x)

    def sizes(self, x: TensorType) -> list[int]:
        axis = self.axis(x)
        size = static_dim(x, axis)
        points = self.params.slice_point
        if points is None:
            if size % self.output_count:
                raise LayerError(
                    f"cannot cut axis {axis} of size {size} into {self.output_count} equal parts",
                    hint="give slice_point to cut it unequally",
                )
            return [size // self.output_count] * self.output_count
        if points[-1] >= size:
            raise LayerError(
                f"slice_point {list(points)} must lie inside axis {axis} of size {size} of {x}",
                param="slice_point",
            )
        bounds = (0, *points, size)
        return [end - start for start, end in pairwise(bounds)]

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        axis = self.axis(x)
        return tuple(
            TensorType((*x.dims[:axis], size, *x.dims[axis + 1 :]), x.dtype) for size in self.sizes(x)
        )

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        split = node.constant("split", np.array(self.sizes(x), np.int64))
        node.add("Split", [node.inputs[0], split], node.outputs, axis=self.axis(x))

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        x_type = TensorType(x.shape)
        return np.split(x, np.cumsum(self.sizes(x_type))[:-1], axis=self.axis(x_type))


@register
class StridedSlice(Layer["StridedSlice.Params"]):
    """ONNX Slice: along each of ``axes``, the elements from ``starts`` up to (not including)
    ``ends``, every ``steps``-th, by Python's (and numpy's) slicing rules: a negative start or
    end counts from the end of the axis, bounds past either end are clamped (an end of 1000
    means "to the end"), a negative step runs backwards. ``axes`` defaults to 0, 1, …,
    ``steps`` to 1. torch exports ``x[:, :, 1:-1]`` and ``x[..., ::2]`` this way. Counts nothing.
    """

    type_name = "StridedSlice"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        starts: tuple[int, ...] = param(ListOf(Int(), min_length=1), doc="first index kept, per sliced axis")
        ends: tuple[int, ...] = param(
            ListOf(Int(), min_length=1), doc="index where each slice stops (excluded)"
        )
        axes: tuple[int, ...] | None = param(
            ListOf(Int(), min_length=1), None, "the sliced axes (negative: from the end); default 0, 1, …"
        )
        steps: tuple[int, ...] | None = param(
            ListOf(Int(), min_length=1),
            None,
            "the stride along each sliced axis (negative: backwards); default 1",
        )

    def check(self) -> None:
        p = self.params
        for name in ("ends", "axes", "steps"):
            values = getattr(p, name)
            if values is not None and len(values) != len(p.starts):
                raise LayerError(
                    f"has {len(values)} {name} values for {len(p.starts)} starts; give one per sliced axis",
                    param=name,
                )
        if p.steps is not None and 0 in p.steps:
            raise LayerError(
                f"steps {list(p.steps)} has a 0; a step moves at least one element", param="steps"
            )

    def cuts(self, x: TensorType) -> dict[int, slice]:
        """The slice taken along every sliced axis (non-negative) of ``x``."""
        p = self.params
        axes = p.axes if p.axes is not None else tuple(range(len(p.starts)))
        steps = p.steps or (1,) * len(p.starts)
        result: dict[int, slice] = {}
        for axis, start, end, step in zip(axes, p.starts, p.ends, steps, strict=True):
            index = normalize_axis(axis, x, "axes")
            if index in result:
                raise LayerError(f"axes {list(axes)} name axis {index} twice", param="axes")
            result[index] = slice(start, end, step)
        return result

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        dims = list(x.dims)
        for axis, cut in self.cuts(x).items():
            dims[axis] = len(range(*cut.indices(static_dim(x, axis))))
            if not dims[axis]:
                raise LayerError(
                    f"takes nothing from axis {axis} of {x} (start {cut.start}, end {cut.stop}, "
                    f"step {cut.step})"
                )
        return (TensorType(tuple(dims), x.dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        x = inputs[0]
        if x.rank != 4:
            return None
        cuts = self.cuts(x)
        windows = []
        for axis in (2, 3):
            if axis not in cuts:
                windows.append(IDENTITY_WINDOW)
                continue
            start, _, step = cuts[axis].indices(static_dim(x, axis))
            if step < 0:
                return None  # a reversed axis: no window maps output pixels onto input pixels
            # Output pixel i is input pixel start + i·step: a window of one, negative padding.
            windows.append(Window(1, step, -start))
        return (windows[0], windows[1])

    def emit(self, node: Emitter) -> None:
        p = self.params
        axes = p.axes if p.axes is not None else tuple(range(len(p.starts)))
        # NOTE: the steps are always written (Crop writes none): the ONNX front end reads a
        # Slice without steps from netspec's own files back as the Crop it came from.
        inputs = [
            node.inputs[0],
            node.constant("starts", np.array(p.starts, np.int64)),
            node.constant("ends", np.array(p.ends, np.int64)),
            node.constant("axes", np.array(axes, np.int64)),
            node.constant("steps", np.array(p.steps or (1,) * len(p.starts), np.int64)),
        ]
        node.add("Slice", inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        index = [slice(None)] * x.ndim
        for axis, cut in self.cuts(TensorType(x.shape)).items():
            index[axis] = cut
        return [x[tuple(index)]]


@register
class Split(Layer[NoParams]):
    """Caffe Split: the input copied to every output the layer names (``top: [a, b]``); ONNX
    Identity nodes, which onnxruntime removes. Counts nothing.
    """

    type_name = "Split"
    output_memory = "view"

    def output_arity(self) -> Arity:
        return Arity(1, None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],) * self.output_count

    def emit(self, node: Emitter) -> None:
        for output in node.outputs:
            node.add("Identity", node.inputs, [output])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64)] * self.output_count


@register
class Pad(Layer["Pad.Params"]):
    """Constant padding of the axes from ``axis`` on: ``pad`` holds a (before, after) pair per
    padded axis, ``value`` fills the new cells. The option-A shortcut of He et al.'s CIFAR
    ResNets (subsampled identity, channels zero-padded on both sides) pads axis 1. Counts
    nothing (no parameters, no MACs, no FLOPs: the cells are written, not computed).
    """

    type_name = "Pad"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "first padded axis (negative: from the end)")
        pad: tuple[int, ...] = param(
            ListOf(Int(min=0), min_length=2),
            doc="[before, after] for axis, then for each later axis padded (even length)",
        )
        value: float = param(Float(), 0.0, "the value of the added cells")

    def widths(self, x: TensorType) -> list[tuple[int, int]]:
        """(before, after) for every axis of ``x``."""
        pad = self.params.pad
        if len(pad) % 2:
            raise LayerError(
                f"pad {list(pad)} has an odd length; give a [before, after] pair per padded axis", param="pad"
            )
        start = normalize_axis(self.params.axis, x)
        pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
        if start + len(pairs) > x.rank:
            raise LayerError(f"pads {len(pairs)} axes from axis {start}, but {x} has {x.rank}", param="pad")
        return [(0, 0)] * start + pairs + [(0, 0)] * (x.rank - start - len(pairs))

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        dims = [
            d if (b, a) == (0, 0) else static_dim(x, i) + b + a
            for i, (d, (b, a)) in enumerate(zip(x.dims, self.widths(x), strict=True))
        ]
        return (TensorType(tuple(dims), x.dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        if inputs[0].rank != 4:
            return None
        widths = self.widths(inputs[0])
        return (Window(1, 1, widths[2][0]), Window(1, 1, widths[3][0]))

    def emit(self, node: Emitter) -> None:
        widths = self.widths(node.input_types[0])
        pads = node.constant("pads", np.array([b for b, _ in widths] + [a for _, a in widths], np.int64))
        value = node.constant("value", np.array(self.params.value, np.float32))
        node.add("Pad", [node.inputs[0], pads, value], node.outputs, mode="constant")

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        widths = self.widths(TensorType(x.shape))
        return [np.pad(x, widths, mode="constant", constant_values=self.params.value)]
