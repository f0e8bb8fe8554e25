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
        scale, shift = _composed([affine for _, affine in chain])
        folded_arrays.update(_absorbed(node, types, weights, scale, shift, bias_name))
        params = dataclasses.replace(node.layer.params, bias_term=True)
        folded_layer = type(node.layer)(params, node.layer.output_count)
        removed.update(n.name for n, _ in chain)
        folds.append(Fold(node.name, tuple(n.name for n, _ in chain)))
        replacements[node.name] = dataclasses.replace(
            node, layer=folded_layer, outputs=chain[-1][0].outputs, array_names=(), frozen_arrays=()
        )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes if n.name not in removed)
    folded = dataclasses.replace(graph, nodes=nodes)
    kept_types = {t: types[t] for n in folded.nodes for t in n.outputs}
    return FoldedGraph(folded, kept_types, new_weights, tuple(folds))


def _array_names(node: Node, types: Mapping[str, TensorType]) -> dict[str, str]:
    """``node``'s arrays, each full name by the layer's name for it (``weight``: ``conv1.weight``)."""
    return {a.spec.name: a.name for a in node_arrays(node, [types[t] for t in node.inputs])}


Affine = tuple[np.ndarray, np.ndarray]  # per channel y = a·x + b, float64


def _absorbs(node: Node, types: Mapping[str, TensorType]) -> bool:
    """Whether a per-channel affine after ``node`` can fold into it: one output with channels,
    a layer that declares it can, arrays of its own (not shared by Caffe's ``param { name }``)."""
    if len(node.outputs) != 1 or any(name is not None for name in node.array_names):
        return False
    output = types[node.outputs[0]]
    return output.rank >= 2 and node.layer.absorbs_channel_affine(output)


def _absorbed(
    node: Node,
    types: Mapping[str, TensorType],
    weights: Mapping[str, np.ndarray],
    scale: np.ndarray,
    shift: np.ndarray | None,
    bias_name: str,
) -> dict[str, np.ndarray]:
    """``node``'s weight and bias (``bias_name``) with y = scale·y + shift folded in, float32.
    Without a shift a missing bias stays missing."""
    arrays = _array_names(node, types)
    weight = np.asarray(weights[arrays["weight"]], np.float64)
    result = {arrays["weight"]: node.layer.scale_output_channels(weight, scale).astype(np.float32)}
    bias = np.asarray(weights[bias_name], np.float64) if "bias" in arrays else None
    if bias is not None or shift is not None:
        folded = (0.0 if bias is None else bias) * scale + (0.0 if shift is None else shift)
        result[bias_name] = np.asarray(folded).astype(np.float32)
    return result


def _foldable_chain(
    graph: Graph, types: Mapping[str, TensorType], weights: Mapping[str, np.ndarray], node: Node
) -> list[tuple[Node, Affine]]:
    """The per-channel affine layers, each with its affine, that ``node``'s output can be
    folded into it from (empty when none can)."""
    if not _absorbs(node, types):
        return []
    channels = types[node.outputs[0]].dims[1]
    chain: list[tuple[Node, Affine]] = []
    tensor = node.outputs[0]
    while (consumer := _sole_consumer(graph, tensor)) is not None:
        arrays = {name: weights[full] for name, full in _array_names(consumer, types).items()}
        affine = consumer.layer.channel_affine([types[t] for t in consumer.inputs], arrays)
        if affine is None or affine[0].shape != (channels,):
            break
        chain.append((consumer, affine))
        tensor = consumer.outputs[0]
    return chain


def _sole_consumer(graph: Graph, tensor: str) -> Node | None:
    consumers = graph.consumers.get(tensor, [])
    if len(consumers) != 1 or tensor in graph.outputs or consumers[0].inputs != (tensor,):
        return None
    return consumers[0]


def _composed(affines: list[Affine]) -> Affine:
    """A chain of per-channel affines, applied in order, as one."""
    scale, shift = affines[0]
    for a, b in affines[1:]:
        scale, shift = scale * a, shift * a + b
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
            if graph.consumers.get(tensor) != [node] or tensor in graph.outputs:
                continue
            if not _absorbs(producer, types):
                continue
            factor = np.full(types[tensor].dims[1], scale, np.float64)
            bias_name = _array_names(producer, types).get("bias", "")
            folded_arrays.update(_absorbed(producer, types, weights, factor, None, bias_name))
            kept[index] = 1.0
            folds.append(Fold(producer.name, (f"{node.name} coeff {scale:g}",)))
        if kept != list(scales):
            replacements[node.name] = dataclasses.replace(
                node, layer=node.layer.with_input_scales(tuple(kept))
            )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes)
    return FoldedGraph(dataclasses.replace(graph, nodes=nodes), dict(types), new_weights, tuple(folds))
