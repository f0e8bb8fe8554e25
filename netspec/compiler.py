"""The pipeline's ends: a spec file (or text) read into a Graph, and a typed graph lowered to
ONNX (weights drawn or given, folding passes run). Binding and inference between them are
:func:`netspec.typed.bind`; the public API over all of it is :mod:`netspec.api`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate, read_source
from netspec.graph import Dim, Graph
from netspec.limits import DEFAULT_INCLUDE_RULES, DEFAULT_LIMITS, IncludeRules, Limits
from netspec.progress import QUIET, Progress

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from netspec.export.onnx import LoweredModel
    from netspec.typed import TypedGraph

DEFAULT_BATCH = 1


def is_onnx_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX model (by its extension), which the ONNX front end reads."""
    return str(path).lower().endswith(".onnx")


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
    from netspec.zoo import resolve_spec

    if is_onnx_path(path):
        from netspec.onnx_import import read_onnx

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
    named = Path(source.path).suffix != ""
    if is_caffe_path(source.path) or (not named and looks_like_caffe(source.text)):
        from netspec.caffe import read_caffe

        return read_caffe(source, phase, input_shapes)
    return elaborate(source, limits, includes)


def is_caffe_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Caffe prototxt (by its extension). Here rather than in
    netspec.caffe, so that choosing a reader for a .net spec does not import the Caffe reader."""
    return Path(path).suffix.lower() in (".prototxt", ".pbtxt")


# A top-level field only Caffe's NetParameter has: ``layer {``/``layers {`` blocks or the
# legacy ``input_dim``/``input_shape`` fields (a .net spec writes layers as ``Type name {``).
_CAFFE_FIELD = re.compile(r"^\s*(?:layers?\s*:?\s*\{|input_dim\s*:|input_shape\s*:?\s*\{)", re.MULTILINE)


def looks_like_caffe(text: str) -> bool:
    """Whether text with no file name (stdin) is a Caffe prototxt rather than a .net spec."""
    return _CAFFE_FIELD.search(text) is not None


def lower_graph(
    typed: TypedGraph,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
    opset: int | None = None,
    fold_bn: bool = True,
    progress: Progress = QUIET,
) -> LoweredModel:
    """Lower a typed graph (:func:`netspec.typed.bind`) to ONNX in its dtype, its large weights
    left to the writer (:class:`LoweredModel`: ``netspec.output.write_model`` streams them from
    numpy into the file, ``.complete()`` puts them in the model). ``weights`` by full name, or
    random ones drawn from ``seed`` as they are written.

    ``fold_bn`` (the default, as torch's exporters do) runs the folding passes
    (:func:`netspec.passes.folding_passes`: BatchNorm and Scale into the layer before them
    wherever that is exact, residual scale factors into their producers); ``False`` keeps the
    BatchNormalization nodes of the training structure. ``progress`` shows the weights being
    made on a terminal.
    """
    from netspec.export.onnx import DEFAULT_OPSET, lower_model

    if weights is None:
        from netspec.weights import InitialWeights

        weights = InitialWeights(typed, seed)
    if fold_bn:
        from netspec.passes import folding_passes, run_passes

        folded = run_passes(typed, weights, folding_passes())
        typed, weights = folded.typed, folded.weights
    return lower_model(typed, weights, opset=opset or DEFAULT_OPSET, progress=progress)


def compile_graph(
    typed: TypedGraph,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
    opset: int | None = None,
    fold_bn: bool = True,
) -> onnx.ModelProto:
    """:func:`lower_graph` with every weight inside the returned model."""
    return lower_graph(typed, weights, seed=seed, opset=opset, fold_bn=fold_bn).complete()
