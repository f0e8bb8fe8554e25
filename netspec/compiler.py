"""The whole pipeline as one call: spec file to graph, types, counts, weights and ONNX model.

This is the Python API the CLI, tests and tools share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from netspec.collector import cycle_collector_paused
from netspec.count import Counts, count_graph
from netspec.elaborate import load_spec, read_source
from netspec.graph import Dim, Graph, TensorType
from netspec.infer import infer_shapes
from netspec.limits import DEFAULT_INCLUDE_RULES, DEFAULT_LIMITS, IncludeRules, Limits, check_tensor_sizes

if TYPE_CHECKING:
    import onnx

DEFAULT_BATCH = 1


@dataclass(frozen=True)
class Analysis:
    """A spec elaborated and inferred at a fixed batch: the graph, its types and counts."""

    graph: Graph
    types: Mapping[str, TensorType]
    batch: int
    dtype: str = "float32"

    @cached_property
    def counts(self) -> Counts:
        """Counts with weight and activation bytes in ``dtype`` elements."""
        with cycle_collector_paused():
            return count_graph(self.graph, self.types, self.dtype)


def load_graph(
    path: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    *,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    includes: IncludeRules = DEFAULT_INCLUDE_RULES,
) -> Graph:
    """A spec file as a Graph: a .net spec, or a Caffe .prototxt (recognised by its extension)
    read for ``phase``; ``input_shapes`` supplies the shapes a Caffe data layer leaves out;
    ``includes`` says which files a spec's includes may read."""
    from netspec.caffe import is_caffe_path, read_caffe

    if is_caffe_path(path):
        return read_caffe(read_source(path, limits), phase, input_shapes)  # type: ignore[arg-type]
    return load_spec(path, limits, includes)


def analyze(
    graph: Graph,
    batch: int = DEFAULT_BATCH,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    dtype: str = "float32",
    limits: Limits = DEFAULT_LIMITS,
) -> Analysis:
    """``graph`` inferred at ``batch``; its counts measure bytes in ``dtype`` elements. Tensors
    and weights past ``limits`` are an error."""
    with cycle_collector_paused():
        types = infer_shapes(graph, {"N": batch}, input_shapes)
        check_tensor_sizes(graph, types, limits)
    return Analysis(graph, types, batch, dtype)


def compile_graph(
    graph: Graph,
    *,
    batch: int | None = DEFAULT_BATCH,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    opset: int | None = None,
    spec_text: str | None = None,
    fold_bn: bool = False,
    dtype: str = "float32",
    limits: Limits = DEFAULT_LIMITS,
) -> onnx.ModelProto:
    """Lower a graph to ONNX. ``batch=None`` keeps the batch dimension symbolic (``N``).

    ``fold_bn`` folds BatchNorm (and Scale) into the layer before it (:mod:`netspec.fold`);
    ``dtype="float16"`` emits float16 weights, inputs and outputs (:mod:`netspec.export.float16`).
    """
    from netspec.export.onnx import DEFAULT_OPSET, build_model

    bindings = {} if batch is None else {"N": batch}
    types = infer_shapes(graph, bindings, input_shapes)
    check_tensor_sizes(graph, types, limits)
    if weights is None:
        from netspec.weights import InitialWeights

        weights = InitialWeights(graph, types, seed)
    if fold_bn:
        from netspec.fold import fold_batchnorm

        folded = fold_batchnorm(graph, types, weights)
        graph, types, weights = folded.graph, folded.types, folded.weights
    return build_model(graph, types, weights, opset=opset or DEFAULT_OPSET, spec_text=spec_text, dtype=dtype)
