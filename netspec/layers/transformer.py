"""Layers of the transformer-era vision networks (ConvNeXt, ViT): LayerNorm, GELU, Permute, a
batched MatMul of two activations, token selection, learned class tokens and position
embeddings, multi-head self-attention with torchvision's parameter names, stochastic depth and
layer scale.

Arrays that torchvision stores as a bare ``nn.Parameter`` of a module (``class_token``,
``encoder.pos_embedding``, ConvNeXt's ``layer_scale``) sit beside the layer that uses them, in
its scope, under the name its ``array`` parameter gives (ParamSpec.beside).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netspec.graph import Dim, TensorType
from netspec.layers.activation import Dropout, Elementwise
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
    ListOf,
    ParamSpec,
    Str,
    Window,
    aligned_shape,
    batch_size,
    check_filler,
    emit_reshape,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.layers.linear import emit_attention_logits, emit_linear
from netspec.layers.merge import Eltwise
from netspec.lazy import numpy as np

LAYER_NORMALIZATION_OPSET = 17  # ONNX LayerNormalization
GELU_OPSET = 20  # ONNX Gelu


def _last_axis_perm(rank: int, axis: int) -> list[int]:
    """The permutation that moves ``axis`` to the end, the others keeping their order."""
    return [a for a in range(rank) if a != axis] + [axis]


@register
class LayerNorm(Layer["LayerNorm.Params"]):
    """Layer normalisation over one axis, per position: (x − mean) / √(var + eps) · weight + bias,
    mean and (biased) variance taken along ``axis``. ``axis: -1`` is torch's ``LayerNorm(C)`` over
    the last axis; ``axis: 1`` normalises the channels of NCHW at each pixel (ConvNeXt's
    ``LayerNorm2d``). Stored as torch names it: ``weight`` and ``bias``, C each.

    Emitted as ONNX ``LayerNormalization`` (opset ≥ 17) over the last axis, between Transposes
    when ``axis`` is not the last (what torch's export of LayerNorm2d gives); below opset 17 as
    ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div.

    params = 2·C with ``elementwise_affine``; FLOPs = 5 per element (the mean's add, the
    subtraction, the square and the variance's add, the scaling), + 2 with the affine part.
    """

    type_name = "LayerNorm"
    output_memory = "new"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), -1, "the normalised axis (-1: the last; 1: the channels of NCHW)")
        eps: float = param(Float(min=0.0, exclusive_min=True), 1e-5, "added to the variance")
        elementwise_affine: bool = param(Bool(), True, "learned per-feature weight and bias")

    def features(self, x: TensorType) -> int:
        return static_dim(x, normalize_axis(self.params.axis, x))

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.features(inputs[0])
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        if not self.params.elementwise_affine:
            return ()
        shape = (self.features(inputs[0]),)
        return (ParamSpec("weight", shape, init=ONES), ParamSpec("bias", shape, init=ZEROS))

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return (7 if self.params.elementwise_affine else 5) * numel(outputs[0])

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        axis = normalize_axis(self.params.axis, x)
        source, target = node.inputs[0], node.outputs[0]
        moved = axis != x.rank - 1
        if moved:
            perm = _last_axis_perm(x.rank, axis)
            source, target = node.temp("channels_last"), node.temp("normalized_last")
            node.add("Transpose", node.inputs, [source], perm=perm)
        if self.params.elementwise_affine:
            scale, bias = node.param("weight"), node.param("bias")
        else:
            channels = self.features(x)
            scale = node.constant("weight", np.ones(channels, np.float32))
            bias = node.constant("bias", np.zeros(channels, np.float32))
        if node.opset >= LAYER_NORMALIZATION_OPSET:
            node.add("LayerNormalization", [source, scale, bias], [target], axis=-1, epsilon=self.params.eps)
        else:
            self._emit_decomposed(node, source, scale, bias, target)
        if moved:
            node.add("Transpose", [target], node.outputs, perm=list(np.argsort(perm)))

    def _emit_decomposed(self, node: Emitter, x: str, scale: str, bias: str, output: str) -> None:
        mean, centred, squared, var, shifted, std, normalized, scaled = (
            node.temp(s)
            for s in ("mean", "centred", "squared", "var", "shifted", "std", "normalized", "scaled")
        )
        node.add("ReduceMean", [x], [mean], axes=[-1], keepdims=1)
        node.add("Sub", [x, mean], [centred])
        node.add("Mul", [centred, centred], [squared])
        node.add("ReduceMean", [squared], [var], axes=[-1], keepdims=1)
        node.add("Add", [var, node.constant("eps", np.array(self.params.eps, np.float32))], [shifted])
        node.add("Sqrt", [shifted], [std])
        node.add("Div", [centred, std], [normalized])
        node.add("Mul", [normalized, scale], [scaled])
        node.add("Add", [scaled, bias], [output])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        axis = normalize_axis(self.params.axis, TensorType(x.shape))
        mean = x.mean(axis=axis, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axis, keepdims=True)
        y = (x - mean) / np.sqrt(var + self.params.eps)
        if self.params.elementwise_affine:
            shape = aligned_shape((x.shape[axis],), x.ndim, axis)
            y = y * np.asarray(weights["weight"], np.float64).reshape(shape)
            y = y + np.asarray(weights["bias"], np.float64).reshape(shape)
        return [y]


@register
class GELU(Elementwise["GELU.Params"]):
    """x·Φ(x), Φ the standard normal CDF (torch ``GELU``): exact, 0.5·x·(1 + erf(x/√2)), or with
    ``approximate: tanh``, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).

    Emitted as ONNX ``Gelu`` from opset 20; below, as its erf (or tanh) formula, which
    onnxruntime fuses back into one kernel. FLOPs = 5 per element exact (divide, erf, add, two
    multiplies), 9 tanh-approximate (cube: 2, multiply, add, multiply, tanh, add, 2 multiplies).
    """

    type_name = "GELU"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        approximate: str = param(Enum(("none", "tanh")), "none", "none (erf, exact) or tanh")

    @property
    def flops_per_element(self) -> int:  # type: ignore[override]  # a property over the class attribute
        return 5 if self.params.approximate == "none" else 9

    def emit(self, node: Emitter) -> None:
        if node.opset >= GELU_OPSET:
            node.add("Gelu", node.inputs, node.outputs, approximate=self.params.approximate)
            return
        x = node.inputs[0]
        inner, gate, shifted, product = (node.temp(s) for s in ("inner", "gate", "shifted", "product"))
        if self.params.approximate == "none":
            node.add("Div", [x, node.constant("sqrt2", np.array(math.sqrt(2.0), np.float32))], [inner])
            node.add("Erf", [inner], [gate])
        else:
            square, cube = node.temp("square"), node.temp("cube")
            scaled_cube, summed = node.temp("scaled_cube"), node.temp("summed")
            node.add("Mul", [x, x], [square])
            node.add("Mul", [square, x], [cube])
            node.add("Mul", [cube, node.constant("k", np.array(0.044715, np.float32))], [scaled_cube])
            node.add("Add", [x, scaled_cube], [summed])
            root = np.array(math.sqrt(2.0 / math.pi), np.float32)
            node.add("Mul", [summed, node.constant("root", root)], [inner])
            node.add("Tanh", [inner], [gate])
        node.add("Add", [gate, node.constant("one", np.array(1.0, np.float32))], [shifted])
        node.add("Mul", [x, shifted], [product])
        node.add("Mul", [product, node.constant("half", np.array(0.5, np.float32))], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        if self.params.approximate == "none":
            erf = np.vectorize(math.erf, otypes=[np.float64])
            return [0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))]
        return [0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))]


@register
class Permute(Layer["Permute.Params"]):
    """The input's axes reordered: output axis i is input axis ``order[i]`` (torch ``permute``,
    ONNX Transpose). Counts nothing. Receptive fields pass through NCHW ↔ NHWC permutations
    ([0, 2, 3, 1] and [0, 3, 1, 2]): a channels-last tensor keeps each pixel's field."""

    type_name = "Permute"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        order: tuple[int, ...] = param(
            ListOf(Int(min=0), min_length=1), doc="the input axis of each output axis"
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        order = self.params.order
        if sorted(order) != list(range(x.rank)):
            raise LayerError(
                f"order {list(order)} is not a permutation of the {x.rank} axes of {x}",
                param="order",
                hint=f"give each of 0 … {x.rank - 1} once",
            )
        return (TensorType(tuple(x.dims[a] for a in order), x.dtype),)

    def source_axis(self, axis: int, inputs: Sequence[TensorType]) -> int | None:
        return self.params.order[axis]

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        # NCHW to NHWC and back keep every pixel's field (ConvNeXt's blocks run channels-last).
        if self.params.order in ((0, 2, 3, 1), (0, 3, 1, 2)):
            return (IDENTITY_WINDOW, IDENTITY_WINDOW)
        return None

    def emit(self, node: Emitter) -> None:
        node.add("Transpose", node.inputs, node.outputs, perm=list(self.params.order))

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.transpose(np.asarray(inputs[0], np.float64), self.params.order)]


