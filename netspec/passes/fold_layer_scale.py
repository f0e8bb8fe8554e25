"""Layer-scale folding: the learned per-channel factor a layer applies to one input before its
residual add (ConvNeXt's ``layer_scale · block(x) + x``: ``Layer.input_channel_scale``) moves
into the layer that computes that input — followed back through layers that only permute axes
(ConvNeXt's Permute back to NCHW: ``Layer.source_axis``) — when that layer is linear in its
weights along the scaled axis (the block's last InnerProduct: ``Layer.absorbs_channel_affine``).
What remains of the scaling layer is the sum (``Layer.without_input_channel_scale``): one
elementwise pass over the activation fewer per block, and its node gone."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from netspec.graph import Graph, Node
from netspec.passes import Fold, Rewrite
from netspec.passes.affine import NodeArrays, absorbed, absorbs, array_names
from netspec.typed import TypedGraph, TypedNode
from netspec.weights import overlaid


def fold_layer_scale(typed: TypedGraph, weights: Mapping[str, np.ndarray]) -> Rewrite:
    """Fold each layer-scale factor into the layer that computes the scaled input, when every
    tensor on the way is read only by the next layer and none is a graph output: that layer's
    weight and bias are multiplied per output channel (float64, stored as float32), and the
    scaling layer becomes what is left of it."""
    graph = typed.graph
    replacements: dict[str, Node] = {}
    folded_arrays: dict[str, np.ndarray] = {}
    folds = []
    for typed_node in typed.nodes:
        node = typed_node.node
        scaled = node.layer.input_channel_scale(list(typed_node.inputs), NodeArrays(typed_node, weights))
        if scaled is None:
            continue
        index, axis, factor = scaled
        if node.inputs.count(node.inputs[index]) != 1:
            continue
        found = _absorbing_producer(typed, node, node.inputs[index], axis)
        if found is None:
            continue
        producer, producer_axis = found
        if producer.outputs[0].dims[producer_axis] != factor.size:
            continue
        bias_name = array_names(producer).get("bias", "")
        folded_arrays.update(absorbed(producer, weights, factor, None, bias_name))
        remaining = node.layer.without_input_channel_scale(len(node.inputs))
        replacements[node.name] = dataclasses.replace(node, layer=remaining, array_names=(), frozen_arrays=())
        folds.append(Fold(producer.node.name, (f"{node.name} {_scale_array(typed_node)}",)))
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes)
    rewritten = typed.rewritten(dataclasses.replace(graph, nodes=nodes), typed.types)
    return Rewrite(rewritten, overlaid(folded_arrays, weights), tuple(folds))


def _absorbing_producer(
    typed: TypedGraph, reader: Node, tensor: str, axis: int
) -> tuple[TypedNode, int] | None:
    """The layer that computes ``tensor`` (read by ``reader`` only), found back through
    axis-permuting layers, with the axis of its output that becomes ``axis`` of ``tensor``, if
    it can absorb a per-channel factor along that axis; None otherwise."""
    graph = typed.graph
    while _read_only_by(graph, tensor, reader):
        producer = graph.producers.get(tensor)
        if producer is None:
            return None
        typed_producer = typed.of(producer)
        if absorbs(typed_producer, axis):
            return typed_producer, axis
        source = producer.layer.source_axis(axis, list(typed_producer.inputs))
        if source is None or len(producer.inputs) != 1:
            return None
        reader, tensor, axis = producer, producer.inputs[0], source
    return None


def _read_only_by(graph: Graph, tensor: str, reader: Node) -> bool:
    return graph.consumers.get(tensor) == [reader] and tensor not in graph.outputs


def _scale_array(typed_node: TypedNode) -> str:
    return ", ".join(a.spec.name for a in typed_node.arrays) or "scale"
