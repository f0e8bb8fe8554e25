"""BatchNorm folding: a layer that can absorb a per-channel affine (Convolution, Deconvolution,
InnerProduct: ``Layer.scale_output_channels``) followed by a chain of per-channel affine layers
(BatchNorm, Caffe's Scale, SegNet's BN: ``Layer.channel_affine``) becomes that one layer with
folded weights and bias."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from netspec.graph import Node
from netspec.passes import Fold, Rewrite
from netspec.passes.affine import Affine, NodeArrays, absorbed, absorbs, array_names, composed
from netspec.typed import TypedGraph, TypedNode
from netspec.weights import overlaid


def fold_batchnorm(typed: TypedGraph, weights: Mapping[str, np.ndarray]) -> Rewrite:
    """Fold every foldable chain of ``typed``; everything else is left as it is.

    A chain folds when the weighted layer's output is read only by a per-channel affine layer
    (over axis 1, the layer's output channels), whose output is read only by the next one, and
    so on. No intermediate tensor may be a graph output, and the weighted layer's arrays must be
    its own (not shared with another layer through Caffe's ``param { name }``).

    With the chain as y = a·x + b per channel (BatchNorm: a = γ/√(var + eps), b = β − mean·a,
    Caffe's statistics divided by its scale factor; a following Scale y = s·x + t makes it s·a
    and s·b + t), the kept layer's weights of output channel o are multiplied by a_o and its
    bias becomes a·bias + b. The arithmetic is in float64, stored as float32.
    """
    graph = typed.graph
    replacements: dict[str, Node] = {}
    removed: set[str] = set()
    folded_arrays: dict[str, np.ndarray] = {}
    folds = []
    for typed_node in typed.nodes:
        node = typed_node.node
        chain = _foldable_chain(typed, weights, typed_node)
        if not chain:
            continue
        arrays = array_names(typed_node)
        bias_name = arrays.get("bias", f"{node.name}.bias")
        if "bias" not in arrays and bias_name in weights:
            continue  # the name a bias would take is already another array's
        scale, shift = composed([affine for _, affine in chain])
        folded_arrays.update(absorbed(typed_node, weights, scale, shift, bias_name))
        params = dataclasses.replace(node.layer.params, bias_term=True)
        folded_layer = type(node.layer)(params, node.layer.output_count)
        removed.update(n.name for n, _ in chain)
        folds.append(Fold(node.name, tuple(n.name for n, _ in chain)))
        replacements[node.name] = dataclasses.replace(
            node, layer=folded_layer, outputs=chain[-1][0].outputs, array_names=(), frozen_arrays=()
        )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes if n.name not in removed)
    folded = dataclasses.replace(graph, nodes=nodes)
    kept_types = {t: typed.types[t] for n in folded.nodes for t in n.outputs}
    return Rewrite(typed.rewritten(folded, kept_types), overlaid(folded_arrays, weights), tuple(folds))


def _foldable_chain(
    typed: TypedGraph, weights: Mapping[str, np.ndarray], producer: TypedNode
) -> list[tuple[Node, Affine]]:
    """The per-channel affine layers, each with its affine, that ``producer``'s output can be
    folded into it from (empty when none can)."""
    if not absorbs(producer):
        return []
    channels = producer.outputs[0].dims[1]
    chain: list[tuple[Node, Affine]] = []
    tensor = producer.node.outputs[0]
    while (consumer := _sole_consumer(typed, tensor)) is not None:
        affine = consumer.node.layer.channel_affine(list(consumer.inputs), NodeArrays(consumer, weights))
        if affine is None or affine[0].shape != (channels,):
            break
        chain.append((consumer.node, affine))
        tensor = consumer.node.outputs[0]
    return chain


def _sole_consumer(typed: TypedGraph, tensor: str) -> TypedNode | None:
    graph = typed.graph
    consumers = graph.consumers.get(tensor, [])
    if len(consumers) != 1 or tensor in graph.outputs or consumers[0].inputs != (tensor,):
        return None
    return typed.of(consumers[0])