def _matmul_dims(a: TensorType, b: TensorType, transpose_b: bool) -> tuple[tuple[Dim, ...], int, int, int]:
    """The broadcast batch dims and (M, K, N) of a @ b (b transposed in its last two axes)."""
    if a.rank < 2 or b.rank < 2:
        raise LayerError(f"needs inputs of at least 2 axes, got {a} and {b}")
    m, k = a.dims[-2], static_dim(a, a.rank - 1)
    kb, n = (b.dims[-1], b.dims[-2]) if transpose_b else (b.dims[-2], b.dims[-1])
    if kb != k:
        written = "the last axis" if transpose_b else "the second-to-last axis"
        raise LayerError(
            f"cannot multiply {a} by {b}: the first's last axis is {k}, the second's {written} {kb}"
        )
    batch_a, batch_b = a.dims[:-2], b.dims[:-2]
    width = max(len(batch_a), len(batch_b))
    batch_a = (1,) * (width - len(batch_a)) + batch_a
    batch_b = (1,) * (width - len(batch_b)) + batch_b
    batch: list[Dim] = []
    for da, db in zip(batch_a, batch_b, strict=True):
        if da != db and 1 not in (da, db):
            raise LayerError(f"cannot broadcast the batch axes of {a} and {b}")
        batch.append(db if da == 1 else da)
    if not isinstance(m, int) or not isinstance(n, int):
        raise LayerError(f"needs fixed sizes in the multiplied axes of {a} and {b}")
    return tuple(batch), m, k, n


