"""The ONNX builder: a typed graph (netspec.typed) and its weights become a ModelProto.

Each layer lowers itself through a :class:`NodeEmitter`; this module owns naming, initializers,
value_info, metadata and the pinned opset / IR version (DESIGN.md §6).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from netspec import __version__
from netspec.graph import Node, TensorType
from netspec.layers.base import LayerError
from netspec.progress import QUIET, Progress

if TYPE_CHECKING:
    from netspec.diagnostics import SourceSpan
    from netspec.typed import StoredArray, TypedGraph

DEFAULT_OPSET = 21
MIN_OPSET = 13  # Softmax over an axis, Split/Squeeze with input tensors
MODEL_DTYPES = ("float32", "float16")


def ir_version_for(opset: int) -> int:
    """The IR version of the first onnx release that has ``opset`` (onnx's own version table):
    opset 13 → IR 7, 21 → IR 10. A newer IR than the opset needs makes onnxruntime releases
    that do support the opset refuse the file."""
    return min(ir for _, ir, ai_onnx, *_ in helper.VERSION_TABLE if ai_onnx >= opset)


ELEMENT_TYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
}


def tensor_value_info(name: str, tensor: TensorType) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) else str(d) for d in tensor.dims]
    return helper.make_tensor_value_info(name, ELEMENT_TYPES[tensor.dtype], dims)


class NodeEmitter:
    """What a layer's ``emit`` works with (:class:`netspec.layers.base.Emitter`, the protocol
    layers see): its node's tensor names and types, its weights' initializer names, and a way to
    add ONNX nodes, constants and intermediate tensors named after the node."""

    def __init__(
        self,
        builder: _ModelBuilder,
        node: Node,
        arrays: Sequence[StoredArray],
        input_types: Sequence[TensorType],
        output_types: Sequence[TensorType],
    ) -> None:
        self._builder = builder
        self.node = node
        self.name = node.name
        self.inputs = list(node.inputs)
        self.outputs = list(node.outputs)
        self.input_types = list(input_types)
        self.output_types = list(output_types)
        self.opset = builder.opset
        self._arrays = {a.spec.name: a.name for a in arrays}
        self._count = 0

    def param(self, suffix: str) -> str:
        """The initializer name of one of the node's own arrays (``conv1.weight``)."""
        try:
            return self._arrays[suffix]
        except KeyError:
            raise KeyError(f"{self.name} has no stored array '{suffix}'") from None

    def constant(self, suffix: str, value: np.ndarray) -> str:
        """Add a constant initializer named after the node and return its name."""
        name = f"{self.name}/{suffix}"
        self._builder.add_initializer(name, np.asarray(value))
        return name

    def temp(self, suffix: str) -> str:
        """A fresh intermediate tensor name for multi-op lowerings."""
        self._count += 1
        return f"{self.name}/{suffix}"

    def add(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: Any) -> None:
        self._add(op_type, inputs, outputs, False, attributes)

    def add_marked(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: Any
    ) -> None:
        self._add(op_type, inputs, outputs, True, attributes)

    def _add(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        marked: bool,
        attributes: Mapping[str, Any],
    ) -> None:
        self._count += 1
        node_name = self.name if self._count == 1 else f"{self.name}/{op_type}_{self._count}"
        proto = helper.make_node(op_type, list(inputs), list(outputs), name=node_name, **attributes)
        location = spec_location(self.node.span) if self.node.span is not None else ""
        # A marked node's doc_string is "nin.net:30:1 Pooling" (onnx_import.marked_layer_type).
        doc = f"{location} {self.node.type}".lstrip() if marked else location
        if doc:  # an empty one would still be written: ONNX's messages are proto2
            proto.doc_string = doc
        self._builder.nodes.append(proto)


