"""The public Python API, re-exported by :mod:`netspec` (``import netspec``; docs/api.md).

A spec is loaded into a :class:`~netspec.graph.Graph` (:func:`load` from a file or a zoo name,
:func:`loads` from text), bound once into a :class:`~netspec.typed.TypedGraph`
(:func:`netspec.bind`: batch, input shapes, dtype), and everything else is a function of that:
:func:`summary` (the report as typed records, a DataFrame, an HTML table in Jupyter), :func:`compile` (an
``onnx.ModelProto`` or a file), :func:`run` (onnxruntime or the float64 reference), and the
weights (:func:`netspec.initialize_weights`, :func:`netspec.load_weights`, :func:`save_weights`).

Where a function takes ``model``, a Graph is bound at batch 1 first. The heavy stages (numpy,
onnx, onnxruntime) are imported inside the functions that need them, so ``import netspec``
stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, overload

from netspec.graph import Dim, Graph

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from netspec.report import Report
    from netspec.typed import TypedGraph

STRING_SOURCE = "<string>"


def load(
    source: str | os.PathLike[str],
    *,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
) -> Graph:
    """The Graph of a spec file: a ``.net`` spec, a Caffe ``.prototxt`` (read for ``phase``,
    TRAIN or TEST) or an ONNX model, by its extension; a zoo model's name (``"resnet50"``) where
    no such file exists. ``input_shapes`` (``{"data": (1, 3, 227, 227)}``) supplies the shapes a
    Caffe data layer leaves out and fixes an ONNX model's symbolic ones. Errors are
    :class:`netspec.diagnostics.NetspecError` with compiler-style diagnostics."""
    from netspec.compiler import load_graph

    return load_graph(source, phase=phase, input_shapes=input_shapes)


def loads(
    text: str,
    name: str | None = None,
    *,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
) -> Graph:
    """The Graph of a spec given as text. ``name`` is the file name diagnostics show and
    includes are resolved against; its extension decides the language (``.prototxt``: Caffe,
    else ``.net``). Without ``name`` the text itself decides: Caffe when it reads like a Caffe
    prototxt (``layer {`` blocks), else ``.net``."""
    from netspec.compiler import load_source
    from netspec.diagnostics import SourceFile

    source = SourceFile(STRING_SOURCE if name is None else name, text)
    return load_source(source, phase=phase, input_shapes=input_shapes)


def _typed(model: TypedGraph | Graph) -> TypedGraph:
    """``model`` bound (a Graph at batch 1), or as it is."""
    from netspec.typed import bind

    return bind(model) if isinstance(model, Graph) else model


def summary(model: TypedGraph | Graph, depth: int = 0) -> Report:
    """The report of ``model`` (what ``netspec report`` prints; the name ``report`` is the
    module :mod:`netspec.report`): :class:`netspec.report.Report` with ``.totals`` (params,
    buffers, frozen, MACs, FLOPs, weight, activation and peak activation bytes, layers) and
    ``.rows`` (:class:`netspec.report.ReportRow`: a row per layer, or with ``depth`` K > 0 per
    scope K deep, with output shapes, counts, output bytes and receptive field);
    ``.render(fmt)``, ``.to_dict()``, ``.to_dataframe()``, and an HTML table in Jupyter."""
    from netspec.report import report_data

    return report_data(_typed(model), depth)


@overload
def compile(
    model: TypedGraph | Graph,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    path: None = None,
    fold_bn: bool = True,
    opset: int | None = None,
    seed: int = 0,
) -> onnx.ModelProto: ...


@overload
def compile(
    model: TypedGraph | Graph,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    path: str | os.PathLike[str],
    fold_bn: bool = True,
    opset: int | None = None,
    seed: int = 0,
) -> Path: ...


def compile(
    model: TypedGraph | Graph,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    fold_bn: bool = True,
    opset: int | None = None,
    seed: int = 0,
) -> onnx.ModelProto | Path:
    """``model`` as ONNX, in its bound dtype: an ``onnx.ModelProto`` in memory, or with ``path``
    written to that file (weights streamed into it, atomically; past 2 GiB the large ones go to
    ``PATH.data``) and the path returned. ``weights`` by full name (:func:`netspec.load_weights`),
    else random ones drawn from ``seed`` (:func:`netspec.initialize_weights`). ``fold_bn`` folds
    BatchNorm and Scale into the layer before them where exact; ``opset`` defaults to 21."""
    from netspec.compiler import compile_graph, lower_graph

    typed = _typed(model)
    if path is None:
        return compile_graph(typed, weights, seed=seed, opset=opset, fold_bn=fold_bn)
    from netspec.output import write_model

    write_model(lower_graph(typed, weights, seed=seed, opset=opset, fold_bn=fold_bn), path)
    return Path(path)


def run(
    model: TypedGraph | Graph,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    weights: Mapping[str, np.ndarray] | None = None,
    device: str = "cpu",
    reference: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``inputs`` (by input name; random ones from ``seed`` when None, see
    :func:`netspec.verify.sample_inputs`) and return its outputs by name: in onnxruntime on
    ``device`` (``cpu``, ``cuda``, ``auto``), or with ``reference`` in netspec's float64 numpy
    reference executor. ``weights`` as for :func:`compile`; the random ones are the same for
    both, so the two runs agree to float32 rounding."""
    from netspec.verify import sample_inputs
    from netspec.weights import initialize_weights

    typed = _typed(model)
    feeds = sample_inputs(typed, seed) if inputs is None else dict(inputs)
    if weights is None:
        weights = initialize_weights(typed, seed)
    if reference:
        from netspec.reference import run_reference

        return run_reference(typed.graph, weights, feeds)
    from netspec.compiler import compile_graph
    from netspec.runtime import create_session

    onnx_model = compile_graph(typed, weights, seed=seed)
    session = create_session(onnx_model.SerializeToString(), device)
    return session.run(session.as_inputs(feeds))


def load_weights(path: str | os.PathLike[str], model: TypedGraph) -> dict[str, np.ndarray]:
    """Every stored array of ``model`` from a ``.safetensors``, ``.npz`` (arrays by full name,
    e.g. a torchvision ``state_dict``) or ``.caffemodel`` file, as float32 by full name; a file
    that does not fit is one error listing the missing, unexpected and mis-shaped arrays."""
    from netspec.weightfile import load_weights as read_weights

    return read_weights(os.fspath(path), model)


def save_weights(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` (full name -> array) to ``path`` as ``.npz`` or ``.safetensors`` (by the
    extension), atomically: what :func:`netspec.load_weights` reads back."""
    from netspec.weightfile import write_weights

    write_weights(os.fspath(path), arrays)
