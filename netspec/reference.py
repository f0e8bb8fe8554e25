"""The float64 reference executor: runs a Graph through each layer's own numpy semantics,
independently of ONNX. It is the oracle the compiled model's outputs are checked against.

NOTE: it takes the Graph, not the typed graph: an oracle should not trust the inference it
checks, so each layer's arrays are sized from the values that really reach it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netspec.graph import Graph, TensorType
from netspec.typed import node_arrays


def run_reference(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    keep: str = "outputs",
) -> dict[str, np.ndarray]:
    """Execute ``graph`` in float64. ``keep="outputs"`` returns the graph outputs, ``"all"``
    every tensor. Intermediate tensors are freed after their last use."""
    values: dict[str, np.ndarray] = {}
    last_use: dict[str, int] = {}
    for step, node in enumerate(graph.nodes):
        for tensor in node.inputs:
            last_use[tensor] = step
    kept = set(graph.outputs)
    for step, node in enumerate(graph.nodes):
        if not node.inputs:
            for tensor in node.outputs:
                values[tensor] = np.asarray(inputs[tensor], np.float64)
            continue
        arrays = node_arrays(node, [TensorType(values[t].shape) for t in node.inputs])
        local = {array.spec.name: weights[array.name] for array in arrays}
        results = node.layer.reference([values[t] for t in node.inputs], local)
        for tensor, result in zip(node.outputs, results, strict=True):
            values[tensor] = result
        if keep != "all":
            for tensor in node.inputs:
                if last_use.get(tensor) == step and tensor not in kept:
                    del values[tensor]
    if keep == "all":
        return values
    return {t: values[t] for t in graph.outputs}
