"""NetVLAD: soft-assignment VLAD pooling of local descriptors into one global descriptor
(Arandjelović et al., "NetVLAD: CNN architecture for weakly supervised place recognition",
CVPR 2016)."""

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
    LayerParams,
    ParamSpec,
    emit_reshape,
    expect_rank,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np

# Norms are floored here before dividing (torch's F.normalize default): an all-zero vector
# stays zero instead of becoming NaN.
NORM_EPSILON = 1e-12


@register
class NetVLAD(Layer["NetVLAD.Params"]):
    """NetVLAD over the H·W descriptors x_i ∈ R^D of an [N, D, H, W] map: soft assignment
    a_k(x_i) = softmax_k(w_k·x_i + b_k) (a 1×1 convolution), residuals
    V(k, ·) = Σ_i a_k(x_i)(x_i − c_k), each row V(k, ·) L2-normalised (intra-normalisation), then
    the flattened [N, K·D] vector (index k·D + d) L2-normalised. With ``normalize_input`` each
    descriptor is L2-normalised first (as the paper's VGG-16 conv5_3 models do). Norms below
    1e-12 count as 1e-12.

    params = K·D + K (assignment weight [K, D, 1, 1] and bias) + K·D (centroids [K, D]);
    MACs = 2·N·H·W·K·D (the assignment convolution and the aggregation matmul);
    FLOPs = 2·MACs + N·H·W·K·4 (bias, softmax's 3) + N·K·D·2 (centroid term) + normalisations at
    3 per element normalised (square, add, divide): N·D·H·W (input, optional) + 2·N·K·D.
    """

    type_name = "NetVLAD"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_clusters: int = param(Int(min=1), doc="K, the number of cluster centres")
        normalize_input: bool = param(Bool(), True, "L2-normalise each descriptor before assigning it")

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        for axis in (2, 3):  # the weights do not depend on H and W, but the reshapes need them
            static_dim(x, axis)
        return (TensorType((x.dims[0], self.params.num_clusters * static_dim(x, 1)), x.dtype),)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        k, d = self.params.num_clusters, static_dim(inputs[0], 1)
        return (
            ParamSpec("weight", (k, d, 1, 1)),
            ParamSpec("bias", (k,), init=ZEROS),
            ParamSpec("centroids", (k, d)),
        )

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 2 * numel(inputs[0]) * self.params.num_clusters

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        x = inputs[0]
        positions = numel(x) // static_dim(x, 1)
        k = self.params.num_clusters
        vlad = numel(outputs[0])
        normalised = 3 * numel(x) if self.params.normalize_input else 0
        return 2 * self.macs(inputs, outputs) + 4 * positions * k + 2 * vlad + normalised + 6 * vlad

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        batch, d = x.dims[0], static_dim(x, 1)
        positions, k = static_dim(x, 2) * static_dim(x, 3), self.params.num_clusters
        descriptors = node.inputs[0]
        if self.params.normalize_input:
            descriptors = node.temp("normalized_input")
            _emit_l2_normalize(node, node.inputs[0], 1, descriptors, "input")
        logits, assignment = node.temp("logits"), node.temp("assignment")
        node.add(
            "Conv", [descriptors, node.param("weight"), node.param("bias")], [logits], kernel_shape=[1, 1]
        )
        node.add("Softmax", [logits], [assignment], axis=1)
        flat_assignment, flat_x, by_position = (
            node.temp("flat_assignment"),
            node.temp("flat_x"),
            node.temp("x_t"),
        )
        emit_reshape(
            node, assignment, TensorType((batch, k, *x.dims[2:])), (batch, k, positions), flat_assignment
        )
        emit_reshape(node, descriptors, x, (batch, d, positions), flat_x, "x_shape")
        node.add("Transpose", [flat_x], [by_position], perm=[0, 2, 1])
        aggregated, mass, weighted, residuals = (
            node.temp("aggregated"),
            node.temp("mass"),
            node.temp("weighted_centroids"),
            node.temp("residuals"),
        )
        node.add("MatMul", [flat_assignment, by_position], [aggregated])  # [N, K, D]: Σ_i a_ik x_i
        _emit_reduce(node, "ReduceSum", flat_assignment, 2, mass)  # [N, K, 1]: Σ_i a_ik
        node.add("Mul", [mass, node.param("centroids")], [weighted])
        node.add("Sub", [aggregated, weighted], [residuals])
        intra, flat = node.temp("intra_normalized"), node.temp("flat")
        _emit_l2_normalize(node, residuals, 2, intra, "intra")
        emit_reshape(node, intra, TensorType((batch, k, d)), (batch, k * d), flat, "out_shape")
        _emit_l2_normalize(node, flat, 1, node.outputs[0], "output")

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        w = np.asarray(weights["weight"], np.float64)[:, :, 0, 0]
        b = np.asarray(weights["bias"], np.float64)
        centroids = np.asarray(weights["centroids"], np.float64)
        k = self.params.num_clusters
        result = np.empty((x.shape[0], k * x.shape[1]))
        for n in range(x.shape[0]):
            descriptors = x[n].reshape(x.shape[1], -1).T  # [H·W, D]
            if self.params.normalize_input:
                descriptors = np.stack([_normalized(v) for v in descriptors])
            vlad = np.zeros((k, x.shape[1]))
            for descriptor in descriptors:
                scores = w @ descriptor + b
                assignment = np.exp(scores - scores.max())
                assignment /= assignment.sum()
                for cluster in range(k):
                    vlad[cluster] += assignment[cluster] * (descriptor - centroids[cluster])
            vlad = np.stack([_normalized(row) for row in vlad])
            result[n] = _normalized(vlad.ravel())
        return [result]


def _normalized(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.sqrt((vector**2).sum())), NORM_EPSILON)


def _emit_reduce(node: Emitter, op: str, source: str, axis: int, output: str) -> None:
    """A keepdims reduction over one axis; the axes are an input from opset 18 on (ReduceSum
    from 13), an attribute before."""
    axes_are_input = node.opset >= (13 if op == "ReduceSum" else 18)
    if axes_are_input:
        axes = node.constant(f"{output.rsplit('/', 1)[-1]}_axes", np.array([axis], np.int64))
        node.add(op, [source, axes], [output], keepdims=1)
    else:
        node.add(op, [source], [output], axes=[axis], keepdims=1)


def _emit_l2_normalize(node: Emitter, source: str, axis: int, output: str, suffix: str) -> None:
    """``source`` divided by its L2 norm along ``axis``, floored at NORM_EPSILON (ReduceL2, Max,
    Div: LpNormalization has no CUDA kernel)."""
    norm, floored = node.temp(f"{suffix}_norm"), node.temp(f"{suffix}_norm_floored")
    _emit_reduce(node, "ReduceL2", source, axis, norm)
    node.add("Max", [norm, node.constant(f"{suffix}_epsilon", np.array(NORM_EPSILON, np.float32))], [floored])
    node.add("Div", [source, floored], [output])
