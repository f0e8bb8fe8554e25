"""Residual scale folding: the constant factor a layer applies to one of its inputs (an Eltwise
SUM's ``coeff``: Inception-ResNet's residual scaling, stochastic depth's survival probability)
moves into the layer that writes that input."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from netspec.graph import Node
from netspec.layers.base import static_dim
from netspec.passes import Fold, Rewrite
from netspec.passes.affine import absorbed, absorbs, array_names
from netspec.typed import TypedGraph
from netspec.weights import overlaid


def fold_input_scales(typed: TypedGraph, weights: Mapping[str, np.ndarray]) -> Rewrite:
    """Fold each input factor into the layer that writes that input, when that layer can absorb
    a per-channel affine and the input has no other reader: its weights and bias are multiplied
    by the factor, which becomes 1. The same arithmetic as BatchNorm folding, in float64, stored
    as float32."""
    graph = typed.graph
    replacements: dict[str, Node] = {}
    folded_arrays: dict[str, np.ndarray] = {}
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
            typed_producer = typed.of(producer)
            if not absorbs(typed_producer):
                continue
            factor = np.full(static_dim(typed.types[tensor], 1), scale, np.float64)
            bias_name = array_names(typed_producer).get("bias", "")
            folded_arrays.update(absorbed(typed_producer, weights, factor, None, bias_name))
            kept[index] = 1.0
            folds.append(Fold(producer.name, (f"{node.name} coeff {scale:g}",)))
        if kept != list(scales):
            replacements[node.name] = dataclasses.replace(
                node, layer=node.layer.with_input_scales(tuple(kept))
            )
    nodes = tuple(replacements.get(n.name, n) for n in graph.nodes)
    rewritten = typed.rewritten(dataclasses.replace(graph, nodes=nodes), typed.types)
    return Rewrite(rewritten, overlaid(folded_arrays, weights), tuple(folds))
