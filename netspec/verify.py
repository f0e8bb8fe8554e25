"""Differential checking: a graph compiled to ONNX and run in onnxruntime against netspec's own
float64 reference executor on the same random inputs and weights.

The error of one output is ``max|ort - ref| / max|ref|`` (max-norm relative error), computed in
float64. An all-zero reference output gives 0 when onnxruntime's output is all zero too, and
infinity otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.graph import Dim, Graph

if TYPE_CHECKING:
    from netspec.typed import TypedGraph

# The largest max-norm relative error of a whole model's output against the float64 reference
# accepted per model element type. float32 accumulates rounding through a deep net well inside
# 1e-4 (the zoo: 1e-7 to 3e-6). float16 rounds every activation (unit roundoff 4.9e-4): one
# layer stays within a few roundoffs, the zoo's models within 2.4e-2 at 64×64 inputs, except
# where rounding flips an argmax (max-pooling masks that unpooling follows) or activations of
# untrained deep nets outgrow float16's range (65504).
TOLERANCES = {"float32": 1e-4, "float16": 5e-2}

REFERENCE_DEVICE = "reference (numpy float64)"

SAMPLE_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def sample_inputs(typed: TypedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every graph input, arrays of its bound type (float32 unless typed
    otherwise).

    Float inputs are standard normal, never zeros. A layer that needs special inputs (integer
    indices, region boxes) answers ``Layer.sample_input(index, input_types, rng)`` with an array
    for its ``index``-th input (``input_types``: the bound types of all its inputs, so that e.g.
    boxes fit the feature map), or None to leave it to the default; the first consumer of a
    graph input that answers decides.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for node in typed.graph.input_nodes:
        tensor = node.outputs[0]
        tensor_type = typed.types[tensor]
        if not tensor_type.is_static:
            raise ValueError(f"input '{tensor}' has symbolic dimensions {tensor_type}; bind the batch first")
        feeds[tensor] = _sample_for_consumers(typed, tensor, rng)
    return feeds


def _sample_for_consumers(typed: TypedGraph, tensor: str, rng: np.random.Generator) -> np.ndarray:
    tensor_type = typed.types[tensor]
    for consumer in typed.graph.consumers.get(tensor, []):
        value = consumer.layer.sample_input(consumer.inputs.index(tensor), typed.of(consumer).inputs, rng)
        if value is not None:
            return np.asarray(value)
    dtype = SAMPLE_DTYPES.get(tensor_type.dtype)
    if dtype is None:
        raise ValueError(
            f"input '{tensor}' has element type {tensor_type.dtype}; no layer reading it says how "
            "to sample it (define sample_input on the layer)"
        )
    return rng.standard_normal(tensor_type.static_dims).astype(dtype)


SMALL_SIDES = (64, 96, 128, 160, 192, 224)


def small_input_shapes(
    graph: Graph, sides: tuple[int, ...] = SMALL_SIDES
) -> dict[str, tuple[Dim, ...]] | None:
    """The smallest square input (from ``sides``) that every 4-D [N, C, H, W] input of ``graph``
    can take with all its shapes valid, as ``--input``-style shapes; None when the declared
    shapes are already that small or none of ``sides`` fits (the graph keeps its own)."""
    from netspec.diagnostics import NetspecError
    from netspec.typed import bind

    declared = {n.outputs[0]: n.layer.infer([])[0].dims for n in graph.input_nodes}
    images = {
        name: dims
        for name, dims in declared.items()
        if len(dims) == 4 and isinstance(dims[2], int) and isinstance(dims[3], int)
    }
    if not images:
        return None
    own_side = min(side for dims in images.values() for side in dims[2:] if isinstance(side, int))
    for side in sides:
        if side >= own_side:
            return None
        shapes: dict[str, tuple[Dim, ...]] = {name: (*dims[:2], side, side) for name, dims in images.items()}
        try:
            bind(graph, 1, shapes)  # NOTE: a search over candidate shapes, each bound once
        except NetspecError:
            continue
        return shapes
    return None


def max_relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """``max|got - expected| / max|expected|`` in float64 (see the module docstring for zeros)."""
    got64 = np.asarray(got, np.float64)
    expected64 = np.asarray(expected, np.float64)
    if got64.shape != expected64.shape:
        raise ValueError(f"shapes differ: {got64.shape} vs {expected64.shape}")
    difference = float(np.abs(got64 - expected64).max(initial=0.0))
    scale = float(np.abs(expected64).max(initial=0.0))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else float("inf")
    return difference / scale


def relative_errors(
    graph: Graph,
    *,
    batch: int = 1,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    seed: int = 0,
    weights: Mapping[str, np.ndarray] | None = None,
    dtype: str = "float32",
    **compile_options: Any,
) -> dict[str, float]:
    """Per graph output, onnxruntime's (CPU) max relative error against the float64 reference.

    ``graph`` is bound once at ``batch`` and compiled in ``dtype`` with ``weights`` (random by
    ``seed`` when None); the inputs are :func:`sample_inputs` at ``seed``. ``compile_options``
    go to :func:`netspec.compiler.compile_graph` (``fold_bn``, ``opset``); the reference always
    runs the graph as written, in float64.
    """
    from netspec.compiler import compile_graph
    from netspec.reference import run_reference
    from netspec.runtime import create_session
    from netspec.typed import bind
    from netspec.weights import initialize_weights

    typed = bind(graph, batch, input_shapes, dtype=dtype)
    if weights is None:
        weights = initialize_weights(typed, seed)
    model = compile_graph(typed, weights, **compile_options)
    session = create_session(model.SerializeToString(), "cpu")
    # float16 models take float16 inputs: the reference is fed the same rounded values.
    feeds = session.as_inputs(sample_inputs(typed, seed))
    return compare_outputs(session.run(feeds), run_reference(graph, weights, feeds))


def compare_outputs(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray]) -> dict[str, float]:
    """:func:`max_relative_error` of each output in ``expected``."""
    return {name: max_relative_error(got[name], value) for name, value in expected.items()}
