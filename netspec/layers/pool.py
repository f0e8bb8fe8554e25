"""Pooling layers: Caffe Pooling (MAX/AVE, global, ceil or floor rounding, the argmax mask),
SegNet's Upsample (unpooling by that mask) and adaptive average pooling (torchvision's
AlexNet/VGG heads)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import (
    Arity,
    Bool,
    Emitter,
    Enum,
    Int,
    Layer,
    LayerError,
    LayerParams,
    Padding,
    Spatial,
    Window,
    expect_rank,
    numel,
    param,
    register,
    static_dim,
)
from netspec.layers.conv import pad_nchw, sliding_windows
from netspec.lazy import numpy as np


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, ceil: bool) -> int:
    """Caffe's pooling arithmetic. Rounding up, the last window must start inside the input or
    its leading padding, else it is dropped (the same rule as ONNX/PyTorch ``ceil_mode``)."""
    span = size + pad_begin + pad_end - kernel
    if not ceil:
        return span // stride + 1
    out = -(-span // stride) + 1
    # NOTE: Caffe applies the drop only when there is padding; without it a stride larger than
    # the kernel could start the last window past the input (an empty window: garbage in Caffe).
    # Applying it always changes nothing else: with stride <= kernel that window starts inside.
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def overhang(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, out: int) -> int:
    """How far the last of ``out`` windows reaches past the padded input (ceil rounding), else 0."""
    return max((out - 1) * stride + kernel - (size + pad_begin + pad_end), 0)


@register
class Pooling(Layer["Pooling.Params"]):
    """Max or average pooling with Caffe's semantics; rounds up unless ``round_mode: FLOOR``.

    Average pooling divides by the window clipped to the padded input (padding counted, the
    ceil overhang not), or with ``count_include_pad: false`` clipped to the input. MAX pooling
    may name a second output, ``top: [pool, mask]``: Caffe's argmax mask, the index h·W + w of
    each maximum within its input plane (as floats), which SegNet's Upsample reads. No params;
    FLOPs = N·C·Ho·Wo·(kh·kw − 1) for MAX (comparisons; the mask costs nothing more) and
    N·C·Ho·Wo·kh·kw for AVE (adds and one divide).
    """

    type_name = "Pooling"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        pool: str = param(Enum(("MAX", "AVE")), "MAX", "MAX or AVE")
        kernel_size: tuple[int, int] | None = param(
            Spatial(), None, "window, k or [kh, kw] (not with global_pooling)"
        )
        stride: tuple[int, int] = param(Spatial(), 1, "stride, s or [sh, sw]")
        pad: tuple[int, int, int, int] = param(
            Padding(), 0, "padding: p, [ph, pw] or [top, left, bottom, right]"
        )
        global_pooling: bool = param(Bool(), False, "pool over the whole spatial extent")
        round_mode: str = param(Enum(("CEIL", "FLOOR")), "CEIL", "output size rounding (Caffe: CEIL)")
        count_include_pad: bool = param(
            Bool(),
            True,
            "AVE: the divisor counts padded cells (Caffe, torch's default); false: only input cells "
            "(TensorFlow's SAME, torch count_include_pad=False)",
        )

    def check(self) -> None:
        p = self.params
        if p.global_pooling and p.kernel_size is not None:
            raise LayerError("global_pooling and kernel_size exclude each other", param="kernel_size")
        if not p.global_pooling and p.kernel_size is None:
            raise LayerError("needs kernel_size (or global_pooling: true)")
        if p.kernel_size is not None and any(
            pad >= k for pad, k in zip(p.pad, p.kernel_size * 2, strict=True)
        ):
            raise LayerError(
                f"padding {list(p.pad)} must be smaller than the kernel {list(p.kernel_size)}", param="pad"
            )

    def output_arity(self) -> Arity:
        return Arity(1, 2) if self.params.pool == "MAX" else Arity(1, 1)

    def window(self, x: TensorType) -> tuple[int, int]:
        if self.params.global_pooling:
            return (static_dim(x, 2), static_dim(x, 3))
        assert self.params.kernel_size is not None
        return self.params.kernel_size

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        p = self.params
        if p.global_pooling:
            pooled = TensorType((x.dims[0], x.dims[1], 1, 1), x.dtype)
        else:
            kh, kw = self.window(x)
            ceil = p.round_mode == "CEIL"
            height = pool_output_size(static_dim(x, 2), kh, p.stride[0], p.pad[0], p.pad[2], ceil)
            width = pool_output_size(static_dim(x, 3), kw, p.stride[1], p.pad[1], p.pad[3], ceil)
            pooled = TensorType((x.dims[0], x.dims[1], height, width), x.dtype)
        return (pooled,) * self.output_count  # the mask has the pooled shape

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        kh, kw = self.window(inputs[0])
        p = self.params
        return (Window(kh, p.stride[0], p.pad[0]), Window(kw, p.stride[1], p.pad[1]))

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        kh, kw = self.window(inputs[0])
        per_window = kh * kw - 1 if self.params.pool == "MAX" else kh * kw
        return numel(outputs[0]) * per_window

    def emit(self, node: Emitter) -> None:
        p = self.params
        x, y = node.input_types[0], node.output_types[0]
        kernel = self.window(x)
        # NOTE: a window over the whole unpadded input is global pooling however it was written
        # (Caffe's ResNet and GoogLeNet write pool5 as a 7x7 kernel); onnxruntime's global
        # kernels are faster than a 7x7 AveragePool, and torch's exporters emit them too.
        whole = kernel == (static_dim(x, 2), static_dim(x, 3)) and not any(p.pad)
        if (p.global_pooling or whole) and self.output_count == 1:
            if p.pool == "MAX":
                node.add("GlobalMaxPool", node.inputs, node.outputs)
            else:
                # AdaptiveAvgPool(1) writes the same GlobalAveragePool; it counts one FLOP more
                # per output, so netspec's own file marks which layer this one is.
                node.add_marked("GlobalAveragePool", node.inputs, node.outputs)
            return
        top, left, bottom, right = p.pad
        extra_h = overhang(static_dim(x, 2), kernel[0], p.stride[0], top, bottom, static_dim(y, 2))
        extra_w = overhang(static_dim(x, 3), kernel[1], p.stride[1], left, right, static_dim(y, 3))
        # NOTE: ceil rounding is lowered to floor rounding (ceil_mode=0) over padding that reaches
        # the last window. onnxruntime's ceil_mode=1 computes Caffe's sizes, but ONNX's own shape
        # inference (onnx 1.23) ignores the dropped-last-window rule and infers one more output.
        attributes: dict[str, object] = {"kernel_shape": list(kernel), "strides": list(p.stride)}
        if p.pool == "MAX":
            # MaxPool ignores padded positions, so the overhang can simply be more end padding.
            pads = [top, left, bottom + extra_h, right + extra_w]
            if self.output_count == 1:
                node.add("MaxPool", node.inputs, node.outputs, pads=pads, **attributes)
                return
            from onnx import TensorProto

            # NOTE: ONNX's Indices count over the whole N·C·H·W tensor, Caffe's mask within one
            # H·W plane (and in floats): the plane index is the flat index mod H·W.
            indices, plane_indices = node.temp("indices"), node.temp("plane_indices")
            node.add("MaxPool", node.inputs, [node.outputs[0], indices], pads=pads, **attributes)
            plane = node.constant("plane_size", np.array(static_dim(x, 2) * static_dim(x, 3), np.int64))
            node.add("Mod", [indices, plane], [plane_indices])
            node.add("Cast", [plane_indices], [node.outputs[1]], to=TensorProto.FLOAT)
        elif not p.count_include_pad:
            pads = [top, left, bottom + extra_h, right + extra_w]
            node.add("AveragePool", node.inputs, node.outputs, pads=pads, count_include_pad=0, **attributes)
        elif not (extra_h or extra_w):
            node.add(
                "AveragePool", node.inputs, node.outputs, pads=list(p.pad), count_include_pad=1, **attributes
            )
        else:
            # Caffe's divisor counts the padding but not the overhang: pad explicitly (real zeros,
            # counted), then let the overhang be AveragePool padding that count_include_pad=0 skips.
            source = node.inputs[0]
            if any(p.pad):
                source = node.temp("padded")
                pad_amounts = node.constant(
                    "pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
                )
                node.add("Pad", [node.inputs[0], pad_amounts], [source])
            node.add(
                "AveragePool",
                [source],
                node.outputs,
                pads=[0, 0, extra_h, extra_w],
                count_include_pad=0,
                **attributes,
            )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        h, w = x.shape[2:]
        if p.global_pooling and self.output_count == 1:
            reduce = np.max if p.pool == "MAX" else np.mean
            return [reduce(x, axis=(2, 3), keepdims=True)]
        kh, kw = self.window(TensorType(x.shape))
        ceil = p.round_mode == "CEIL"
        out_h = pool_output_size(h, kh, p.stride[0], p.pad[0], p.pad[2], ceil)
        out_w = pool_output_size(w, kw, p.stride[1], p.pad[1], p.pad[3], ceil)
        # Pad far enough for every window, including ceil-mode overhang past the padding.
        extra_h = overhang(h, kh, p.stride[0], p.pad[0], p.pad[2], out_h)
        extra_w = overhang(w, kw, p.stride[1], p.pad[1], p.pad[3], out_w)
        pads = (p.pad[0], p.pad[1], p.pad[2] + extra_h, p.pad[3] + extra_w)
        if p.pool == "MAX":
            padded = pad_nchw(x, pads, -np.inf)
            windows = sliding_windows(padded, (kh, kw), p.stride, (1, 1), (out_h, out_w))
            if self.output_count == 1:
                return [windows.max(axis=(4, 5))]
            # Caffe scans each window row by row and keeps the first maximum: argmax does too.
            flat = windows.reshape(*windows.shape[:4], kh * kw)
            offset_h, offset_w = np.divmod(flat.argmax(axis=-1), kw)
            rows = (np.arange(out_h) * p.stride[0] - p.pad[0])[:, None] + offset_h
            cols = (np.arange(out_w) * p.stride[1] - p.pad[1])[None, :] + offset_w
            return [flat.max(axis=-1), (rows * w + cols).astype(np.float64)]
        padded = pad_nchw(x, pads, 0.0)
        windows = sliding_windows(padded, (kh, kw), p.stride, (1, 1), (out_h, out_w))
        sums = windows.sum(axis=(4, 5))
        # Divisor: the window clipped to the padded input (Caffe and PyTorch).
        starts_h = np.arange(out_h) * p.stride[0]
        starts_w = np.arange(out_w) * p.stride[1]
        if p.count_include_pad:
            size_h = np.minimum(starts_h + kh, h + p.pad[0] + p.pad[2]) - starts_h
            size_w = np.minimum(starts_w + kw, w + p.pad[1] + p.pad[3]) - starts_w
        else:  # the window clipped to the input itself
            size_h = np.minimum(starts_h + kh - p.pad[0], h) - np.maximum(starts_h - p.pad[0], 0)
            size_w = np.minimum(starts_w + kw - p.pad[1], w) - np.maximum(starts_w - p.pad[1], 0)
        return [sums / np.outer(size_h, size_w)[None, None]]


@register
class Upsample(Layer["Upsample.Params"]):
    """SegNet's unpooling (Caffe fork): with inputs ``[x, mask]``, where the mask is the second
    output of a MAX Pooling, each value of x goes to the position its mask names in a zero
    output plane (a later write to the same position wins, as in Caffe). The output is
    ``upsample_h`` × ``upsample_w`` when given, else H·scale_h − pad_out_h by W·scale_w − pad_out_w.

    With one input (the form of the YOLOv3 Caffe forks) it repeats every pixel scale_h × scale_w
    times (nearest neighbour). No params; FLOPs = 0 (data movement). Receptive field: output
    pixel o reads input pixel o // scale, a transposed window of the scale's size and stride
    (none is reported where upsample_h/upsample_w set a size the scale cannot give).
    """

    type_name = "Upsample"
    arity = Arity(1, 2)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        scale: int = param(Int(min=1), 2, "factor on both axes (unless scale_h and scale_w are given)")
        scale_h: int | None = param(Int(min=1), None, "factor on the height (with scale_w)")
        scale_w: int | None = param(Int(min=1), None, "factor on the width (with scale_h)")
        pad_out_h: bool = param(Bool(), False, "one row fewer, for an odd pooled height (scale 2 only)")
        pad_out_w: bool = param(Bool(), False, "one column fewer, for an odd pooled width (scale 2 only)")
        upsample_h: int | None = param(
            Int(min=1), None, "output height (with upsample_w; replaces the scales)"
        )
        upsample_w: int | None = param(
            Int(min=1), None, "output width (with upsample_h; replaces the scales)"
        )

    def check(self) -> None:
        p = self.params
        for first, second in (("scale_h", "scale_w"), ("upsample_h", "upsample_w")):
            if (getattr(p, first) is None) != (getattr(p, second) is None):
                given, missing = (first, second) if getattr(p, first) is not None else (second, first)
                raise LayerError(f"{given} needs {missing} as well", param=given)
        for axis, factor in zip("hw", self.scales(), strict=True):
            if getattr(p, f"pad_out_{axis}") and factor != 2:
                raise LayerError(
                    f"pad_out_{axis} needs a scale of 2 on that axis, got {factor}", param=f"pad_out_{axis}"
                )

    def scales(self) -> tuple[int, int]:
        p = self.params
        if p.scale_h is not None and p.scale_w is not None:
            return (p.scale_h, p.scale_w)
        return (p.scale, p.scale)

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        if p.upsample_h is not None and p.upsample_w is not None:
            return (p.upsample_h, p.upsample_w)
        scale_h, scale_w = self.scales()
        return (height * scale_h - int(p.pad_out_h), width * scale_w - int(p.pad_out_w))

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        expect_rank(x, 4)
        p = self.params
        if len(inputs) == 1:
            if p.upsample_h is not None or p.pad_out_h or p.pad_out_w:
                raise LayerError(
                    "upsample_h/upsample_w and pad_out_h/pad_out_w need the mask input; "
                    "with one input Upsample repeats pixels by the scales",
                    param="upsample_h" if p.upsample_h is not None else None,
                )
        elif inputs[1].dims != x.dims:
            raise LayerError(
                f"needs a mask of the input's shape {x}, got {inputs[1]}",
                hint="the mask is the second output of the MAX Pooling this layer undoes",
            )
        height, width = self.output_hw(static_dim(x, 2), static_dim(x, 3))
        return (TensorType((x.dims[0], x.dims[1], height, width), x.dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        x, y = inputs[0], outputs[0]
        scales = self.scales()
        for axis, scale in zip((2, 3), scales, strict=True):
            # Output pixel o reads input pixel o // scale wherever the output size is one the
            # scale gives, up to the rows pad_out or upsample_h/w trim from an odd pooled size.
            if not (static_dim(x, axis) - 1) * scale < static_dim(y, axis) <= static_dim(x, axis) * scale:
                return None
        return (
            Window(scales[0], scales[0], 0, transposed=True),
            Window(scales[1], scales[1], 0, transposed=True),
        )

    def emit(self, node: Emitter) -> None:
        if len(node.inputs) == 1:
            scales = np.array([1, 1, *self.scales()], np.float32)
            node.add(
                "Resize",
                [node.inputs[0], "", node.constant("scales", scales)],
                node.outputs,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
            return
        from onnx import TensorProto

        # NOTE: no MaxUnpool (it has no CUDA kernel, DESIGN.md §6): the planes are flattened to
        # [N, C, H·W] and scattered into zeros of [N, C, Ho·Wo] along the last axis.
        x = node.input_types[0]
        out_h, out_w = static_dim(node.output_types[0], 2), static_dim(node.output_types[0], 3)
        flat_shape = node.constant(
            "flat_shape", np.array([0, 0, static_dim(x, 2) * static_dim(x, 3)], np.int64)
        )
        values, mask, indices = node.temp("values"), node.temp("mask"), node.temp("indices")
        node.add("Reshape", [node.inputs[0], flat_shape], [values])
        node.add("Reshape", [node.inputs[1], flat_shape], [mask])
        node.add("Cast", [mask], [indices], to=TensorProto.INT64)
        shape, planes, zeros_shape = node.temp("shape"), node.temp("planes"), node.temp("zeros_shape")
        node.add("Shape", [node.inputs[0]], [shape])
        node.add("Gather", [shape, node.constant("plane_axes", np.array([0, 1], np.int64))], [planes])
        plane = node.constant("plane_size", np.array([out_h * out_w], np.int64))
        node.add("Concat", [planes, plane], [zeros_shape], axis=0)
        zeros, scattered = node.temp("zeros"), node.temp("scattered")
        node.add("ConstantOfShape", [zeros_shape], [zeros])  # float32 zeros by default
        node.add("ScatterElements", [zeros, indices, values], [scattered], axis=2)
        out_shape = node.constant("out_shape", np.array([0, 0, out_h, out_w], np.int64))
        node.add("Reshape", [scattered, out_shape], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        batch, channels, height, width = x.shape
        if len(inputs) == 1:
            scale_h, scale_w = self.scales()
            return [x.repeat(scale_h, axis=2).repeat(scale_w, axis=3)]
        out_h, out_w = self.output_hw(height, width)
        values = x.reshape(batch * channels, height * width)
        indices = np.asarray(inputs[1]).reshape(batch * channels, height * width).astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= out_h * out_w):
            raise ValueError(
                f"Upsample mask index {int(indices.max())} is outside the {out_h}x{out_w} output; "
                "check that the scales match the pooling that made the mask"
            )
        result = np.zeros((batch * channels, out_h * out_w))
        # Plain assignment: with a repeated index, numpy keeps the last value, as Caffe's loop.
        result[np.arange(batch * channels)[:, None], indices] = values
        return [result.reshape(batch, channels, out_h, out_w)]


def adaptive_pooling_matrix(size: int, out: int) -> np.ndarray:
    """Rows average the windows [floor(i·size/out), ceil((i+1)·size/out)) (PyTorch's rule)."""
    matrix = np.zeros((out, size))
    for i in range(out):
        start = (i * size) // out
        end = -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@register
class AdaptiveAvgPool(Layer["AdaptiveAvgPool.Params"]):
    """Average pooling to a fixed output size (torch ``AdaptiveAvgPool2d``).

    Lowered to Identity, GlobalAveragePool (output 1x1), an exact AveragePool when the sizes
    divide, or otherwise two MatMuls with constant averaging matrices (the windows are
    separable). FLOPs = one add per input element per window it falls in, plus one divide per
    output: counted as N·C·(H·W + Ho·Wo).
    """

    type_name = "AdaptiveAvgPool"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        output_size: tuple[int, int] = param(Spatial(), doc="output size, s or [h, w]")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        return (TensorType((x.dims[0], x.dims[1], *self.params.output_size), x.dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        # Exact only where the windows are uniform: sizes that divide (identity included).
        windows = []
        for axis in (2, 3):
            size, out = static_dim(inputs[0], axis), static_dim(outputs[0], axis)
            if size % out:
                return None
            windows.append(Window(size // out, size // out, 0))
        return (windows[0], windows[1])

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        if inputs[0].dims[2:] == outputs[0].dims[2:]:
            return 0
        return numel(inputs[0]) + numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        height, width = (static_dim(node.input_types[0], 2), static_dim(node.input_types[0], 3))
        out_h, out_w = self.params.output_size
        if (height, width) == (out_h, out_w):
            node.add("Identity", node.inputs, node.outputs)
        elif (out_h, out_w) == (1, 1):
            node.add("GlobalAveragePool", node.inputs, node.outputs)
        elif height % out_h == 0 and width % out_w == 0:
            kernel = [height // out_h, width // out_w]
            node.add("AveragePool", node.inputs, node.outputs, kernel_shape=kernel, strides=kernel)
        else:
            dtype = np.float32
            rows = node.constant("rows", adaptive_pooling_matrix(height, out_h).astype(dtype))
            cols = node.constant("cols", adaptive_pooling_matrix(width, out_w).T.astype(dtype))
            pooled_rows = node.temp("pooled_rows")
            node.add("MatMul", [rows, node.inputs[0]], [pooled_rows])
            node.add("MatMul", [pooled_rows, cols], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        out_h, out_w = self.params.output_size
        result = np.empty((*x.shape[:2], out_h, out_w))
        for i in range(out_h):
            h0, h1 = (i * x.shape[2]) // out_h, math.ceil((i + 1) * x.shape[2] / out_h)
            for j in range(out_w):
                w0, w1 = (j * x.shape[3]) // out_w, math.ceil((j + 1) * x.shape[3] / out_w)
                result[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return [result]
