"""Elementwise activations (ReLU and its Caffe relatives, PReLU, ELU, Power, Exp, Log, the hard
and smooth gates of MobileNetV3 and EfficientNet...), Dropout (the identity at inference) and
Softmax."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import (
    Bool,
    Emitter,
    Filler,
    FillerBlock,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    NoParams,
    P,
    ParamSpec,
    aligned_shape,
    check_filler,
    emit_aligned,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np


class Elementwise(Layer[P]):
    """A layer whose output has its input's type; FLOPs = ``flops_per_element`` × elements."""

    flops_per_element = 1
    output_memory = "in_place"

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return self.flops_per_element * numel(outputs[0])


def emit_chain(node: Emitter, steps: Sequence[tuple[str, float | None]]) -> None:
    """Apply ``steps`` in turn to the node's input, the last one writing its output: each an ONNX
    op with its constant second operand (None for a unary op). No steps: an Identity."""
    if not steps:
        node.add("Identity", node.inputs, node.outputs)
        return
    current = node.inputs[0]
    for index, (op_type, operand) in enumerate(steps):
        result = node.outputs[0] if index == len(steps) - 1 else node.temp(f"step_{index}")
        arguments = [current]
        if operand is not None:
            arguments.append(node.constant(f"operand_{index}", np.array(operand, np.float32)))
        node.add(op_type, arguments, [result])
        current = result


@register
class ReLU(Elementwise["ReLU.Params"]):
    """max(x, 0), or leaky with ``negative_slope`` (x < 0: slope·x).

    FLOPs = 1 per element (a comparison), 2 when leaky (and a multiply).
    """

    type_name = "ReLU"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        negative_slope: float = param(Float(), 0.0, "slope for x < 0 (0: plain ReLU)")

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return 1 if self.params.negative_slope == 0 else 2

    def emit(self, node: Emitter) -> None:
        if self.params.negative_slope == 0:
            node.add("Relu", node.inputs, node.outputs)
        else:
            node.add("LeakyRelu", node.inputs, node.outputs, alpha=self.params.negative_slope)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        return [np.where(x > 0, x, x * self.params.negative_slope)]


@register
class ReLU6(Elementwise[NoParams]):
    """min(max(x, 0), 6) (MobileNet forks); ONNX Clip. FLOPs = 2 per element (comparisons)."""

    type_name = "ReLU6"
    flops_per_element = 2

    def emit(self, node: Emitter) -> None:
        low = node.constant("min", np.array(0.0, np.float32))
        high = node.constant("max", np.array(6.0, np.float32))
        node.add("Clip", [node.inputs[0], low, high], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.minimum(np.maximum(np.asarray(inputs[0], np.float64), 0.0), 6.0)]


