"""Normalisation layers: BatchNorm (inference form), Caffe Scale and LRN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from netspec.graph import TensorType
from netspec.layers.base import (
    IDENTITY_WINDOW,
    Bool,
    Enum,
    Float,
    Int,
    Layer,
    LayerError,
    ParamSpec,
    Window,
    broadcast_shape,
    expect_rank,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.layers.conv import pad_nchw, sliding_windows

if TYPE_CHECKING:
    from netspec.export.onnx import NodeEmitter


def per_channel(vector: np.ndarray, rank: int, axis: int = 1) -> np.ndarray:
    """A per-channel vector in float64, shaped to broadcast along ``axis`` of a rank-``rank`` array."""
    vector = np.asarray(vector, np.float64)
    return vector.reshape(broadcast_shape(vector.shape[0], rank, axis))


@register
class BatchNorm(Layer):
    """Batch normalisation in inference form: (x − mean) / √(var + eps) · weight + bias, per channel
    (axis 1). Stored as torchvision names it: ``weight``, ``bias`` (params, only when ``affine``),
    ``running_mean``, ``running_var`` (buffers).

    params = 2·C when affine; buffers = 2·C; FLOPs = 2 per element (a folded multiply and add).
    """

    type_name = "BatchNorm"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        eps: float = param(Float(min=0.0, exclusive_min=True), 1e-5, "added to the variance")
        affine: bool = param(Bool(), True, "learned per-channel weight and bias (false: Caffe BatchNorm)")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 2:
            raise LayerError(f"expects an input with a channel axis (N, C, ...), got {x.rank}-D {x}")
        static_dim(x, 1)
        return (x,)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        channels = (static_dim(inputs[0], 1),)
        stats = (
            ParamSpec("running_mean", channels, learnable=False, init="zeros"),
            ParamSpec("running_var", channels, learnable=False, init="ones"),
        )
        if not self.params.affine:
            return stats
        return (ParamSpec("weight", channels, init="ones"), ParamSpec("bias", channels, init="zeros"), *stats)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * numel(outputs[0])

    def emit(self, node: NodeEmitter) -> None:
        if self.params.affine:
            scale, bias = node.param("weight"), node.param("bias")
        else:
            channels = static_dim(node.input_types[0], 1)
            scale = node.constant("weight", np.ones(channels, np.float32))
            bias = node.constant("bias", np.zeros(channels, np.float32))
        inputs = [node.inputs[0], scale, bias, node.param("running_mean"), node.param("running_var")]
        node.add("BatchNormalization", inputs, node.outputs, epsilon=self.params.eps)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        mean = per_channel(weights["running_mean"], x.ndim)
        var = per_channel(weights["running_var"], x.ndim)
        y = (x - mean) / np.sqrt(var + self.params.eps)
        if self.params.affine:
            y = y * per_channel(weights["weight"], x.ndim) + per_channel(weights["bias"], x.ndim)
        return [y]


@register
class Scale(Layer):
    """Caffe Scale with one input: a learned per-channel factor along ``axis`` (and a bias).

    params = C (+ C bias); FLOPs = 1 per element (+ 1 with a bias).
    """

    type_name = "Scale"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        bias_term: bool = param(Bool(), False, "add a learned per-channel bias")
        axis: int = param(Int(), 1, "the channel axis scaled (negative: from the end)")

    def channels(self, x: TensorType) -> int:
        return static_dim(x, normalize_axis(self.params.axis, x))

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.channels(inputs[0])
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        channels = (self.channels(inputs[0]),)
        weight = ParamSpec("weight", channels, init="ones")
        if not self.params.bias_term:
            return (weight,)
        return (weight, ParamSpec("bias", channels, init="zeros"))

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return (2 if self.params.bias_term else 1) * numel(outputs[0])

    def emit(self, node: NodeEmitter) -> None:
        x = node.input_types[0]
        axis = normalize_axis(self.params.axis, x)
        target = broadcast_shape(self.channels(x), x.rank, axis)
        names = ["weight", "bias"] if self.params.bias_term else ["weight"]
        vectors = [node.param(name) for name in names]
        if len(target) > 1:
            # NOTE: the stored arrays keep their [C] shape (the names a state_dict loads into); the
            # Reshape to [C, 1, ...] on constants is folded away by onnxruntime.
            shape = node.constant("shape", np.array(target, np.int64))
            shaped = [node.temp(f"{name}_shaped") for name in names]
            for vector, result in zip(vectors, shaped, strict=True):
                node.add("Reshape", [vector, shape], [result])
            vectors = shaped
        if not self.params.bias_term:
            node.add("Mul", [node.inputs[0], vectors[0]], node.outputs)
            return
        product = node.temp("scaled")
        node.add("Mul", [node.inputs[0], vectors[0]], [product])
        node.add("Add", [product, vectors[1]], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        axis = normalize_axis(self.params.axis, TensorType(x.shape))
        y = x * per_channel(weights["weight"], x.ndim, axis)
        if self.params.bias_term:
            y = y + per_channel(weights["bias"], x.ndim, axis)
        return [y]


@register
class LRN(Layer):
    """Local response normalisation (Caffe LRN, AlexNet/GoogLeNet).

    ACROSS_CHANNELS: x / (k + α/n · Σ x²)^β over n neighbouring channels (ONNX LRN is the same).
    WITHIN_CHANNEL: x / (1 + α/n² · Σ x²)^β over an n×n zero-padded spatial window.

    FLOPs per element = window + 5: one square, ``window`` adds (n across channels, n² within),
    a multiply and an add for the scale, a power and a divide.
    """

    type_name = "LRN"

    @dataclass(frozen=True, kw_only=True)
    class Params:
        local_size: int = param(Int(min=1), 5, "window size n (odd)")
        alpha: float = param(Float(), 1.0, "scale α (divided by n, or n² within a channel)")
        beta: float = param(Float(), 0.75, "exponent β")
        k: float = param(Float(), 1.0, "additive constant (ACROSS_CHANNELS only)")
        norm_region: str = param(
            Enum(("ACROSS_CHANNELS", "WITHIN_CHANNEL")),
            "ACROSS_CHANNELS",
            "normalise across channels or within each channel",
        )

    def check(self) -> None:
        if self.params.local_size % 2 == 0:
            raise LayerError(f"local_size must be odd, got {self.params.local_size}", param="local_size")

    @property
    def window(self) -> int:
        n = self.params.local_size
        return n if self.params.norm_region == "ACROSS_CHANNELS" else n * n

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        expect_rank(inputs[0], 4)
        return (inputs[0],)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return (self.window + 5) * numel(outputs[0])

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        if self.params.norm_region == "ACROSS_CHANNELS":
            return (IDENTITY_WINDOW, IDENTITY_WINDOW)
        n = self.params.local_size
        return (Window(n, 1, (n - 1) // 2), Window(n, 1, (n - 1) // 2))

    def emit(self, node: NodeEmitter) -> None:
        p = self.params
        if p.norm_region == "ACROSS_CHANNELS":
            node.add(
                "LRN", node.inputs, node.outputs, size=p.local_size, alpha=p.alpha, beta=p.beta, bias=p.k
            )
            return
        x = node.inputs[0]
        pad = (p.local_size - 1) // 2
        squared, mean, scaled, shifted, denominator = (
            node.temp(s) for s in ("squared", "window_mean", "scaled", "shifted", "denominator")
        )
        node.add("Mul", [x, x], [squared])
        node.add(
            "AveragePool",
            [squared],
            [mean],
            kernel_shape=[p.local_size] * 2,
            strides=[1, 1],
            pads=[pad] * 4,
            count_include_pad=1,
        )
        node.add("Mul", [mean, node.constant("alpha", np.array(p.alpha, np.float32))], [scaled])
        node.add("Add", [scaled, node.constant("one", np.array(1.0, np.float32))], [shifted])
        node.add("Pow", [shifted, node.constant("beta", np.array(p.beta, np.float32))], [denominator])
        node.add("Div", [x, denominator], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        n = p.local_size
        pad = (n - 1) // 2
        squares = x * x
        if p.norm_region == "ACROSS_CHANNELS":
            padded = np.pad(squares, ((0, 0), (pad, pad), (0, 0), (0, 0)))
            sums = sum(padded[:, i : i + x.shape[1]] for i in range(n))
            return [x / (p.k + p.alpha / n * sums) ** p.beta]
        # NOTE: BVLC Caffe builds WITHIN_CHANNEL from Power layers with a fixed shift of 1, so
        # ``k`` has no effect there; netspec keeps that so Caffe files compute what Caffe computes.
        padded = pad_nchw(squares, (pad, pad, pad, pad))
        windows = sliding_windows(padded, (n, n), (1, 1), (1, 1), x.shape[2:])
        sums = windows.sum(axis=(4, 5))
        return [x / (1.0 + p.alpha / (n * n) * sums) ** p.beta]