@register
class MatMul(Layer["MatMul.Params"]):
    """The matrix product of two activations over their last two axes, the leading axes
    broadcast as numpy's ``matmul`` does (attention's QKᵀ and AV); ``transpose_b`` multiplies by
    the second input's transpose in its last two axes.

    MACs = (product of the broadcast batch dims)·M·K·N; FLOPs = 2·MACs.
    """

    type_name = "MatMul"
    arity = Arity(2, 2)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        transpose_b: bool = param(Bool(), False, "multiply by the second input transposed (last two axes)")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        batch, m, _, n = _matmul_dims(inputs[0], inputs[1], self.params.transpose_b)
        return (TensorType((*batch, m, n), inputs[0].dtype),)

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        _, _, k, _ = _matmul_dims(inputs[0], inputs[1], self.params.transpose_b)
        return numel(outputs[0]) * k

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * self.macs(inputs, outputs)

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def emit(self, node: Emitter) -> None:
        right = node.inputs[1]
        if self.params.transpose_b:
            b = node.input_types[1]
            right = node.temp("transposed")
            node.add(
                "Transpose", [node.inputs[1]], [right], perm=[*range(b.rank - 2), b.rank - 1, b.rank - 2]
            )
        node.add("MatMul", [node.inputs[0], right], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        a, b = (np.asarray(t, np.float64) for t in inputs)
        return [a @ (np.swapaxes(b, -1, -2) if self.params.transpose_b else b)]


@register
class Take(Layer["Take.Params"]):
    """One index along ``axis``, the axis removed (torch ``x[:, 0]``: ViT's class token;
    ONNX Gather with a scalar index). Counts nothing."""

    type_name = "Take"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "the axis indexed (negative: from the end)")
        index: int = param(Int(), 0, "the index taken (negative: from the end)")

    def position(self, x: TensorType) -> tuple[int, int]:
        axis = normalize_axis(self.params.axis, x)
        if axis == 0:
            raise LayerError("cannot index the batch axis", param="axis")
        size = static_dim(x, axis)
        if not -size <= self.params.index < size:
            raise LayerError(
                f"index {self.params.index} is out of range for axis {axis} of {x}", param="index"
            )
        return axis, self.params.index % size

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        axis, _ = self.position(x)
        return (TensorType(x.dims[:axis] + x.dims[axis + 1 :], x.dtype),)

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def emit(self, node: Emitter) -> None:
        axis, index = self.position(node.input_types[0])
        indices = node.constant("index", np.array(index, np.int64))
        node.add("Gather", [node.inputs[0], indices], node.outputs, axis=axis)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        axis, index = self.position(TensorType(x.shape))
        return [np.take(x, index, axis=axis)]