@register
class PReLU(Elementwise["PReLU.Params"]):
    """max(x, 0) + a·min(x, 0) with a learned slope a per channel (axis 1), or one slope for all
    channels with ``channel_shared``; slopes start at 0.25 (Caffe's default filler).

    params = C (1 when shared); FLOPs = 2 per element (a comparison and a multiply).
    """

    type_name = "PReLU"
    flops_per_element = 2

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        channel_shared: bool = param(Bool(), False, "one slope for every channel")
        filler: Filler | None = param(FillerBlock(), None, "initial slopes (default: constant 0.25)")

    def check(self) -> None:
        check_filler(self.params.filler, "filler", None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 2:
            raise LayerError(f"expects an input with a channel axis (N, C, ...), got {x.rank}-D {x}")
        self.slopes(x)
        return (x,)

    def slopes(self, x: TensorType) -> int:
        return 1 if self.params.channel_shared else static_dim(x, 1)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        init = self.params.filler or Filler("constant", 0.25)
        return (ParamSpec("weight", (self.slopes(inputs[0]),), init=init),)

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        slope_type = TensorType((self.slopes(x),))
        slope = emit_aligned(node, node.param("weight"), slope_type, x.rank, 1, "weight")
        node.add("PRelu", [node.inputs[0], slope], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        slope = np.asarray(weights["weight"], np.float64)
        slope = slope.reshape(aligned_shape(slope.shape, x.ndim, 1))
        return [np.maximum(x, 0.0) + slope * np.minimum(x, 0.0)]


@register
class ELU(Elementwise["ELU.Params"]):
    """x for x > 0, else α·(exp(x) − 1). FLOPs = 3 per element (a comparison, an exponential and
    a multiply)."""

    type_name = "ELU"
    flops_per_element = 3

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        alpha: float = param(Float(), 1.0, "α, the negative saturation value")

    def emit(self, node: Emitter) -> None:
        node.add("Elu", node.inputs, node.outputs, alpha=self.params.alpha)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        return [np.where(x > 0, x, self.params.alpha * np.expm1(np.minimum(x, 0.0)))]


@register
class AbsVal(Elementwise[NoParams]):
    """|x|. FLOPs = 1 per element."""

    type_name = "AbsVal"

    def emit(self, node: Emitter) -> None:
        node.add("Abs", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.abs(np.asarray(inputs[0], np.float64))]


@register
class BNLL(Elementwise[NoParams]):
    """log(1 + exp(x)) (Caffe's binomial normal log likelihood); ONNX Softplus.
    FLOPs = 3 per element (an exponential, an add and a logarithm)."""

    type_name = "BNLL"
    flops_per_element = 3

    def emit(self, node: Emitter) -> None:
        node.add("Softplus", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.logaddexp(0.0, np.asarray(inputs[0], np.float64))]


@register
class Power(Elementwise["Power.Params"]):
    """(shift + scale·x)^power. FLOPs = 1 per element for each of the multiply, the add and the
    power that is not the identity (scale 1, shift 0, power 1)."""

    type_name = "Power"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        power: float = param(Float(), 1.0, "the exponent")
        scale: float = param(Float(), 1.0, "multiplies x first")
        shift: float = param(Float(), 0.0, "added after the scale")

    def steps(self) -> list[tuple[str, float | None]]:
        p = self.params
        return [
            *([("Mul", p.scale)] if p.scale != 1 else []),
            *([("Add", p.shift)] if p.shift != 0 else []),
            *([("Pow", p.power)] if p.power != 1 else []),
        ]

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return len(self.steps())

    def emit(self, node: Emitter) -> None:
        emit_chain(node, self.steps())

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        return [np.power(p.shift + p.scale * np.asarray(inputs[0], np.float64), p.power)]


def check_base(base: float, allow_one: bool) -> None:
    if base != -1 and (base <= 0 or (base == 1 and not allow_one)):
        allowed = "a positive number" if allow_one else "a positive number other than 1"
        raise LayerError(f"base must be {allowed}, or -1 for e; got {base:g}", param="base")


@register
class Exp(Elementwise["Exp.Params"]):
    """base^(shift + scale·x), with base e for ``base: -1``. FLOPs = 1 per element for the
    exponential, plus 1 for each of the scaling multiplies it needs (inside: scale·ln(base) ≠ 1;
    outside: base^shift ≠ 1)."""

    type_name = "Exp"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        base: float = param(Float(), -1.0, "the base (-1: e)")
        scale: float = param(Float(), 1.0, "multiplies x first")
        shift: float = param(Float(), 0.0, "added after the scale")

    def check(self) -> None:
        check_base(self.params.base, allow_one=True)

    def steps(self) -> list[tuple[str, float | None]]:
        # Caffe's own factoring: base^(shift + scale·x) = base^shift · exp(scale·ln(base) · x).
        p = self.params
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        inner, outer = p.scale * log_base, math.exp(p.shift * log_base)
        return [
            *([("Mul", inner)] if inner != 1 else []),
            ("Exp", None),
            *([("Mul", outer)] if outer != 1 else []),
        ]

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return len(self.steps())

    def emit(self, node: Emitter) -> None:
        emit_chain(node, self.steps())

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        exponent = p.shift + p.scale * np.asarray(inputs[0], np.float64)
        return [np.exp(exponent) if p.base == -1 else np.power(p.base, exponent)]


@register
class Log(Elementwise["Log.Params"]):
    """log_base(shift + scale·x), the natural logarithm for ``base: -1``. FLOPs = 1 per element for
    the logarithm, plus 1 for each of the multiply (scale ≠ 1), the add (shift ≠ 0) and the
    change of base (base ≠ e)."""

    type_name = "Log"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        base: float = param(Float(), -1.0, "the base (-1: e)")
        scale: float = param(Float(), 1.0, "multiplies x first")
        shift: float = param(Float(), 0.0, "added after the scale")

    def check(self) -> None:
        check_base(self.params.base, allow_one=False)

    def steps(self) -> list[tuple[str, float | None]]:
        p = self.params
        return [
            *([("Mul", p.scale)] if p.scale != 1 else []),
            *([("Add", p.shift)] if p.shift != 0 else []),
            ("Log", None),
            *([("Mul", 1.0 / math.log(p.base))] if p.base != -1 else []),
        ]

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return len(self.steps())

    def emit(self, node: Emitter) -> None:
        emit_chain(node, self.steps())

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        value = np.log(p.shift + p.scale * np.asarray(inputs[0], np.float64))
        return [value if p.base == -1 else value / np.log(p.base)]


@register
class TanH(Elementwise[NoParams]):
    """tanh(x). FLOPs = 1 per element."""

    type_name = "TanH"

    def emit(self, node: Emitter) -> None:
        node.add("Tanh", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.tanh(np.asarray(inputs[0], np.float64))]


@register
class Sigmoid(Elementwise[NoParams]):
    """1 / (1 + exp(−x)). FLOPs = 1 per element."""

    type_name = "Sigmoid"

    def emit(self, node: Emitter) -> None:
        node.add("Sigmoid", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [1.0 / (1.0 + np.exp(-np.asarray(inputs[0], np.float64)))]


def hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """max(0, min(1, α·x + β)) in float64."""
    return np.clip(alpha * np.asarray(x, np.float64) + beta, 0.0, 1.0)


TORCH_HARD_SIGMOID = (1 / 6, 0.5)  # relu6(x + 3) / 6, torch's Hardsigmoid and Hardswish


@register
class HardSigmoid(Elementwise["HardSigmoid.Params"]):
    """max(0, min(1, α·x + β)): a piecewise-linear sigmoid; ONNX HardSigmoid.

    The defaults are torch's ``Hardsigmoid`` (α = 1/6, β = 0.5, i.e. relu6(x + 3) / 6, as in
    MobileNetV3); ONNX's own HardSigmoid defaults to α = 0.2, β = 0.5 (write ``alpha: 0.2``).
    FLOPs = 4 per element (a multiply, an add and two comparisons).
    """

    type_name = "HardSigmoid"
    flops_per_element = 4

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        alpha: float = param(Float(), TORCH_HARD_SIGMOID[0], "slope α (torch: 1/6, ONNX's default: 0.2)")
        beta: float = param(Float(), TORCH_HARD_SIGMOID[1], "offset β")

    def emit(self, node: Emitter) -> None:
        node.add("HardSigmoid", node.inputs, node.outputs, alpha=self.params.alpha, beta=self.params.beta)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [hard_sigmoid(inputs[0], self.params.alpha, self.params.beta)]


@register
class HardSwish(Elementwise[NoParams]):
    """x·relu6(x + 3)/6 = x·HardSigmoid(x) with torch's α = 1/6, β = 0.5 (MobileNetV3).

    Emitted as HardSigmoid then Mul: onnxruntime has no CPU kernel for ONNX HardSwish.
    FLOPs = 5 per element (the hard sigmoid's 4 and a multiply).
    """

    type_name = "HardSwish"
    flops_per_element = 5

    def emit(self, node: Emitter) -> None:
        gate = node.temp("gate")
        alpha, beta = TORCH_HARD_SIGMOID
        node.add("HardSigmoid", node.inputs, [gate], alpha=alpha, beta=beta)
        node.add("Mul", [node.inputs[0], gate], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64) * hard_sigmoid(inputs[0], *TORCH_HARD_SIGMOID)]


class SigmoidGate(Elementwise[P]):
    """x·sigmoid(β·x), emitted as (Mul), Sigmoid, Mul: what SiLU and Swish share.

    FLOPs = 2 per element (the sigmoid and a multiply), 3 when β ≠ 1 (the scaling multiply).
    """

    @property
    def beta(self) -> float:
        """The sigmoid's input scale β in x·sigmoid(β·x)."""
        raise NotImplementedError

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return 2 if self.beta == 1 else 3

    def emit(self, node: Emitter) -> None:
        gate_input = node.inputs[0]
        if self.beta != 1:
            gate_input = node.temp("scaled")
            beta = node.constant("beta", np.array(self.beta, np.float32))
            node.add("Mul", [node.inputs[0], beta], [gate_input])
        gate = node.temp("gate")
        node.add("Sigmoid", [gate_input], [gate])
        node.add("Mul", [node.inputs[0], gate], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        return [x / (1.0 + np.exp(-self.beta * x))]


@register
class SiLU(SigmoidGate[NoParams]):
    """x·sigmoid(x) (torch SiLU, EfficientNet; Swish with β = 1), emitted as Sigmoid then Mul.

    FLOPs = 2 per element (the sigmoid and a multiply).
    """

    type_name = "SiLU"

    @property
    def beta(self) -> float:
        return 1.0


@register
class Swish(SigmoidGate["Swish.Params"]):
    """x·sigmoid(β·x) (Caffe Swish, ``swish_param { beta }``); SiLU for β = 1. Emitted as
    (Mul), Sigmoid, Mul. FLOPs = 2 per element, 3 when β ≠ 1 (the scaling multiply)."""

    type_name = "Swish"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        beta: float = param(Float(), 1.0, "scale β of the sigmoid's input")

    @property
    def beta(self) -> float:
        return self.params.beta


@register
class Dropout(Elementwise["Dropout.Params"]):
    """Dropout: the identity at inference (emitted as Identity, which onnxruntime removes).

    FLOPs = 0.
    """

    type_name = "Dropout"
    output_memory = "view"
    flops_per_element = 0

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        dropout_ratio: float = param(
            Float(min=0.0, max=1.0), 0.5, "training-time drop probability, in [0, 1)"
        )

    def check(self) -> None:
        if self.params.dropout_ratio >= 1.0:
            raise LayerError(
                f"dropout_ratio must be below 1, got {self.params.dropout_ratio}", param="dropout_ratio"
            )

    def emit(self, node: Emitter) -> None:
        node.add("Identity", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64)]


@register
class Softmax(Elementwise["Softmax.Params"]):
    """exp(x) / Σ exp(x) along ``axis`` (default: channels).

    FLOPs = 3 per element: an exponential, an add into the sum and a divide (the maximum
    subtracted for numerical stability is not counted).
    """

    type_name = "Softmax"
    output_memory = "new"  # each output reads a whole row
    flops_per_element = 3

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "the axis normalised (negative: from the end)")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        normalize_axis(self.params.axis, inputs[0])
        return (inputs[0],)

    def emit(self, node: Emitter) -> None:
        # NOTE: opset >= 13 normalises along this one axis; older opsets flattened from it.
        axis = normalize_axis(self.params.axis, node.input_types[0])
        node.add("Softmax", node.inputs, node.outputs, axis=axis)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        shifted = np.exp(x - x.max(axis=self.params.axis, keepdims=True))
        return [shifted / shifted.sum(axis=self.params.axis, keepdims=True)]
