"""BatchNorm folding: a layer that can absorb a per-channel affine (Convolution, Deconvolution,
InnerProduct: ``Layer.scale_output_channels``) followed by a chain of per-channel affine layers
(BatchNorm, Caffe's Scale, SegNet's BN: ``Layer.channel_affine``) becomes that one layer with
folded weights and bias.

A graph-level transform over (graph, types, weights), run before emission, so that the ONNX
builder stays the one place that lowers layers; which layers it applies to is what the layer
classes declare.
"""

from __future__ import annotations

import dataclasses
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from netspec.graph import Graph, Node, TensorType
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
    weights: Mapping[str, np.ndarray]
    folds: tuple[Fold, ...]


def fold_batchnorm(
    graph: Graph, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> FoldedGraph:
    """Fold every foldable chain of ``graph``; everything else is left as it is.

    A chain folds when the weighted layer's output is read only by a per-channel affine layer
    (over axis 1, the layer's output channels), whose output is read only by the next one, and
    so on. No intermediate tensor may be a graph output, and the weighted layer's arrays must be
    its own (not shared with another layer through Caffe's ``param { name }``).

    With the chain as y = a·x + b per channel (BatchNorm: a = γ/√(var + eps), b = β − mean·a,
    Caffe's statistics divided by its scale factor; a following Scale y = s·x + t makes it s·a
    and s·b + t), the kept layer's weights of output channel o are multiplied by a_o and its
    bias becomes a·bias + b. The arithmetic is in float64, stored as float32.
    """
    replacements: dict[str, Node] = {}
    removed: set[str] = set()
    # The folded arrays over the given ones, which stay as they are: lazily drawn initial
    # weights are not all drawn here (dict(weights) would hold every array at once).
    folded_arrays: dict[str, np.ndarray] = {}
    new_weights = ChainMap(folded_arrays, weights)
    folds = []
    for node in graph.nodes:
        chain = _foldable_chain(graph, types, weights, node)
        if not chain:
            continue
        arrays = _array_names(node, types)
        bias_name = arrays.get("bias", f"{node.name}.bias")
        if "bias" not in arrays and bias_name in weights:
            continue  # the name a bias would take is already another array's
        scale, shift = _chain_affine(chain, types, weights)
        weight = np.asarray(weights[arrays["weight"]], np.float64)
        scaled = node.layer.scale_output_channels(weight, scale)
        bias = np.asarray(weights[bias_name], np.float64) if "bias" in arrays else 0.0
        folded_arrays[arrays["weight"]] = scaled.astype(np.float32)
        folded_arrays[bias_name] = (bias * scale + shift).astype(np.float32)
        params = dataclasses.replace(node.layer.params, bias_term=True)
        folded_layer = type(node.layer)(params, node.layer.output_count)
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


def _local_arrays(
    node: Node, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return {spec_name: weights[name] for spec_name, name in _array_names(node, types).items()}


def _affine(
    node: Node, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    return node.layer.channel_affine([types[t] for t in node.inputs], _local_arrays(node, types, weights))


def _foldable_chain(
    graph: Graph, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray], node: Node
) -> list[Node]:
    """The per-channel affine layers that ``node``'s output can be folded into it from (empty
    when none can)."""
    if len(node.outputs) != 1 or any(name is not None for name in node.array_names):
        return []
    output = types[node.outputs[0]]
    if not node.layer.absorbs_channel_affine(output) or output.rank < 2:
        return []
    channels = output.dims[1]
    chain: list[Node] = []
    tensor = node.outputs[0]
    while (consumer := _sole_consumer(graph, tensor)) is not None:
        affine = _affine(consumer, types, weights)
        if affine is None or affine[0].shape != (channels,):
            break
        chain.append(consumer)
        tensor = consumer.outputs[0]
    return chain


def _sole_consumer(graph: Graph, tensor: str) -> Node | None:
    consumers = graph.consumers.get(tensor, [])
    if len(consumers) != 1 or tensor in graph.outputs or consumers[0].inputs != (tensor,):
        return None
    return consumers[0]


def _chain_affine(
    chain: list[Node], types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The chain as one per-channel y = scale·x + shift, in float64."""
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    for node in chain:
        affine = _affine(node, types, weights)
        assert affine is not None  # _foldable_chain asked
        a, b = affine
        scale, shift = (a, b) if scale is None else (scale * a, shift * a + b)
    assert scale is not None and shift is not None
    return scale, shift


def fold_input_scales(
    graph: Graph, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray]
) -> FoldedGraph:
    """Fold the constant factor a layer applies to one of its inputs (an Eltwise SUM's
    ``coeff``: Inception-ResNet's residual scaling, stochastic depth's survival probability)
    into the layer that writes that input, when that layer can absorb a per-channel affine and
    the input has no other reader: its weights and bias are multiplied by the factor, which
    becomes 1. The same arithmetic as BatchNorm folding, in float64, stored as float32."""
    replacements: dict[str, Node] = {}
    folded_arrays: dict[str, np.ndarray] = {}
    new_weights = ChainMap(folded_arrays, weights)
    folds = []
    for node in graph.nodes:
        scales = node.layer.input_scales(len(node.inputs))
        if scales is None:
            continue
        kept = list(scales)
        for index, (tensor, scale) in enumerate(zip(node.inputs, scales, strict=True)):
            producer = graph.producers.get(tensor)
            if scale == 1.0 or producer is None or node.inputs.count(tensor) != 1:
                continue
            if graph.consumers.get(tensor) != [node] or tensor in graph.outputs or len(producer.outputs) != 1:
                continue
            if any(name is not None for name in producer.array_names):
                continue
            output = types[tensor]
            if not producer.layer.absorbs_channel_affine(output) or output.rank < 2:
                continue
            arrays = _array_names(producer, types)
            factor = np.full(output.dims[1], scale, np.float64)
            weight = np.asarray(weights[arrays["weight"]], np.float64)
            folded_arrays[arrays["weight"]] = producer.layer.scale_output_channels(weight, factor).astype(
                np.float32
            )
            if "bias" in arrays:
                bias = np.asarray(weights[arrays["bias"]], np.float64)
                folded_arrays[arrays["bias"]] = (bias * scale).astype(np.float32)
            kept[index] = 1.0
            folds.append(Fold(producer.name, (f"{node.name} coeff {scale:g}",)))
        if kept != list(scales):
            replacements[node.name] = dataclasses.replace(
                node, layer=node.layer.with_input_scales(tuple(kept))
            )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes)
    return FoldedGraph(dataclasses.replace(graph, nodes=nodes), dict(types), new_weights, tuple(folds))
