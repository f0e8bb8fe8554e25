"""BatchNorm folding: a Convolution, Deconvolution or InnerProduct followed by a BatchNorm (and
optionally a per-channel Scale) becomes that one layer with folded weights and bias.

A graph-level transform over (graph, types, weights), run before emission, so that the ONNX
builder stays the one place that lowers layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from netspec.graph import Graph, Node, TensorType
from netspec.layers.base import normalize_axis
from netspec.layers.conv import Convolution, Deconvolution
from netspec.layers.linear import InnerProduct
from netspec.layers.norm import BatchNorm, Scale, caffe_statistics_factor
from netspec.weights import node_arrays


@dataclass(frozen=True)
class Fold:
    """One folded chain: the layer kept (under its own name) and the layers merged into it."""

    kept: str
    merged: tuple[str, ...]


@dataclass(frozen=True)
class FoldedGraph:
    """The graph after folding, its weights (the kept layers' arrays replaced, a bias added
    where they had none) and the folds made."""

    graph: Graph
    types: dict[str, TensorType]
    weights: dict[str, np.ndarray]
    folds: tuple[Fold, ...]


def fold_batchnorm(
    graph: Graph, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> FoldedGraph:
    """Fold every foldable chain of ``graph``; everything else is left as it is.

    A chain folds when the weighted layer's output is read only by a BatchNorm (over axis 1,
    which must be the layer's output channels: conv layers, and InnerProduct with a 2-D output)
    whose output, when a Scale follows, is read only by that Scale (one input, factor over axis
    1 only). No intermediate tensor may be a graph output, and the weighted layer's arrays must be
    its own (not shared with another layer through Caffe's ``param { name }``).

    With the BatchNorm as y = a·x + b per channel (a = γ/√(var + eps), b = β − mean·a, Caffe's
    statistics divided by its scale factor) and the Scale as y = s·x + t, the kept layer's
    weight rows of output channel o are multiplied by a_o (times s_o) and its bias becomes
    a·bias + b (then s·(…) + t). The arithmetic is in float64, stored as float32.
    """
    replacements: dict[str, Node] = {}
    removed: set[str] = set()
    new_weights = dict(weights)
    folds = []
    for node in graph.nodes:
        chain = _foldable_chain(graph, types, node)
        if chain is None:
            continue
        layer = node.layer
        arrays = _array_names(node, types)
        weight_name = arrays["weight"]
        bias_name = arrays.get("bias", f"{node.name}.bias")
        if "bias" not in arrays and bias_name in weights:
            continue  # the name a bias would take is already another array's
        scale, shift = _chain_affine(chain, types, weights)
        weight = np.asarray(weights[weight_name], np.float64)
        bias = np.asarray(weights[bias_name], np.float64) if "bias" in arrays else 0.0
        new_weights[weight_name] = (weight * _per_output_channel(layer, weight.shape, scale)).astype(
            np.float32
        )
        new_weights[bias_name] = (bias * scale + shift).astype(np.float32)
        params = dataclasses.replace(layer.params, bias_term=True)
        folded_layer = type(layer)(params, layer.output_count)
        removed.update(n.name for n in chain)
        folds.append(Fold(node.name, tuple(n.name for n in chain)))
        replacements[node.name] = dataclasses.replace(
            node, layer=folded_layer, outputs=chain[-1].outputs, array_names=(), frozen_arrays=()
        )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes if n.name not in removed)
    folded = dataclasses.replace(graph, nodes=nodes)
    kept_types = {t: types[t] for n in folded.nodes for t in n.outputs}
    return FoldedGraph(folded, kept_types, new_weights, tuple(folds))


def _array_names(node: Node, types: Mapping[str, TensorType]) -> dict[str, str]:
    """``node``'s arrays, each full name by the layer's name for it (``weight``: ``conv1.weight``)."""
    return {a.spec.name: a.name for a in node_arrays(node, [types[t] for t in node.inputs])}


def _foldable_chain(graph: Graph, types: Mapping[str, TensorType], node: Node) -> list[Node] | None:
    """The BatchNorm (and Scale) that ``node``'s output can be folded into it from, or None."""
    if not isinstance(node.layer, (Convolution, InnerProduct)) or len(node.outputs) != 1:
        return None
    if any(name is not None for name in node.array_names):
        return None
    if isinstance(node.layer, InnerProduct) and types[node.outputs[0]].rank != 2:
        return None
    batchnorm = _sole_consumer(graph, node.outputs[0])
    if batchnorm is None or not isinstance(batchnorm.layer, BatchNorm):
        return None
    chain = [batchnorm]
    scale = _sole_consumer(graph, batchnorm.outputs[0])
    if scale is not None and _is_channel_scale(scale, types):
        chain.append(scale)
    return chain


def _sole_consumer(graph: Graph, tensor: str) -> Node | None:
    consumers = graph.consumers.get(tensor, [])
    if len(consumers) != 1 or tensor in graph.outputs or consumers[0].inputs != (tensor,):
        return None
    return consumers[0]


def _is_channel_scale(node: Node, types: Mapping[str, TensorType]) -> bool:
    if not isinstance(node.layer, Scale) or len(node.inputs) != 1:
        return False
    x = types[node.inputs[0]]
    return node.layer.params.num_axes == 1 and normalize_axis(node.layer.params.axis, x) == 1


def _chain_affine(
    chain: list[Node], types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The chain as one per-channel y = scale·x + shift, in float64."""
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    for node in chain:
        local = {
            spec_name: np.asarray(weights[name], np.float64).reshape(-1)
            for spec_name, name in _array_names(node, types).items()
        }
        if isinstance(node.layer, BatchNorm):
            p = node.layer.params
            factor = caffe_statistics_factor(local["scale_factor"]) if p.caffe_scale_factor else 1.0
            a = 1.0 / np.sqrt(local["running_var"] * factor + p.eps)
            b = -local["running_mean"] * factor * a
            if p.affine:
                a, b = a * local["weight"], b * local["weight"] + local["bias"]
        else:
            a = local["weight"]
            b = local.get("bias", np.zeros_like(a))
        scale, shift = (a, b) if scale is None else (scale * a, shift * a + b)
    assert scale is not None and shift is not None
    return scale, shift


def _per_output_channel(
    layer: Convolution | InnerProduct, shape: tuple[int, ...], scale: np.ndarray
) -> np.ndarray:
    """``scale`` (one value per output channel) shaped to multiply the layer's weight.

    Convolution and InnerProduct weights lead with the output channel; a Deconvolution weight is
    [Cin, Cout/g, kh, kw], where input channel i of group i // (Cin/g) feeds output channel
    (i // (Cin/g))·(Cout/g) + j.
    """
    if isinstance(layer, Deconvolution):
        group = layer.params.group
        in_channels, out_per_group = shape[0], shape[1]
        by_group = scale.reshape(group, out_per_group)
        rows = by_group[np.arange(in_channels) // (in_channels // group)]
        return rows.reshape(in_channels, out_per_group, *(1,) * (len(shape) - 2))
    return scale.reshape(-1, *(1,) * (len(shape) - 1))
