"""The whole pipeline as one call: spec file to graph, types, counts, weights and ONNX model.

This is the Python API the CLI, tests and tools share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netspec.collector import cycle_collector_paused
from netspec.count import Counts, count_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate, read_source
from netspec.graph import Dim, Graph, TensorType
from netspec.infer import infer_shapes
from netspec.limits import DEFAULT_INCLUDE_RULES, DEFAULT_LIMITS, IncludeRules, Limits, check_tensor_sizes
from netspec.progress import QUIET, Progress

if TYPE_CHECKING:
    import onnx

    from netspec.export.onnx import LoweredModel

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
    """A spec file as a Graph: a .net spec, a Caffe .prototxt read for ``phase`` or an ONNX
    model (both recognised by their extension); a zoo model's name (``resnet50``) where no such
    file exists. ``input_shapes`` supplies the shapes a Caffe data layer leaves out (and fixes an
    ONNX model's symbolic ones); ``includes`` says which files a spec's includes may read."""
    from netspec.onnx_import import is_onnx_path, read_onnx
    from netspec.zoo import resolve_spec

    if is_onnx_path(path):
        return read_onnx(path, input_shapes)

    source = read_source(resolve_spec(os.fspath(path)), limits)
    return load_source(source, limits, phase=phase, input_shapes=input_shapes, includes=includes)


def load_source(
    source: SourceFile,
    limits: Limits = DEFAULT_LIMITS,
    *,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    includes: IncludeRules = DEFAULT_INCLUDE_RULES,
) -> Graph:
    """A spec's text as a Graph: Caffe prototxt when its name says so (``.prototxt``) or, for
    text without a file name (stdin, a string), when it reads like one; else a .net spec."""
    from netspec.caffe import is_caffe_path, looks_like_caffe, read_caffe

    named = Path(source.path).suffix != ""
    if is_caffe_path(source.path) or (not named and looks_like_caffe(source.text)):
        return read_caffe(source, phase, input_shapes)  # type: ignore[arg-type]
    return elaborate(source, limits, includes)


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


def lower_graph(
    graph: Graph,
    *,
    batch: int | None = DEFAULT_BATCH,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    opset: int | None = None,
    fold_bn: bool = True,
    dtype: str = "float32",
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress = QUIET,
) -> LoweredModel:
    """Lower a graph to ONNX, its large weights left to the writer (:class:`LoweredModel`:
    ``netspec.output.write_model`` streams them from numpy into the file, ``.complete()`` puts
    them in the model). ``batch=None`` keeps the batch dimension symbolic (``N``).

    ``fold_bn`` (the default, as torch's exporters do) folds BatchNorm (and Scale) into the
    layer before it wherever that is exact (:mod:`netspec.fold`); ``False`` keeps the
    BatchNormalization nodes of the training structure;
    ``dtype="float16"`` emits float16 weights, inputs and outputs (:mod:`netspec.export.float16`);
    ``progress`` shows the weights being made on a terminal.
    """
    from netspec.export.onnx import DEFAULT_OPSET, lower_model

    bindings = {} if batch is None else {"N": batch}
    types = infer_shapes(graph, bindings, input_shapes)
    check_tensor_sizes(graph, types, limits)
    if weights is None:
        from netspec.weights import InitialWeights

        weights = InitialWeights(graph, types, seed)
    if fold_bn:
        from netspec.fold import fold_batchnorm, fold_input_scales

        for fold in (fold_batchnorm, fold_input_scales):
            folded = fold(graph, types, weights)
            graph, types, weights = folded.graph, folded.types, folded.weights
    opset = opset or DEFAULT_OPSET
    return lower_model(graph, types, weights, opset=opset, dtype=dtype, progress=progress)


def compile_graph(
    graph: Graph,
    *,
    batch: int | None = DEFAULT_BATCH,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    opset: int | None = None,
    fold_bn: bool = True,
    dtype: str = "float32",
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress = QUIET,
) -> onnx.ModelProto:
    """:func:`lower_graph` with every weight inside the returned model."""
    return lower_graph(
        graph,
        batch=batch,
        input_shapes=input_shapes,
        weights=weights,
        seed=seed,
        opset=opset,
        fold_bn=fold_bn,
        dtype=dtype,
        limits=limits,
        progress=progress,
    ).complete()