def tokens_input(layer: Layer, x: TensorType) -> int:
    """The width D of a token sequence [N, L, D] (static)."""
    if x.rank != 3:
        raise LayerError(f"expects a token sequence [N, L, D], got {x.rank}-D {x}")
    return static_dim(x, 2)


@register
class ClassToken(Layer["ClassToken.Params"]):
    """``tokens`` learned vectors put before the sequence along axis 1 (ViT's class token):
    [N, L, D] becomes [N, L + tokens, D]. The array, [1, tokens, D], is named ``array`` in the
    layer's scope (torchvision: ``class_token``) and starts at zeros, as torchvision's does.

    params = tokens·D; counts nothing else. Emitted as Expand to the batch, then Concat.
    """

    type_name = "ClassToken"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        tokens: int = param(Int(min=1), 1, "how many learned tokens")
        array: str = param(Str(), "class_token", "the array's name, in the layer's scope")
        filler: Filler | None = param(FillerBlock(), None, "initial values (default: constant 0)")

    def check(self) -> None:
        check_filler(self.params.filler, "filler", None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        tokens_input(self, x)
        return (TensorType((x.dims[0], static_dim(x, 1) + self.params.tokens, x.dims[2]), x.dtype),)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        shape = (1, self.params.tokens, tokens_input(self, inputs[0]))
        return (ParamSpec(self.params.array, shape, init=self.params.filler or ZEROS, beside=True),)

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        token = node.param(self.params.array)
        width = tokens_input(self, x)
        if isinstance(x.dims[0], int):
            shape = node.constant("shape", np.array([x.dims[0], self.params.tokens, width], np.int64))
        else:
            full, batch, shape = node.temp("input_shape"), node.temp("batch"), node.temp("shape")
            node.add("Shape", node.inputs, [full])
            starts, ends = (
                node.constant("starts", np.array([0], np.int64)),
                node.constant("ends", np.array([1], np.int64)),
            )
            node.add("Slice", [full, starts, ends], [batch])
            rest = node.constant("rest", np.array([self.params.tokens, width], np.int64))
            node.add("Concat", [batch, rest], [shape], axis=0)
        expanded = node.temp("expanded")
        node.add("Expand", [token, shape], [expanded])
        node.add("Concat", [expanded, node.inputs[0]], node.outputs, axis=1)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        token = np.broadcast_to(
            np.asarray(weights[self.params.array], np.float64), (x.shape[0], self.params.tokens, x.shape[2])
        )
        return [np.concatenate([token, x], axis=1)]


@register
class PositionEmbedding(Layer["PositionEmbedding.Params"]):
    """A learned array of the input's shape per batch item added to it (ViT's
    ``encoder.pos_embedding``): [1, ...] broadcast over the batch, named ``array`` in the layer's
    scope, drawn N(0, 0.02²) as torchvision draws it.

    params = the size of one batch item; FLOPs = 1 per element.
    """

    type_name = "PositionEmbedding"
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        array: str = param(Str(), "pos_embedding", "the array's name, in the layer's scope")
        filler: Filler | None = param(FillerBlock(), None, "initial values (default: gaussian std 0.02)")

    def check(self) -> None:
        check_filler(self.params.filler, "filler", None)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        for axis in range(1, x.rank):
            static_dim(x, axis)
        return (x,)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        x = inputs[0]
        shape = (1, *(static_dim(x, a) for a in range(1, x.rank)))
        init = self.params.filler or Filler("gaussian", std=0.02)
        return (ParamSpec(self.params.array, shape, init=init, beside=True),)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(outputs[0])

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def emit(self, node: Emitter) -> None:
        node.add("Add", [node.inputs[0], node.param(self.params.array)], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64) + np.asarray(weights[self.params.array], np.float64)]


