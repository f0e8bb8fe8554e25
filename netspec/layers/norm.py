"""Normalisation layers: BatchNorm (inference form, also Caffe's), SegNet's BN, Caffe Scale and
Bias, and LRN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from netspec.graph import Dim, TensorType
from netspec.layers.base import (
    IDENTITY_WINDOW,
    ONES,
    ZEROS,
    Arity,
    Bool,
    Emitter,
    Enum,
    Filler,
    FillerBlock,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    ParamSpec,
    Window,
    aligned_shape,
    broadcast_shape,
    check_filler,
    emit_aligned,
    expect_rank,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.layers.conv import pad_nchw, sliding_windows
from netspec.lazy import numpy as np


def per_channel(vector: np.ndarray, rank: int, axis: int = 1) -> np.ndarray:
    """A per-channel vector in float64, shaped to broadcast along ``axis`` of a rank-``rank`` array."""
    vector = np.asarray(vector, np.float64)
    return vector.reshape(broadcast_shape(vector.shape[0], rank, axis))


def caffe_statistics_factor(scale_factor: np.ndarray) -> float:
    """What Caffe multiplies its stored BatchNorm statistics by: 1/s, or 0 when s is 0."""
    s = float(np.asarray(scale_factor).reshape(-1)[0])
    return 0.0 if s == 0 else 1.0 / s


@register
class BatchNorm(Layer["BatchNorm.Params"]):
    """Batch normalisation in inference form: (x − mean) / √(var + eps) · weight + bias, per channel
    (axis 1). Stored as torchvision names it: ``weight``, ``bias`` (params, only when ``affine``),
    ``running_mean``, ``running_var`` (buffers).

    Caffe's BatchNorm is ``affine: false  caffe_scale_factor: true``: it stores ``running_mean``,
    ``running_var`` and a one-element ``scale_factor`` s (Caffe's blob order), and its statistics
    are mean/s and var/s (0 when s = 0, as in Caffe). Inference always uses the stored statistics.

    params = 2·C when affine; buffers = 2·C (+ 1 for Caffe's scale factor); FLOPs = 2 per
    element (a folded multiply and add).
    """

    type_name = "BatchNorm"
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        eps: float = param(Float(min=0.0, exclusive_min=True), 1e-5, "added to the variance")
        affine: bool = param(Bool(), True, "learned per-channel weight and bias (false: Caffe BatchNorm)")
        use_global_stats: bool | None = param(
            Bool(), None, "Caffe: accepted; inference always uses the stored statistics"
        )
        moving_average_fraction: float = param(
            Float(min=0.0, max=1.0), 0.999, "Caffe: the training-time running-average momentum (unused)"
        )
        caffe_scale_factor: bool = param(
            Bool(), False, "store Caffe's third blob, the factor the statistics are divided by"
        )

    def check(self) -> None:
        if self.params.caffe_scale_factor and self.params.affine:
            raise LayerError(
                "caffe_scale_factor stores Caffe's BatchNorm, which has no affine part; set affine: false",
                param="caffe_scale_factor",
                hint="in Caffe a following Scale layer holds the per-channel weight and bias",
            )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 2:
            raise LayerError(f"expects an input with a channel axis (N, C, ...), got {x.rank}-D {x}")
        static_dim(x, 1)
        return (x,)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        channels = (static_dim(inputs[0], 1),)
        stats = (
            ParamSpec("running_mean", channels, learnable=False, init=ZEROS),
            ParamSpec("running_var", channels, learnable=False, init=ONES),
        )
        if self.params.caffe_scale_factor:
            return (*stats, ParamSpec("scale_factor", (1,), learnable=False, init=ONES))
        if not self.params.affine:
            return stats
        return (ParamSpec("weight", channels, init=ONES), ParamSpec("bias", channels, init=ZEROS), *stats)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        if self.params.affine:
            scale, bias = node.param("weight"), node.param("bias")
        else:
            channels = static_dim(node.input_types[0], 1)
            scale = node.constant("weight", np.ones(channels, np.float32))
            bias = node.constant("bias", np.zeros(channels, np.float32))
        mean, var = node.param("running_mean"), node.param("running_var")
        if self.params.caffe_scale_factor:
            # NOTE: the factor is applied in the graph, from the stored scale_factor initializer,
            # so the initializers stay Caffe's three blobs (and authoritative if replaced); all of
            # it is on constants, which onnxruntime folds before fusing the BatchNormalization.
            stored = node.param("scale_factor")
            zero = node.constant("zero", np.zeros(1, np.float32))
            is_zero, inverse, factor = node.temp("is_zero"), node.temp("inverse"), node.temp("factor")
            node.add("Equal", [stored, zero], [is_zero])
            node.add("Reciprocal", [stored], [inverse])
            node.add("Where", [is_zero, zero, inverse], [factor])
            mean, var = self._scaled(node, mean, factor, "mean"), self._scaled(node, var, factor, "var")
        inputs = [node.inputs[0], scale, bias, mean, var]
        node.add("BatchNormalization", inputs, node.outputs, epsilon=self.params.eps)

    def channel_affine(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        p = self.params
        local = {name: np.asarray(value, np.float64).reshape(-1) for name, value in arrays.items()}
        factor = caffe_statistics_factor(local["scale_factor"]) if p.caffe_scale_factor else 1.0
        a = 1.0 / np.sqrt(local["running_var"] * factor + p.eps)
        b = -local["running_mean"] * factor * a
        if p.affine:
            a, b = a * local["weight"], b * local["weight"] + local["bias"]
        return a, b

    @staticmethod
    def _scaled(node: Emitter, source: str, factor: str, suffix: str) -> str:
        result = node.temp(suffix)
        node.add("Mul", [source, factor], [result])
        return result

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        mean = per_channel(weights["running_mean"], x.ndim)
        var = per_channel(weights["running_var"], x.ndim)
        if self.params.caffe_scale_factor:
            factor = caffe_statistics_factor(weights["scale_factor"])
            mean, var = mean * factor, var * factor
        y = (x - mean) / np.sqrt(var + self.params.eps)
        if self.params.affine:
            y = y * per_channel(weights["weight"], x.ndim) + per_channel(weights["bias"], x.ndim)
        return [y]


@register
class BN(Layer["BN.Params"]):
    """SegNet's BN (Caffe fork): x·slope + bias with a per-channel ``slope`` and ``bias`` stored
    [1, C, 1, 1], the statistics folded in (as SegNet's inference weights store them). ``bn_mode``
    is accepted; LEARN mode's batch statistics are a training matter and are not modelled.

    params = 2·C; FLOPs = 2 per element.
    """

    type_name = "BN"
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        bn_mode: str = param(
            Enum(("LEARN", "INFERENCE")), "LEARN", "SegNet's mode (inference always applies slope and bias)"
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        expect_rank(inputs[0], 4)
        static_dim(inputs[0], 1)
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        shape = (1, static_dim(inputs[0], 1), 1, 1)
        return (ParamSpec("slope", shape, init=ONES), ParamSpec("bias", shape, init=ZEROS))

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * numel(outputs[0])

    def channel_affine(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        return (
            np.asarray(arrays["slope"], np.float64).reshape(-1),
            np.asarray(arrays["bias"], np.float64).reshape(-1),
        )

    def emit(self, node: Emitter) -> None:
        scaled = node.temp("scaled")
        node.add("Mul", [node.inputs[0], node.param("slope")], [scaled])
        node.add("Add", [scaled, node.param("bias")], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        return [x * np.asarray(weights["slope"], np.float64) + np.asarray(weights["bias"], np.float64)]


class AxisOperandParams(LayerParams):
    """What the schema of an :class:`AxisOperand` layer declares (as fields of its own, in its own order)."""

    axis: int
    num_axes: int


AxisOperandP = TypeVar("AxisOperandP", bound=AxisOperandParams)


class AxisOperand(Layer[AxisOperandP]):
    """A layer that combines its input with an operand covering axes ``axis`` … of it (Caffe's
    Scale and Bias): a second input, or a learned array of the dims of ``num_axes`` input axes
    (``num_axes: -1``: all from ``axis`` on; 0: one scalar).

    Receptive fields follow the first input: the operand is a factor or term per position, or
    one per image broadcast over the grid (a squeeze-and-excitation gate), not a window."""

    arity = Arity(1, 2)
    field_inputs = 1

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        return super().spatial_windows(inputs[:1], outputs)

    def operand(self, inputs: Sequence[TensorType]) -> tuple[int, tuple[Dim, ...]]:
        """The first input axis the operand covers and the operand's dims."""
        x = inputs[0]
        p = self.params
        if len(inputs) == 2:
            operand = inputs[1]
            start = normalize_axis(p.axis, x)
            covered = x.dims[start : start + operand.rank]
            # Beyond Caffe: a dim of 1 broadcasts (an SE block's [N, C, 1, 1] factor at axis 0).
            if start + operand.rank > x.rank or any(
                o != c and o != 1 for o, c in zip(operand.dims, covered, strict=True)
            ):
                raise LayerError(
                    f"needs a second input equal to the input's dims from axis {start} on; "
                    f"got {operand} for the input {x}",
                    hint="a dim of 1 in the second input broadcasts (an SE gate [N, C, 1, 1] at axis 0)",
                )
            return start, operand.dims
        if p.num_axes == 0:
            return 0, ()  # a scalar: the axis does not matter (Caffe ignores it too)
        start = normalize_axis(p.axis, x)
        end = x.rank if p.num_axes == -1 else start + p.num_axes
        if end > x.rank:
            raise LayerError(
                f"axis {p.axis} with num_axes {p.num_axes} goes past the last axis of the "
                f"{x.rank}-D input {x}",
                param="num_axes",
            )
        return start, tuple(static_dim(x, axis) for axis in range(start, end))

    def learned_shape(self, inputs: Sequence[TensorType]) -> tuple[int, ...]:
        """The shape of a learned operand-shaped array (static dims only)."""
        _, dims = self.operand(inputs)
        if len(inputs) == 2:
            return tuple(static_dim(inputs[1], axis) for axis in range(inputs[1].rank))
        return dims  # type: ignore[return-value]  # operand() reads them with static_dim

    def emit_operand(self, node: Emitter, source: str, suffix: str, from_input: bool = False) -> str:
        """``source`` (the second input, or a stored array) shaped to broadcast against the input."""
        x = node.input_types[0]
        start, _ = self.operand(node.input_types)
        source_type = node.input_types[1] if from_input else TensorType(self.learned_shape(node.input_types))
        return emit_aligned(node, source, source_type, x.rank, start, suffix)

    def aligned(self, array: np.ndarray, x: np.ndarray, operand: np.ndarray | None = None) -> np.ndarray:
        """``array`` in float64, shaped to broadcast against ``x`` (``operand``: the second input)."""
        types = [TensorType(x.shape)] + ([] if operand is None else [TensorType(operand.shape)])
        start, _ = self.operand(types)
        array = np.asarray(array, np.float64)
        return array.reshape(aligned_shape(array.shape, x.ndim, start))


@register
class Scale(AxisOperand["Scale.Params"]):
    """Caffe Scale: the input multiplied by a learned factor (one input) or by a second input,
    broadcast along axes ``axis`` … (with one input ``num_axes`` of them: per channel by
    default; a second input may also have 1 where the input has more, as a squeeze-and-excitation
    block's [N, C, 1, 1] factor at ``axis: 0``); ``bias_term`` adds a learned bias of the
    factor's shape.

    params = the factor's size (one input) + its size again with a bias; FLOPs = 1 per element
    (+ 1 with a bias).
    """

    type_name = "Scale"
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(AxisOperandParams):
        bias_term: bool = param(Bool(), False, "add a learned bias of the factor's shape")
        axis: int = param(Int(), 1, "the first input axis the factor covers (negative: from the end)")
        num_axes: int = param(
            Int(min=-1), 1, "one input: axes the learned factor covers (-1: all from axis on; 0: a scalar)"
        )
        filler: Filler | None = param(FillerBlock(), None, "initial factor (default: constant 1)")
        bias_filler: Filler | None = param(FillerBlock(), None, "initial bias (default: constant 0)")

    def check(self) -> None:
        check_filler(self.params.filler, "filler", None)
        check_filler(self.params.bias_filler, "bias_filler", None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.operand(inputs)
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        if len(inputs) == 2 and not self.params.bias_term:
            return ()
        shape = self.learned_shape(inputs)
        p = self.params
        weight = () if len(inputs) == 2 else (ParamSpec("weight", shape, init=p.filler or ONES),)
        bias = (ParamSpec("bias", shape, init=p.bias_filler or ZEROS),) if p.bias_term else ()
        return (*weight, *bias)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return (2 if self.params.bias_term else 1) * numel(outputs[0])

    def channel_affine(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        p = self.params
        if len(inputs) != 1 or p.num_axes != 1 or normalize_axis(p.axis, inputs[0]) != 1:
            return None
        a = np.asarray(arrays["weight"], np.float64).reshape(-1)
        b = np.asarray(arrays["bias"], np.float64).reshape(-1) if "bias" in arrays else np.zeros_like(a)
        return a, b

    def emit(self, node: Emitter) -> None:
        # NOTE: stored arrays keep the operand's shape (what a state_dict or caffemodel holds);
        # the Reshape that aligns them is on constants and folded away by onnxruntime.
        if len(node.inputs) == 2:
            factor = self.emit_operand(node, node.inputs[1], "scale", from_input=True)
        else:
            factor = self.emit_operand(node, node.param("weight"), "weight")
        if not self.params.bias_term:
            node.add("Mul", [node.inputs[0], factor], node.outputs)
            return
        product = node.temp("scaled")
        node.add("Mul", [node.inputs[0], factor], [product])
        node.add("Add", [product, self.emit_operand(node, node.param("bias"), "bias")], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        operand = inputs[1] if len(inputs) == 2 else None
        factor = weights["weight"] if operand is None else operand
        y = x * self.aligned(factor, x, operand)
        if self.params.bias_term:
            y = y + self.aligned(weights["bias"], x, operand)
        return [y]


@register
class Bias(AxisOperand["Bias.Params"]):
    """Caffe Bias: the input plus a learned array (one input) or a second input, broadcast along
    axes ``axis`` … (with one input ``num_axes`` of them: per channel by default).

    params = the learned array's size (one input only); FLOPs = 1 per element.
    """

    type_name = "Bias"
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(AxisOperandParams):
        axis: int = param(Int(), 1, "the first input axis the bias covers (negative: from the end)")
        num_axes: int = param(
            Int(min=-1), 1, "one input: axes the learned bias covers (-1: all from axis on; 0: a scalar)"
        )
        filler: Filler | None = param(FillerBlock(), None, "initial bias (default: constant 0)")

    def check(self) -> None:
        check_filler(self.params.filler, "filler", None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.operand(inputs)
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        if len(inputs) == 2:
            return ()
        return (ParamSpec("bias", self.learned_shape(inputs), init=self.params.filler or ZEROS),)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        if len(node.inputs) == 2:
            bias = self.emit_operand(node, node.inputs[1], "operand", from_input=True)
        else:
            bias = self.emit_operand(node, node.param("bias"), "bias")
        node.add("Add", [node.inputs[0], bias], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        operand = inputs[1] if len(inputs) == 2 else None
        return [x + self.aligned(weights["bias"] if operand is None else operand, x, operand)]


@register
class LRN(Layer["LRN.Params"]):
    """Local response normalisation (Caffe LRN, AlexNet/GoogLeNet).

    ACROSS_CHANNELS: x / (k + α/n · Σ x²)^β over n neighbouring channels (ONNX LRN is the same).
    WITHIN_CHANNEL: x / (1 + α/n² · Σ x²)^β over an n×n zero-padded spatial window.

    FLOPs per element = window + 5: one square, ``window`` adds (n across channels, n² within),
    a multiply and an add for the scale, a power and a divide.
    """

    type_name = "LRN"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
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

    def emit(self, node: Emitter) -> None:
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