class _ModelBuilder:
    """Fills one ModelProto in place.

    # NOTE: initializers are written straight into the model's repeated field: building
    # TensorProtos apart and passing them to helper.make_graph/make_model copies every weight
    # twice more, which for VGG-16 costs seconds.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], opset: int, defer: bool = False) -> None:
        self.weights = weights
        self.opset = opset
        self.model = onnx.ModelProto()
        self.nodes = self.model.graph.node
        self.initializer_names: set[str] = set()
        # With ``defer``, stored arrays of DEFERRED_MIN_ELEMENTS or more get no data here: the
        # writer streams them from numpy (LoweredModel).
        self.defer = defer
        self.pending: set[str] = set()

    def add_initializer(self, name: str, value: np.ndarray) -> None:
        # NOTE: np.ascontiguousarray makes a 0-d array 1-d; a scalar (a Gather index) keeps its shape.
        array = np.ascontiguousarray(value)
        self._store(name, array.dtype, np.shape(value), array.tobytes())

    def add_weight(self, name: str, shape: tuple[int, ...]) -> None:
        """The stored array ``name`` (of ``shape``, float32) as an initializer. Deferred, only
        its name, type and shape; else its bytes, the array dropped as soon as they exist, so a
        lazily drawn one (netspec.weights.InitialWeights) costs its bytes and the protobuf copy,
        not a third copy."""
        if self.defer and math.prod(shape) >= DEFERRED_MIN_ELEMENTS:
            self._store(name, np.dtype(np.float32), shape, None)
            self.pending.add(name)
            return
        array = np.ascontiguousarray(self.weights[name])
        dtype, shape, data = array.dtype, array.shape, array.tobytes()
        del array
        self._store(name, dtype, shape, data)

    def _store(self, name: str, dtype: np.dtype, shape: tuple[int, ...], data: bytes | None) -> None:
        if name in self.initializer_names:
            raise ValueError(f"initializer {name} added twice")
        self.initializer_names.add(name)
        tensor = self.model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(dtype)
        tensor.dims.extend(shape)
        if data is not None:
            tensor.raw_data = data


def spec_location(span: SourceSpan) -> str:
    """``file:line:col`` of a node for its ``doc_string``, with the file's name only (not the
    folder it was reached through)."""
    return f"{PurePath(span.source.path).name}:{span.line}:{span.column}"


# Stored arrays at least this large are deferred to the writer (smaller ones, Reshape targets
# and the like, stay in the model for the checker and shape inference).
DEFERRED_MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class LoweredModel:
    """An ONNX model whose large stored arrays are not in it yet: ``model`` holds every
    initializer's name, type and shape, but those named in ``pending`` have no data; ``arrays``
    gives their values (drawn or read when asked). :func:`netspec.output.write_model` streams
    them from numpy into the file, one at a time and without a copy in protobuf;
    :meth:`complete` fills them in for a model used in memory."""

    model: onnx.ModelProto
    arrays: Mapping[str, np.ndarray]
    pending: frozenset[str]

    def pending_chunks(self, name: str) -> Iterator[np.ndarray]:
        """The float32 values of pending initializer ``name`` in C order, flat, in chunks
        (:func:`netspec.weights.array_chunks`): drawn while written, never whole in memory."""
        from netspec.weights import array_chunks

        return array_chunks(self.arrays, name)

    def complete(self) -> onnx.ModelProto:
        """The model with every pending initializer's bytes filled in (in place)."""
        for tensor in self.model.graph.initializer:
            if tensor.name in self.pending and not tensor.HasField("raw_data"):
                array = np.ascontiguousarray(self.arrays[tensor.name], dtype=np.float32)
                tensor.raw_data = array.tobytes()
                del array
        return self.model


def lower_model(
    typed: TypedGraph,
    weights: Mapping[str, np.ndarray],
    *,
    opset: int = DEFAULT_OPSET,
    progress: Progress = QUIET,
) -> LoweredModel:
    """Lower ``typed`` to ONNX in its dtype (symbolic batch allowed); ``weights`` hold every
    stored array by its full name (``layer1.0.conv1.weight``); float32 models leave their large
    arrays to the writer (:class:`LoweredModel`). The dtype is one of :data:`MODEL_DTYPES`;
    float16 is a rewrite of the float32 model, with every weight inside
    (:mod:`netspec.export.float16`)."""
    dtype = typed.dtype
    if dtype not in MODEL_DTYPES:
        raise ValueError(f"unsupported model dtype {dtype!r} (expected one of {', '.join(MODEL_DTYPES)})")
    graph, types = typed.graph, typed.types
    builder = _ModelBuilder(weights, opset, defer=dtype == "float32")
    arrays = typed.arrays
    with progress.steps(f"weights of {graph.name}", len(arrays)) as advance:
        for node_arrays in arrays.values():
            for array in node_arrays:
                if array.name not in builder.initializer_names:  # shared arrays are stored once
                    builder.add_weight(array.name, array.spec.shape)
            advance(1)

    inputs: list[onnx.ValueInfoProto] = []
    for typed_node in typed.nodes:
        node = typed_node.node
        if not node.inputs:
            inputs.extend(tensor_value_info(t, types[t]) for t in node.outputs)
            continue
        emitter = NodeEmitter(
            builder, node, typed_node.arrays, list(typed_node.inputs), list(typed_node.outputs)
        )
        try:
            node.layer.emit(emitter)
        except LayerError as exc:  # a lowering the target opset cannot express
            raise exc.located(node) from None

    graph_outputs = set(graph.outputs)
    graph_inputs = {n.outputs[0] for n in graph.input_nodes}
    elided = elide_identities(builder.nodes, graph_inputs, graph_outputs)
    value_info = [
        tensor_value_info(t, types[t])
        for node in graph.nodes
        for t in node.outputs
        if t not in graph_outputs and t not in graph_inputs and t not in elided
    ]
    model = builder.model
    model.graph.name = graph.name
    model.graph.input.extend(inputs)
    model.graph.output.extend(tensor_value_info(t, types[t]) for t in graph.outputs)
    model.graph.value_info.extend(value_info)
    model.producer_name = "netspec"
    model.producer_version = __version__
    model.opset_import.append(helper.make_opsetid("", opset))
    model.ir_version = ir_version_for(opset)
    # NOTE: the spec's file name, not the path as typed: the same spec reached by two paths
    # gives the same bytes (the model depends on the spec's name and content only).
    spec_name = PurePath(graph.source_path).name if graph.source_path else ""
    model.doc_string = f"{graph.name}, compiled by netspec {__version__} from {spec_name}"
    metadata = {"netspec_version": __version__, "source": spec_name}
    if graph.source_text is not None:
        metadata["spec_sha256"] = hashlib.sha256(graph.source_text.encode("utf-8")).hexdigest()
    metadata.update(dict(graph.metadata))
    helper.set_model_props(model, metadata)
    if dtype == "float16":
        from netspec.export.float16 import convert_to_float16

        convert_to_float16(model)
    return LoweredModel(model, weights, frozenset(builder.pending))