@register
class MultiheadAttention(Layer["MultiheadAttention.Params"]):
    """Multi-head self-attention over a token sequence [N, L, D] (torch ``nn.MultiheadAttention``
    with ``batch_first``, query = key = value = the input): q, k, v = x·in_proj_weightᵀ +
    in_proj_bias split in three, per head h of d = D/heads: softmax(q_h·k_hᵀ/√d)·v_h, the heads
    concatenated and projected by ``out_proj``. Stored as torch names it: ``in_proj_weight``
    [3D, D], ``in_proj_bias`` [3D], ``out_proj.weight`` [D, D], ``out_proj.bias`` [D].

    Every output token reads every input token: the receptive field of global attention is the
    whole input (token sequences have no spatial layout, so netspec reports none).

    params = 4·D² + 4·D; MACs = N·(4·L·D² + 2·L²·D) (projections 3·L·D² and L·D², then QKᵀ and
    AV, L²·d per head each, the activation × activation products torchvision's GFLOPS counts);
    FLOPs = 2·MACs + N·(4·L·D bias adds + L·D for the 1/√d scale + 3·heads·L² for the softmax).

    A layer rather than a template: one node of the spec emits the projection as one Gemm on the
    token rows reading torch's [3D, D] weight as stored (``transB=1``: no constant for
    onnxruntime to fold when it loads the model), one Reshape/Transpose to heads, the 1/√d
    scale on the queries (a Mul by a scalar, which onnxruntime fuses into the MatMul), two
    batched MatMuls and the output Gemm — torch's own export less its sequence-first
    Transposes.
    """

    type_name = "MultiheadAttention"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_heads: int = param(Int(min=1), doc="attention heads (D must divide by it)")
        bias: bool = param(Bool(), True, "learned biases of the input and output projections")

    def sizes(self, x: TensorType) -> tuple[int, int, int]:
        """(L, D, d): sequence length, width, head width."""
        width = tokens_input(self, x)
        heads = self.params.num_heads
        if width % heads:
            raise LayerError(f"num_heads {heads} does not divide the width {width} of {x}", param="num_heads")
        return static_dim(x, 1), width, width // heads

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.sizes(inputs[0])
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        _, width, _ = self.sizes(inputs[0])
        # torch: xavier_uniform_ on in_proj_weight (fans D and 3D... as a [3D, D] matrix), zero biases.
        arrays = [ParamSpec("in_proj_weight", (3 * width, width), init=Filler("xavier"))]
        if self.params.bias:
            arrays.append(ParamSpec("in_proj_bias", (3 * width,), init=ZEROS))
        arrays.append(ParamSpec("out_proj.weight", (width, width)))
        if self.params.bias:
            arrays.append(ParamSpec("out_proj.bias", (width,), init=ZEROS))
        return tuple(arrays)

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        length, width, _ = self.sizes(inputs[0])
        return batch_size(inputs[0]) * (4 * length * width * width + 2 * length * length * width)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        length, width, _ = self.sizes(inputs[0])
        extra = (4 * length * width if self.params.bias else 0) + length * width
        extra += 3 * self.params.num_heads * length * length
        return 2 * self.macs(inputs, outputs) + batch_size(inputs[0]) * extra

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        length, width, head = self.sizes(x)
        heads = self.params.num_heads
        batch = x.dims[0]
        split = node.temp("qkv_heads")
        emit_linear(
            node,
            node.inputs[0],
            x,
            node.param("in_proj_weight"),
            node.param("in_proj_bias") if self.params.bias else None,
            3 * width,
            split,
            reshaped_to=(batch, length, 3, heads, head),
            suffix="heads",
        )
        logits, v = emit_attention_logits(node, split, head)
        weights, mixed = node.temp("weights"), node.temp("mixed")
        node.add("Softmax", [logits], [weights], axis=-1)
        node.add("MatMul", [weights, v], [mixed])
        merged, joined = node.temp("merged"), node.temp("joined")
        node.add("Transpose", [mixed], [merged], perm=[0, 2, 1, 3])  # [N, L, heads, d]
        emit_reshape(
            node,
            merged,
            TensorType((batch, length, heads, head)),
            (batch, length, width),
            joined,
            suffix="join_shape",
        )
        emit_linear(
            node,
            joined,
            TensorType((batch, length, width)),
            node.param("out_proj.weight"),
            node.param("out_proj.bias") if self.params.bias else None,
            width,
            node.outputs[0],
            suffix="out",
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        batch, length, width = x.shape
        heads = self.params.num_heads
        head = width // heads
        qkv = x @ np.asarray(weights["in_proj_weight"], np.float64).T
        if self.params.bias:
            qkv = qkv + np.asarray(weights["in_proj_bias"], np.float64)
        q, k, v = (
            part.reshape(batch, length, heads, head).transpose(0, 2, 1, 3) for part in np.split(qkv, 3, -1)
        )
        logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head)
        logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
        attention = logits / logits.sum(axis=-1, keepdims=True)
        mixed = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        y = mixed @ np.asarray(weights["out_proj.weight"], np.float64).T
        if self.params.bias:
            y = y + np.asarray(weights["out_proj.bias"], np.float64)
        return [y]


