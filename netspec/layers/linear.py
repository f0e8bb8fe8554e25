"""Fully connected layers: Caffe InnerProduct (torch Linear)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import Dim, TensorType
from netspec.layers.base import (
    HE_UNIFORM,
    IDENTITY_WINDOW,
    ZEROS,
    Bool,
    Emitter,
    Filler,
    FillerBlock,
    Int,
    Layer,
    LayerError,
    LayerParams,
    ParamSpec,
    Window,
    check_filler,
    emit_reshape,
    normalize_axis,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np

# The rows a Gemm reads when the leading dims they merge include a symbolic one.
ROWS = "rows"


def emit_linear(
    node: Emitter,
    x: str,
    x_type: TensorType,
    weight: str,
    bias: str | None,
    out_features: int,
    output: str,
    *,
    reshaped_to: Sequence[Dim] | None = None,
    suffix: str = "linear",
) -> None:
    """Add y = x·Wᵀ (+ b) over the last axis of ``x``, with ``weight`` as it is stored: [out, in],
    torch's Linear layout. One Gemm (``transB=1``) reads that weight directly — no Transpose of
    a constant for onnxruntime to fold while it creates the session (~0.4 s for ViT-B/16's) —
    on the rows of ``x``: inputs of rank > 2 are flattened to rows before it and reshaped after
    it (to ``x``'s leading dims and ``out_features``, or to ``reshaped_to``), which onnxruntime
    does without a copy. The Reshape's shape constant is named ``{suffix}_shape``."""
    operands = [weight] if bias is None else [weight, bias]
    if x_type.rank == 2 and reshaped_to is None:
        node.add("Gemm", [x, *operands], [output], transB=1)
        return
    rows, product = node.temp(f"{suffix}_rows"), node.temp(f"{suffix}_product")
    if x_type.rank == 2:
        rows = x
    else:
        node.add("Flatten", [x], [rows], axis=x_type.rank - 1)
    node.add("Gemm", [rows, *operands], [product], transB=1)
    leading = x_type.dims[:-1]
    count = math.prod(leading) if all(isinstance(d, int) for d in leading) else ROWS
    target = (*leading, out_features) if reshaped_to is None else tuple(reshaped_to)
    emit_reshape(node, product, TensorType((count, out_features)), target, output, suffix=f"{suffix}_shape")


def emit_attention_logits(node: Emitter, qkv_heads: str, head: int) -> tuple[str, str]:
    """From the projected [N', L, 3, heads, d] tensor, the attention logits q·kᵀ/√d per head
    [N', heads, L, L] and the values v [N', heads, L, d] (returned in that order): one Transpose
    to [3, N', heads, L, d], a Gather of each of q, k, v, the 1/√d as a Mul by a scalar on the
    queries (which onnxruntime fuses into the MatMul's alpha) and kᵀ as a Transpose of its last
    two axes (fused into the MatMul too)."""
    stacked = node.temp("qkv_stacked")
    node.add("Transpose", [qkv_heads], [stacked], perm=[2, 0, 3, 1, 4])
    q, k, v = node.temp("q"), node.temp("k"), node.temp("v")
    for index, name in enumerate((q, k, v)):
        node.add(
            "Gather", [stacked, node.constant(f"index_{index}", np.array(index, np.int64))], [name], axis=0
        )
    scaled_q, k_t, logits = node.temp("q_scaled"), node.temp("k_t"), node.temp("logits")
    query_scale = node.constant("query_scale", np.array(1.0 / math.sqrt(head), np.float32))
    node.add("Mul", [q, query_scale], [scaled_q])
    node.add("Transpose", [k], [k_t], perm=[0, 1, 3, 2])
    node.add("MatMul", [scaled_q, k_t], [logits])
    return logits, v


@register
class InnerProduct(Layer["InnerProduct.Params"]):
    """Fully connected: every dim from ``axis`` on is flattened into ``in`` features.

    params = out·in (+ out bias); MACs = rows·in·out, where rows = the product of the dims
    before ``axis`` (N by default); FLOPs = 2·MACs + rows·out when there is a bias.

    Emitted as one Gemm reading the [out, in] weight as stored (``transB=1``): after a Flatten
    for ``axis: 1``, and between a Flatten to rows and a Reshape back when dims before ``axis``
    stay (tokens [N, L, D] or a channels-last map with ``axis: -1``).
    """

    type_name = "InnerProduct"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_output: int = param(Int(min=1), doc="output features")
        bias_term: bool = param(Bool(), True, "add a learned bias")
        axis: int = param(Int(), 1, "first axis flattened into the features (negative: from the end)")
        weight_filler: Filler | None = param(
            FillerBlock(), None, "initial weights (default: He-uniform, bound √(6/in))"
        )
        bias_filler: Filler | None = param(FillerBlock(), None, "initial bias (default: constant 0)")

    def check(self) -> None:
        check_filler(self.params.weight_filler, "weight_filler", None)
        check_filler(self.params.bias_filler, "bias_filler", None)

    def feature_axis(self, x: TensorType) -> int:
        axis = normalize_axis(self.params.axis, x)
        if axis == 0:
            raise LayerError(
                f"axis {self.params.axis} would fold the batch axis of {x} into the features", param="axis"
            )
        return axis

    def in_features(self, x: TensorType) -> int:
        return math.prod(static_dim(x, a) for a in range(self.feature_axis(x), x.rank))

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        axis = self.feature_axis(x)
        self.in_features(x)  # the weight's shape needs static feature dims: refuse symbolic ones here
        return (TensorType((*x.dims[:axis], self.params.num_output), x.dtype),)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        features = self.in_features(inputs[0])
        p = self.params
        weight = ParamSpec("weight", (p.num_output, features), init=p.weight_filler or HE_UNIFORM)
        if not p.bias_term:
            return (weight,)
        return (weight, ParamSpec("bias", (p.num_output,), init=p.bias_filler or ZEROS))

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(outputs[0]) * self.in_features(inputs[0])

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        bias = numel(outputs[0]) if self.params.bias_term else 0
        return 2 * self.macs(inputs, outputs) + bias

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        # NOTE: over the last axis of a 4-D tensor it is read as channels-last (NHWC, after a
        # Permute, as in ConvNeXt's blocks): a per-pixel map that keeps the field.
        x = inputs[0]
        if x.rank == 4 and self.feature_axis(x) == 3:
            return (IDENTITY_WINDOW, IDENTITY_WINDOW)
        return None

    def absorbs_channel_affine(self, output: TensorType, axis: int = 1) -> bool:
        return axis == output.rank - 1  # the output features are the last axis: [..., out]

    def scale_output_channels(self, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return weight * scale[:, None]  # the weight is [out, in]

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        axis = self.feature_axis(x)
        weight = node.param("weight")
        features = node.inputs[0]
        if axis == 1:
            # NOTE: Gemm takes 2-D inputs only (it rejects 3-D ones at run time), hence Flatten.
            if x.rank > 2:
                features = node.temp("flat")
                node.add("Flatten", node.inputs, [features], axis=1)
            inputs = [features, weight, node.param("bias")] if self.params.bias_term else [features, weight]
            node.add("Gemm", inputs, node.outputs, transB=1)
            return
        # Leading dims beyond the batch stay (e.g. [N, T, D] with axis 2): the features are the
        # last axis, after a reshape when they span several.
        features_type = x
        if x.rank > axis + 1:
            features = node.temp("flat")
            features_type = TensorType((*x.dims[:axis], self.in_features(x)))
            emit_reshape(node, node.inputs[0], x, features_type.dims, features)
        bias = node.param("bias") if self.params.bias_term else None
        emit_linear(node, features, features_type, weight, bias, self.params.num_output, node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        axis = self.feature_axis(TensorType(x.shape))
        rows = x.reshape(*x.shape[:axis], -1)
        y = rows @ np.asarray(weights["weight"], np.float64).T
        if self.params.bias_term:
            y = y + np.asarray(weights["bias"], np.float64)
        return [y]