def elide_identities(nodes: Any, graph_inputs: set[str], graph_outputs: set[str]) -> set[str]:
    """Remove the Identity nodes of layers that are identities at inference (Dropout, a Split's
    copies, a crop or pooling that keeps the size) and return the tensors that no longer exist.

    The Identity's output becomes another name for its input: readers of ``y = Identity(x)``
    read ``x``. When ``y`` is a graph output, ``x`` is renamed ``y`` instead (at its producer and
    every reader), unless ``x`` is a graph input or output itself: then the Identity stays.
    Simplifiers (onnxslim, onnxsim) would do the same; doing it here leaves them nothing."""
    renamed: dict[str, str] = {}
    kept = []
    for node in nodes:
        if node.op_type != "Identity":
            kept.append(node)
            continue
        (source,), (target,) = node.input, node.output
        source = renamed.get(source, source)
        if target not in graph_outputs:
            renamed[target] = source
        elif source not in graph_inputs and source not in graph_outputs:
            renamed.update({old: target for old, new in renamed.items() if new == source})
            renamed[source] = target
        else:
            kept.append(node)
    for node in kept:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    del nodes[:]
    nodes.extend(kept)
    return set(renamed)


def check_model(model: onnx.ModelProto) -> None:
    """The ONNX checker with full checking (strict shape inference), run on the model's graph
    with its large weights declared as inputs, so that it costs milliseconds, not a copy of
    every weight. The weights themselves come from numpy and need no checking."""
    onnx.checker.check_model(without_weights(model), full_check=True)


# Initializers up to this many elements stay: shape inference may need their values (a
# Reshape target, a Pad amount).
_KEPT_INITIALIZER_SIZE = 64


def without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large float initializers are graph inputs of the same type
    and shape instead: the same graph for the checker and for shape inference."""
    graph = model.graph
    kept, lifted = [], []
    for tensor in graph.initializer:
        small = np.prod(tensor.dims, dtype=np.int64) <= _KEPT_INITIALIZER_SIZE
        if small or tensor.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
            kept.append(tensor)
        else:
            lifted.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    bare_graph = helper.make_graph(
        list(graph.node),
        graph.name,
        [*graph.input, *lifted],
        list(graph.output),
        initializer=kept,
        value_info=list(graph.value_info),
    )
    bare = helper.make_model(bare_graph, opset_imports=list(model.opset_import))
    bare.ir_version = model.ir_version
    return bare


def infer_bare(
    model: onnx.ModelProto, *, check_type: bool = False, data_prop: bool = False
) -> onnx.ModelProto:
    """ONNX's own strict shape inference on ``model`` without its weights (:func:`without_weights`)
    and without netspec's value_info, so that every intermediate type is ONNX's, not an echo of
    ours."""
    bare = without_weights(model)
    del bare.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(
        bare, check_type=check_type, strict_mode=True, data_prop=data_prop
    )


def inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | str, ...]]:
    """Shapes by tensor name from ONNX's own strict shape inference (for differential tests)."""
    inferred = infer_bare(model, check_type=True, data_prop=True)
    lifted = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[int | str, ...]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if info.name in lifted:
            continue
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)
    return shapes
