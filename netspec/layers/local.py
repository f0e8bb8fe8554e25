"""Locally connected layers: convolution without weight sharing (DeepFace's L4–L6), each
output position with its own filter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import (
    ZEROS,
    Bool,
    Emitter,
    Int,
    Layer,
    LayerError,
    LayerParams,
    Padding,
    ParamSpec,
    Spatial,
    Window,
    emit_reshape,
    expect_rank,
    numel,
    param,
    register,
    static_dim,
)
from netspec.layers.conv import conv_output_size, pad_nchw
from netspec.lazy import numpy as np


@register
class LocallyConnected(Layer["LocallyConnected.Params"]):
    """Unshared 2-D convolution: output position (i, j) applies its own filter to its window
    (DeepFace's locally connected layers; Keras ``LocallyConnected2D``). Output size as
    Convolution's (no dilation, no groups).

    The weight is [Ho·Wo, C·kh·kw, Cout] (the layout of Keras's LocallyConnected2D kernel, with
    the patch channels-first): row i·Wo + j holds position (i, j)'s filter, its input features
    ordered (channel, kernel row, kernel column); the bias is untied, [Cout, Ho, Wo].
    params = Ho·Wo·C·kh·kw·Cout (+ Cout·Ho·Wo); MACs = N·Ho·Wo·C·kh·kw·Cout; FLOPs = 2·MACs +
    N·Cout·Ho·Wo with the bias. Emitted as an unfold (a depthwise Conv with fixed one-hot
    kernels, not counted: it moves data) and one batched MatMul over the positions.
    """

    type_name = "LocallyConnected"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_output: int = param(Int(min=1), doc="output channels")
        kernel_size: tuple[int, int] = param(Spatial(), doc="kernel size, k or [kh, kw]")
        stride: tuple[int, int] = param(Spatial(), 1, "stride, s or [sh, sw]")
        pad: tuple[int, int, int, int] = param(
            Padding(), 0, "zero padding: p, [ph, pw] or [top, left, bottom, right]"
        )
        bias_term: bool = param(Bool(), True, "add a learned bias per output position")

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        return (
            conv_output_size(height, p.kernel_size[0], p.stride[0], p.pad[0], p.pad[2], 1),
            conv_output_size(width, p.kernel_size[1], p.stride[1], p.pad[1], p.pad[3], 1),
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        static_dim(x, 1)
        height, width = self.output_hw(static_dim(x, 2), static_dim(x, 3))
        if height < 1 or width < 1:
            raise LayerError(
                f"kernel {list(self.params.kernel_size)} does not fit the input {x} "
                f"(output {height}x{width})",
                param="kernel_size",
            )
        return (TensorType((x.dims[0], self.params.num_output, height, width), x.dtype),)

    def patch_size(self, x: TensorType) -> int:
        return static_dim(x, 1) * self.params.kernel_size[0] * self.params.kernel_size[1]

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        x = inputs[0]
        height, width = self.output_hw(static_dim(x, 2), static_dim(x, 3))
        patch = self.patch_size(x)
        # Each position's filter maps a patch to num_output values, as a convolution's does.
        weight = ParamSpec(
            "weight", (height * width, patch, self.params.num_output), fans=(patch, self.params.num_output)
        )
        if not self.params.bias_term:
            return (weight,)
        return (weight, ParamSpec("bias", (self.params.num_output, height, width), init=ZEROS))

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(outputs[0]) * self.patch_size(inputs[0])

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        bias = numel(outputs[0]) if self.params.bias_term else 0
        return 2 * self.macs(inputs, outputs) + bias

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        p = self.params
        return (
            Window(p.kernel_size[0], p.stride[0], p.pad[0]),
            Window(p.kernel_size[1], p.stride[1], p.pad[1]),
        )

    def unfold_kernel(self, channels: int) -> np.ndarray:
        """[C·kh·kw, 1, kh, kw] one-hot kernels: output channel c·kh·kw + u·kw + v of a depthwise
        Conv (group C) copies input channel c at kernel tap (u, v)."""
        kh, kw = self.params.kernel_size
        taps = np.eye(kh * kw, dtype=np.float32).reshape(kh * kw, 1, kh, kw)  # tap u·kw + v: one-hot (u, v)
        return np.tile(taps, (channels, 1, 1, 1))

    def emit(self, node: Emitter) -> None:
        p = self.params
        x, y = node.input_types[0], node.output_types[0]
        batch, channels = x.dims[0], static_dim(x, 1)
        height, width = static_dim(y, 2), static_dim(y, 3)
        patch, positions = self.patch_size(x), height * width
        unfolded, columns, by_position = node.temp("unfolded"), node.temp("columns"), node.temp("by_position")
        node.add(
            "Conv",
            [node.inputs[0], node.constant("unfold_kernel", self.unfold_kernel(channels))],
            [unfolded],
            kernel_shape=list(p.kernel_size),
            strides=list(p.stride),
            pads=list(p.pad),
            group=channels,
        )
        emit_reshape(
            node, unfolded, TensorType((batch, patch, height, width)), (batch, patch, positions), columns
        )
        node.add("Transpose", [columns], [by_position], perm=[2, 0, 1])  # [Ho·Wo, N, C·kh·kw]
        product, channels_first = node.temp("product"), node.temp("channels_first")
        node.add("MatMul", [by_position, node.param("weight")], [product])  # [Ho·Wo, N, Cout]
        node.add("Transpose", [product], [channels_first], perm=[1, 2, 0])  # [N, Cout, Ho·Wo]
        target = node.outputs[0] if not p.bias_term else node.temp("unbiased")
        emit_reshape(
            node,
            channels_first,
            TensorType((batch, p.num_output, positions)),
            (batch, p.num_output, height, width),
            target,
            "out_shape",
        )
        if p.bias_term:
            node.add("Add", [target, node.param("bias")], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = pad_nchw(np.asarray(inputs[0], np.float64), p.pad)
        w = np.asarray(weights["weight"], np.float64)
        (kh, kw), (sh, sw) = p.kernel_size, p.stride
        height, width = self.output_hw(inputs[0].shape[2], inputs[0].shape[3])
        y = np.empty((x.shape[0], p.num_output, height, width))
        for i in range(height):
            for j in range(width):
                window = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(x.shape[0], -1)
                y[:, :, i, j] = window @ w[i * width + j]
        if p.bias_term:
            y = y + np.asarray(weights["bias"], np.float64)[None]
        return [y]