@register
class StochasticDepth(Elementwise["StochasticDepth.Params"]):
    """Stochastic depth (Huang et al. 2016; torchvision ``StochasticDepth``): at training, a
    residual branch dropped with probability ``p`` per sample (``row``) or per batch; at
    inference, the identity (an ONNX Identity, which onnxruntime removes). FLOPs = 0.
    """

    type_name = "StochasticDepth"
    output_memory = "view"
    flops_per_element = 0

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        p: float = param(Float(min=0.0, max=1.0), 0.0, "training-time drop probability")
        mode: str = param(Enum(("row", "batch")), "row", "drop per sample (row) or per batch")

    def emit(self, node: Emitter) -> None:
        node.add("Identity", node.inputs, node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(inputs[0], np.float64)]


@register
class LayerScale(Layer["LayerScale.Params"]):
    """The input multiplied by a learned per-feature factor along ``axis`` (Touvron et al.'s
    layer scale; ConvNeXt's ``layer_scale`` [C, 1, 1] at axis 1 of NCHW, CaiT's [D] at the last
    axis); with a second input, the residual it is added to (ConvNeXt's
    ``layer_scale * block(x) + x``: one step, as torchvision's CNBlock does it). The array,
    named ``array`` in the layer's scope, has the dims of ``axis`` followed by ones to the last
    axis, and starts at ``init`` (torchvision: 1e-6).

    params = the size of the scaled axis; FLOPs = 1 per element (+ 1 with the residual).
    Receptive fields follow both inputs (the residual path is the narrower one).
    """

    type_name = "LayerScale"
    arity = Arity(1, 2)
    output_memory = "in_place"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        axis: int = param(Int(), 1, "the scaled axis (negative: from the end)")
        init: float = param(Float(), 1e-6, "initial value of every factor")
        array: str = param(Str(), "layer_scale", "the array's name, in the layer's scope")

    def shape(self, x: TensorType) -> tuple[int, ...]:
        axis = normalize_axis(self.params.axis, x)
        return aligned_shape((static_dim(x, axis),), x.rank, axis)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.shape(inputs[0])
        if len(inputs) == 2 and inputs[1].dims != inputs[0].dims:
            raise LayerError(f"needs a residual of the input's shape {inputs[0]}, got {inputs[1]}")
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        init = Filler("constant", self.params.init)
        return (ParamSpec(self.params.array, self.shape(inputs[0]), init=init, beside=True),)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return len(inputs) * numel(outputs[0])

    def input_channel_scale(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[int, int, np.ndarray] | None:
        axis = normalize_axis(self.params.axis, inputs[0])
        return 0, axis, np.asarray(arrays[self.params.array], np.float64).reshape(-1)

    def without_input_channel_scale(self, count: int) -> Layer[Any]:
        # What is left of layer_scale · x (+ residual): the sum, or x itself (an Identity, which
        # the emitter elides).
        if count == 2:
            return Eltwise(Eltwise.Params())
        return Dropout(Dropout.Params(dropout_ratio=0.0))

    def emit(self, node: Emitter) -> None:
        factor = node.param(self.params.array)
        if len(node.inputs) == 1:
            node.add("Mul", [node.inputs[0], factor], node.outputs)
            return
        scaled = node.temp("scaled")
        node.add("Mul", [node.inputs[0], factor], [scaled])
        node.add("Add", [scaled, node.inputs[1]], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        y = np.asarray(inputs[0], np.float64) * np.asarray(weights[self.params.array], np.float64)
        return [y + np.asarray(inputs[1], np.float64) if len(inputs) == 2 else y]
