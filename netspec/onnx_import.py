"""The ONNX front end: an ONNX model read into the same Graph that .net specs and Caffe files
give, so that counting, receptive fields, memory, reports and convert are shared.

Reading, in outline: the file is parsed without its external data; control flow and cycles are
refused; ONNX shape inference gives every tensor's type; the shape-computing chains exporters emit
(Shape → Gather → Unsqueeze → Concat → Reshape, Constant, ConstantOfShape) are evaluated on small
constants and disappear; every other node becomes a netspec layer, named by its scope
(torch's ``/layer1/layer1.0/conv1/Conv`` is ``layer1.0.conv1``); in netspec's own files, the
nodes a layer lowered to several (attention, class tokens, Swin's windows, SegNet's masks) read
back as that layer, recognised by emitting it again (``_LOWERINGS``). Initializer data is read
only for the small constants shape chains need and the constants of such a lowering (compared
with its emission); weights are read when asked for (:func:`read_weights`).
An operator with no netspec layer becomes an :class:`~netspec.layers.onnxop.OnnxOp` counting 0.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.diagnostics import Diagnostic, NetspecError, error
from netspec.graph import BATCH_SYMBOL, Dim, Graph, Node, TensorType
from netspec.layers.base import LAYER_TYPES, Layer, LayerError, RawParam, build_layer
from netspec.limits import MAX_ONNX_BYTES

if TYPE_CHECKING:
    import onnx

    from netspec.typed import TypedGraph

# Initializers up to this many elements are read as values (shape chains, scalars of Add/Mul,
# Clip bounds); larger ones only by shape and type until their weights are asked for.
SMALL_CONSTANT = 4096
# A symbolic batch stands for this value while shape chains are evaluated; a folded shape that
# holds it at axis 0 copies the batch (Reshape's 0), anywhere else it is an error.
_BATCH_SENTINEL = 1_000_003
# The graph names torch's exporters give every model: the file's name says more.
_EXPORTER_GRAPH_NAMES = frozenset({"", "main_graph", "torch_jit", "torch-jit-export"})
# Operators whose output size is their input's value: not evaluated on a symbolic batch.
_GROWING = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad"})
_CONTROL_FLOW = frozenset({"Loop", "If", "Scan", "SequenceMap"})
_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64"}


@dataclass(frozen=True)
class WeightSource:
    """Where one stored array of a layer comes from: an initializer, and how it is turned
    into the layer's array (``transpose``: a 2-D matrix transposed; ``negate``; ``reciprocal``)."""

    initializer: str
    transform: str = ""


@dataclass(frozen=True)
class OnnxImport:
    """An ONNX model as a Graph, with the initializer each layer array is read from."""

    graph: Graph
    weights: Mapping[str, WeightSource]
    unknown: Mapping[str, int]
    path: str


def read_onnx(
    path: str | os.PathLike[str], input_shapes: Mapping[str, tuple[Dim, ...]] | None = None
) -> Graph:
    """The ONNX model at ``path`` as a Graph (see the module docstring); ``input_shapes`` fixes
    the shapes of inputs by name (an export with symbolic image sizes)."""
    return import_onnx(path, input_shapes).graph


def import_onnx(
    path: str | os.PathLike[str], input_shapes: Mapping[str, tuple[Dim, ...]] | None = None
) -> OnnxImport:
    """Read ``path`` into a Graph and the weight sources of its layers; bad input is an error."""
    return import_model(_load_model(str(path)), str(path), input_shapes)


def import_model(
    model: onnx.ModelProto, path: str = "<model>", input_shapes: Mapping[str, tuple[Dim, ...]] | None = None
) -> OnnxImport:
    """A ModelProto already in memory into a Graph (``path`` names it in diagnostics)."""
    return _Reader(model, path, dict(input_shapes or {})).read()


def read_weights(imported: OnnxImport, typed: TypedGraph) -> dict[str, np.ndarray]:
    """The layers' arrays by their graph names (``layer1.0.conv1.weight``), read from the file's
    initializers (external data included) and shaped as the layers declare them."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(imported.path, load_external_data=False)
    initializers = {init.name: init for init in model.graph.initializer}
    base = str(Path(imported.path).parent)
    arrays: dict[str, np.ndarray] = {}
    for typed_node in typed.nodes:
        node = typed_node.node
        for array_spec in typed_node.arrays:
            spec = array_spec.spec
            key = f"{node.name}.{spec.name}"
            source = imported.weights.get(key)
            if source is None:
                raise error(f"{imported.path}: no initializer holds {key}")
            tensor = initializers[source.initializer]
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                from onnx.external_data_helper import load_external_data_for_tensor

                try:
                    load_external_data_for_tensor(tensor, base)
                except Exception as exc:  # OSError, or onnx's ValidationError for a missing file
                    raise error(
                        f"{imported.path}: cannot read the external data of '{tensor.name}': "
                        + _first_line(exc)
                    ) from None
            array: np.ndarray = numpy_helper.to_array(tensor).astype(np.float32)
            if source.transform == "transpose":
                array = array.T
            elif source.transform == "negate":
                array = -array
            elif source.transform == "reciprocal":
                array = 1 / array
            arrays[array_spec.name] = np.ascontiguousarray(array.reshape(spec.shape))
    return arrays


# ---------------------------------------------------------------- loading and checks


def _load_model(path: str) -> onnx.ModelProto:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ONNX_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_model(data, path)


def parse_model(data: bytes, path: str = "<model>") -> onnx.ModelProto:
    """An ONNX file's bytes as a ModelProto, read in memory (``path`` names it in diagnostics):
    bytes past MAX_ONNX_BYTES, bytes that are not a model and a model without a graph are errors."""
    import onnx

    if len(data) > MAX_ONNX_BYTES:
        raise error(
            f"{path}: more than {MAX_ONNX_BYTES:,} bytes, the most an ONNX file can hold",
            hint="a larger model keeps its weights as external data "
            "(onnx.save_model(..., save_as_external_data=True))",
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning-like errors
        raise error(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
            hint="the file may be truncated, or not an ONNX file",
        ) from None
    if not model.HasField("graph") or model.ir_version <= 0 or not model.graph.node:
        raise error(f"{path}: not an ONNX model (no graph, IR version or nodes)")
    return model


def _sorted_nodes(path: str, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes in a topological order: the file's own where it is one (the ONNX IR
    asks for it and exporters write it), else the order nearest it, ready nodes by file index.
    A read of a tensor that nothing produces, and a cycle, are errors."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    producers = {output: index for index, node in enumerate(graph.node) for output in node.output}
    edges: list[tuple[int, int]] = []
    for index, node in enumerate(graph.node):
        for tensor in node.input:
            if tensor in available:
                continue
            if tensor not in producers:
                raise error(f"{path}: node {_node_label(node)} reads '{tensor}', which nothing produces")
            edges.append((producers[tensor], index))
    if all(producer < reader for producer, reader in edges):
        return list(graph.node)
    # Only a file out of order pays for networkx's import.
    import networkx

    digraph = networkx.DiGraph()
    digraph.add_nodes_from(range(len(graph.node)))
    digraph.add_edges_from(edges)
    try:
        # The vertices are the file indices, so the smallest ready index comes first.
        order = list(networkx.lexicographical_topological_sort(digraph))
    except networkx.NetworkXUnfeasible:
        cycle = [producer for producer, _ in networkx.find_cycle(digraph)]
        first = cycle.index(min(cycle))
        cycle = cycle[first:] + cycle[:first] + [cycle[first]]
        names = " -> ".join(_node_label(graph.node[index]) for index in cycle)
        raise error(f"{path}: the graph has a cycle: {names}") from None
    return [graph.node[index] for index in order]


def _node_label(node: onnx.NodeProto) -> str:
    return f"'{node.name}' ({node.op_type})" if node.name else f"{node.op_type} writing '{node.output[0]}'"


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        values[attribute.name] = value
    return values


# ---------------------------------------------------------------- names


def scope_name(node_name: str) -> str:
    """torch's ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``: the module path without
    the operator at the end. A level that starts with the level before it and a dot names a
    child of it (``layer1.0``, ``downsample.0``); any other adds an attribute (``conv1``)."""
    parts = [p for p in node_name.split("/") if p][:-1]
    qualified, previous = "", ""
    for part in parts:
        if previous and part.startswith(previous + "."):
            qualified += part[len(previous) :]
        else:
            qualified = f"{qualified}.{part}" if qualified else part
        previous = part
    return qualified


_TORCH_SCOPES = "pkg.torch.onnx.name_scopes"


def is_netspec_model(model: onnx.ModelProto) -> bool:
    """Whether netspec wrote ``model``: its node names are then its spec's layer names."""
    return model.producer_name == "netspec"


def emitted_layer_name(node: onnx.NodeProto) -> str:
    """The spec layer a node of netspec's own file lowers: the node's name, less the
    ``/{op}_{k}`` the emitter appends to the second and later nodes of one layer (a quoted
    layer name keeps its ``-`` and ``/``)."""
    name, slash, suffix = node.name.rpartition("/")
    if slash and re.fullmatch(re.escape(node.op_type) + r"_[0-9]+", suffix):
        return name
    return node.name


def marked_layer_type(node: onnx.NodeProto) -> str:
    """The layer type a marked node of netspec's own file names after its spec location
    (``nin.net:30:1 Pooling``, see ``NodeEmitter.add``), else ''."""
    word = node.doc_string.rpartition(" ")[2]
    return word if word in LAYER_TYPES else ""


def _dynamo_scope(value: str) -> str:
    """torch's dynamo exporter's ``['', 'layer1', 'layer1.0', 'conv1', 'conv2d']`` (module
    names, then the traced call) as ``layer1.0.conv1``."""
    import ast

    try:
        parts = [str(p) for p in ast.literal_eval(value) if p]
    except (ValueError, SyntaxError):
        return ""
    return scope_name("/" + "/".join(parts)) if parts else ""


def _clean(text: str) -> str:
    if not text:
        return ""
    from netspec.convert import valid_name

    return valid_name(re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_."))


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Planned:
    """One netspec layer planned for an ONNX node."""

    type_name: str
    params: dict[str, Any]
    inputs: tuple[str, ...]
    weights: dict[str, WeightSource] = field(default_factory=dict)
    outputs: int = 1
    # The ONNX tensors the layer's outputs are, where they are not its node's outputs: a lowering
    # of netspec's own whose outputs several of its nodes write (Pooling's MaxPool and mask Cast).
    onnx_outputs: tuple[str, ...] = ()


class _Unsupported(Exception):
    """This node has no netspec layer in this form: it becomes an OnnxOp."""


@dataclass
class _Reader:
    model: onnx.ModelProto
    path: str
    input_shapes: dict[str, tuple[Dim, ...]] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    initializers: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict)
    types: dict[str, TensorType] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)
    fixed_batch: dict[str, int] = field(default_factory=dict)
    # Inputs whose leading dim is a fixed count other than a batch of 1 (Faster R-CNN's RoIs).
    fixed_inputs: set[str] = field(default_factory=set)
    initializer_alias: dict[str, str] = field(default_factory=dict)
    # Transposes of 2-D initializers read only by MatMul and Gemm (netspec's own emission of a
    # fully connected layer at a later axis): the matrix they read is the initializer transposed.
    transposed: set[str] = field(default_factory=set)
    # RoiAlign nodes whose boxes and batch indices are cut from one [R, 5] tensor (torchvision's
    # and netspec's own exports): RoiAlign output -> that tensor; the cutting nodes are skipped.
    roi_sources: dict[str, str] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)
    readers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    returned: set[str] = field(default_factory=set)
    # MaxPool Indices that only MaxUnpool reads: Pooling's mask output, which Upsample reads.
    masks: set[str] = field(default_factory=set)
    # Zero padding that the convolutions reading it take into their own pads (TensorFlow's
    # exports pad asymmetrically before a convolution): tensor -> (top, left, bottom, right).
    absorbed_pads: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    # netspec wrote the file: node names give the spec's layer names exactly.
    own_file: bool = False
    # netspec's own lowerings read back as their layers (see _find_lowerings): the layer planned
    # at the last node of its run (by the node's id); the run's other nodes are skipped.
    lowered: dict[int, _Planned] = field(default_factory=dict)

    def read(self) -> OnnxImport:
        import onnx

        graph = self.model.graph
        for node in graph.node:
            if node.op_type in _CONTROL_FLOW or any(
                a.type == onnx.AttributeProto.GRAPH for a in node.attribute
            ):
                raise error(
                    f"{self.path}: node {_node_label(node)} is control flow; netspec reads "
                    "feed-forward graphs only",
                    hint="export the model without data-dependent loops or branches",
                )
        nodes = _sorted_nodes(self.path, graph)
        opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.opset = opset
        self.own_file = is_netspec_model(self.model)
        self._read_initializers(graph)
        self._infer_types(graph, nodes)
        netspec_nodes: list[Node] = []
        weights: dict[str, WeightSource] = {}
        unknown: Counter[str] = Counter()
        # Each layer gets a provisional name (its tensor's too) until all scopes are known.
        # ``own_types`` are netspec's types of them: where ONNX inference leaves a dim unknown
        # (a Reshape by a computed shape), the next node sees netspec's.
        own_types: dict[str, TensorType] = {}
        scopes: list[tuple[str, str]] = []
        input_names = [i.name for i in graph.input if i.name not in self.initializers]
        if not input_names:
            raise error(f"{self.path}: the model has no inputs")
        for name in input_names:
            provisional = f"#{len(netspec_nodes)}"
            self.alias[name] = provisional
            dims = self.types[name].dims
            if any(isinstance(d, str) and d != BATCH_SYMBOL for d in dims):
                raise error(
                    f"{self.path}: the input '{name}' has symbolic dims {self.types[name]}; netspec "
                    "counts fixed sizes",
                    hint=f"give its shape, e.g. --input {name}:1x3x224x224",
                )
            layer = build_layer(LAYER_TYPES["Input"], {"shape": RawParam(_spec_dims(dims))}, None)
            netspec_nodes.append(Node(provisional, layer, (), (provisional,)))
            own_types[provisional] = self.types[name]
            scopes.append((_clean(name), ""))
        readers: dict[str, list[onnx.NodeProto]] = {}
        for node in nodes:
            for tensor in node.input:
                readers.setdefault(tensor, []).append(node)
        returned = {o.name for o in graph.output}
        self.readers, self.returned = readers, returned
        self._find_roi_sources(nodes, readers, returned)
        if self.own_file:  # netspec's multi-node lowerings occur only in netspec's files
            self._find_lowerings(nodes, readers, returned)
        for node in nodes:
            if id(node) in self.skipped:
                continue
            if node.op_type == "Identity" and node.input[0] in self.initializers:
                # TorchScript shares equal arrays through Identity nodes: the same initializer.
                self.initializers[node.output[0]] = self.initializers[node.input[0]]
                self.initializer_alias[node.output[0]] = self.initializer_alias.get(
                    node.input[0], node.input[0]
                )
                if node.input[0] in self.constants:
                    self.constants[node.output[0]] = self.constants[node.input[0]]
                continue
            if self._transposed_matrix(node, readers):
                continue
            if self._fold(node):
                continue
            if node.op_type in ("Identity", "Dropout") and node.input[0] in self.alias:
                self.alias[node.output[0]] = self.alias[node.input[0]]
                continue
            if node.op_type == "Pad" and self._absorb_pad(node, readers, returned):
                continue
            scopes_meta = next((p.value for p in node.metadata_props if p.key == _TORCH_SCOPES), None)
            if self.own_file:
                scope = emitted_layer_name(node)
            elif scopes_meta is not None:
                scope = _dynamo_scope(scopes_meta)
            elif node.name.startswith("/"):
                scope = scope_name(node.name)
            else:  # netspec's own files: the layer, then '/' and the ONNX op of a multi-op lowering
                scope = node.name.split("/")[0]
            try:
                plans = self._plan(node)
            except _Unsupported:
                plans = [self._opaque(node)]
            for number, plan in enumerate(plans):
                provisional = f"#{len(netspec_nodes)}"
                count = plan.outputs
                outputs = (provisional,) if count == 1 else tuple(f"{provisional}.{i}" for i in range(count))
                if plan.type_name == "Pooling" and count == 2:
                    # An optional second output: a spec names it (top: [pool, pool_mask]).
                    outputs = (provisional, f"{provisional}.mask")
                raw = {key: RawParam(value) for key, value in plan.params.items()}
                try:
                    layer = build_layer(LAYER_TYPES[plan.type_name], raw, None, None, count)
                except NetspecError as exc:
                    raise error(
                        f"{self.path}: node {_node_label(node)}: {exc.diagnostics[0].message}"
                    ) from None
                inputs = tuple(self._tensor(node, t) for t in plan.inputs)
                netspec_nodes.append(Node(provisional, layer, inputs, outputs))
                try:
                    inferred = self._inferred(layer, [own_types[t] for t in inputs])
                    own_types.update(zip(outputs, inferred, strict=True))
                except LayerError as exc:
                    raise error(
                        f"{self.path}: node {_node_label(node)}: {plan.type_name} {exc.message}"
                    ) from None
                onnx_names = plan.onnx_outputs or (
                    node.output if number == len(plans) - 1 else [f"{node.output[0]}#{number}"]
                )
                for onnx_name, tensor in zip(onnx_names, outputs, strict=False):
                    known, own = self.types.get(onnx_name), own_types[tensor]
                    if (
                        known is None
                        or any(isinstance(d, str) and d != BATCH_SYMBOL for d in known.dims)
                        # A fixed batch of 1 that a Reshape target spells out stays netspec's N.
                        or (
                            own.rank == known.rank
                            and own.dims[0] == BATCH_SYMBOL
                            and known.dims == (1, *own.dims[1:])
                        )
                    ):
                        self.types[onnx_name] = own
                named = scope if self.own_file else _clean(_weight_scope(plan) or scope)
                scopes.append((named, node.op_type.lower()))
                for key, source in plan.weights.items():
                    real = self.initializer_alias.get(source.initializer, source.initializer)
                    weights[f"{provisional}.{key}"] = WeightSource(real, source.transform)
                if number == len(plans) - 1:
                    self.alias.update(zip(onnx_names, outputs, strict=False))
                else:
                    self.alias[f"{node.output[0]}#{number}"] = provisional
        netspec_nodes, scopes = _merge_linear_bias(netspec_nodes, scopes, self.alias, graph, weights)
        netspec_nodes, scopes = _merge_flatten(netspec_nodes, scopes, self.alias, graph)
        netspec_nodes, scopes = _merge_gates(netspec_nodes, scopes, self.alias, graph)
        netspec_nodes, scopes = _merge_shuffles(netspec_nodes, scopes, self.alias, graph)
        netspec_nodes, scopes = _merge_gelus(netspec_nodes, scopes, self.alias, graph)
        netspec_nodes, scopes = _merge_layer_norms(netspec_nodes, scopes, self.alias, graph, weights)
        netspec_nodes, scopes = _merge_transposed_matmuls(netspec_nodes, scopes, self.alias, graph)
        if self.own_file:
            netspec_nodes, scopes = _merge_weighted_sums(netspec_nodes, scopes, self.alias, graph)
            netspec_nodes, scopes = _merge_layer_scales(netspec_nodes, scopes, self.alias, graph, weights)
        unknown.update(n.layer.params.op_type for n in netspec_nodes if n.type == "OnnxOp")
        names = _final_names(netspec_nodes, scopes, weights, exact=self.own_file)
        netspec_nodes = [_renamed(n, names) for n in netspec_nodes]
        weights = {f"{names[key.split('.')[0]]}.{key.split('.', 1)[1]}": v for key, v in weights.items()}
        self.alias = {k: _renamed_tensor(v, names) for k, v in self.alias.items() if v.split(".")[0] in names}
        outputs = tuple(self._graph_output(o.name) for o in graph.output)
        warnings: tuple[Diagnostic, ...] = ()
        if unknown:
            listed = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in sorted(unknown.items()))
            total = sum(unknown.values())
            warnings = (
                Diagnostic(
                    f"{self.path}: {total} node{'s' if total != 1 else ''} of operators netspec has no "
                    f"layer for ({listed}) count 0 MACs and FLOPs; the totals exclude them",
                    severity="warning",
                ),
            )
        name = self.model.graph.name
        if name in _EXPORTER_GRAPH_NAMES:
            name = Path(self.path).stem
        result = Graph(
            name=name,
            nodes=tuple(netspec_nodes),
            outputs=outputs,
            source_path=self.path,
            metadata=(("format", "onnx"),),
            warnings=warnings,
        )
        return OnnxImport(result, weights, dict(unknown), self.path)

    def _transposed_matrix(self, node: onnx.NodeProto, readers: Mapping[str, list[onnx.NodeProto]]) -> bool:
        """A Transpose of a 2-D initializer that only MatMul and Gemm read (as their matrix):
        they read the initializer, transposed (see ``matrix``)."""
        if node.op_type != "Transpose" or node.input[0] not in self.initializers:
            return False
        shape, elem = self.initializers[node.input[0]]
        if len(shape) != 2 or list(_attributes(node).get("perm", [1, 0])) != [1, 0]:
            return False
        consumers = readers.get(node.output[0], [])
        if not consumers or any(
            c.op_type not in ("MatMul", "Gemm") or list(c.input).index(node.output[0]) != 1 for c in consumers
        ):
            return False
        self.initializers[node.output[0]] = ((shape[1], shape[0]), elem)
        self.initializer_alias[node.output[0]] = self.initializer_alias.get(node.input[0], node.input[0])
        if node.input[0] in self.transposed:
            self.transposed.discard(node.output[0])
        else:
            self.transposed.add(node.output[0])
        if node.input[0] in self.constants:
            self.constants[node.output[0]] = self.constants[node.input[0]].T
        return True

    def _find_roi_sources(
        self,
        nodes: Sequence[onnx.NodeProto],
        readers: Mapping[str, list[onnx.NodeProto]],
        returned: set[str],
    ) -> None:
        """RoiAlign(X, rois[:, 1:5], int64(rois[:, 0])) of one [R, 5] tensor: the ROIAlign layer
        reads that tensor, and the Slice/Gather, Cast and Reshape/Squeeze nodes cutting it go."""
        producer = {o: n for n in nodes for o in n.output}

        def column(tensor: str, wanted: list[int]) -> tuple[str, onnx.NodeProto] | None:
            node = producer.get(tensor)
            if node is None:
                return None
            attrs = _attributes(node)
            if node.op_type == "Gather" and attrs.get("axis", 0) in (1, -1):
                index = self.const(node.input[1])
                if (
                    index is not None
                    and index.ravel().tolist() == wanted
                    and (index.ndim > 0) == (len(wanted) > 1)
                ):
                    return node.input[0], node
            elif node.op_type == "Slice" and len(node.input) >= 4:
                bounds = [self.const(t) for t in node.input[1:]]
                if any(b is None for b in bounds):
                    return None
                starts, ends, axes = (b.ravel().tolist() for b in bounds[:3])  # type: ignore[union-attr]  # no None: checked above
                steps = bounds[3].ravel().tolist() if len(bounds) > 3 else [1]  # type: ignore[union-attr]  # no None: checked above
                if (starts, ends, steps) == ([wanted[0]], [wanted[-1] + 1], [1]) and axes in ([1], [-1]):
                    return node.input[0], node
            return None

        for node in nodes:
            if (
                node.op_type != "RoiAlign"
                or len(node.input) != 3
                or _roi_align_params(node, self.opset) is None
            ):
                continue
            boxes = column(node.input[1], [1, 2, 3, 4])
            chain: list[onnx.NodeProto] = []
            tensor = node.input[2]
            while (step := producer.get(tensor)) is not None and step.op_type in (
                "Cast",
                "Reshape",
                "Squeeze",
            ):
                chain.append(step)
                tensor = step.input[0]
            indices = column(tensor, [0])
            if boxes is None or indices is None or boxes[0] != indices[0] or boxes[0] not in self.types:
                continue
            if boxes[0] in self.initializers or boxes[0] in self.constants:
                continue
            cut = [boxes[1], indices[1], *chain]
            inside = {id(n) for n in cut} | {id(node)}
            if any(
                o in returned or any(id(r) not in inside for r in readers.get(o, []))
                for n in cut
                for o in n.output
            ):
                continue
            self.roi_sources[node.output[0]] = boxes[0]
            self.skipped.update(id(n) for n in cut)

    def _find_lowerings(
        self,
        nodes: Sequence[onnx.NodeProto],
        readers: Mapping[str, list[onnx.NodeProto]],
        returned: set[str],
    ) -> None:
        """netspec's own files: the run of nodes one layer of a type in ``_LOWERINGS`` emitted
        (named after the layer, as netspec.export.onnx.NodeEmitter names them) is that layer,
        planned at the run's last node; the others are skipped. A run is that layer only if the
        layer, emitted again with parameters read from the run, writes exactly these nodes. Its
        outputs are the run's tensors read after it, in the order the run writes them, and the
        last node's (Pooling's mask is a Cast after the MaxPool writing the pooled tensor)."""
        for scope, run in _netspec_runs(nodes):
            inside = {id(n) for n in run}
            leaving = [
                o
                for n in run[:-1]
                for o in n.output
                if o in returned or any(id(r) not in inside for r in readers.get(o, []))
            ]
            outputs = (*leaving, *run[-1].output)
            for lowering in _LOWERINGS:
                plan = self._lowered(lowering, scope, run, outputs)
                if plan is not None:
                    self.lowered[id(run[-1])] = plan
                    self.skipped.update(id(n) for n in run[:-1])
                    break

    def _lowered(
        self, lowering: _Lowering, scope: str, run: Sequence[onnx.NodeProto], outputs: tuple[str, ...]
    ) -> _Planned | None:
        """The layer of ``lowering`` writing ``outputs`` whose emission is ``run``, if one of its
        candidate parameters gives it (with the file's batch: symbolic, or the fixed one it was
        compiled for). Its inputs are the run's, in the order it reads them first or, where the
        layer takes them in another (RCNNDetection reads its deltas before its scores), the
        first order whose emission is the run."""
        from netspec.export.onnx import NodeEmitter, _ModelBuilder
        from netspec.typed import node_arrays

        produced = {o for n in run for o in n.output}
        inputs = tuple(
            dict.fromkeys(
                t for n in run for t in n.input if t and t not in produced and t not in self.initializers
            )
        )
        if not inputs or any(t not in self.types for t in inputs):
            return None
        symbolic = [self.types[t] for t in inputs]
        if any(isinstance(d, str) and d != BATCH_SYMBOL for x in symbolic for d in x.dims):
            return None
        for params in lowering.candidates(self, scope, run, symbolic):
            raw = {key: RawParam(value) for key, value in params.items()}
            for order in itertools.permutations(inputs):
                for types in self._batch_readings([self.types[t] for t in order]):
                    try:
                        layer = build_layer(LAYER_TYPES[lowering.type_name], raw, None, None, len(outputs))
                        node = Node(scope, layer, order, outputs)
                        output_types = layer.infer(types)
                        arrays = node_arrays(node, types)
                        builder = _ModelBuilder({}, self.opset)
                        layer.emit(NodeEmitter(builder, node, arrays, types, output_types))
                    except (NetspecError, LayerError):
                        continue
                    if self._emitted_as(builder.model, run) and all(
                        self.initializers.get(a.name, ((),))[0] == a.spec.shape for a in arrays
                    ):
                        weights = {a.spec.name: WeightSource(a.name) for a in arrays}
                        return _Planned(lowering.type_name, params, order, weights, len(outputs), outputs)
        return None

    def _batch_readings(self, types: Sequence[TensorType]) -> list[list[TensorType]]:
        """``types`` as the reader reads them (the batch symbolic), then at each fixed batch the
        file's inputs were given."""
        batches = sorted(set(self.fixed_batch.values()))
        return [
            list(types),
            *(
                [
                    TensorType((b, *x.dims[1:]), x.dtype) if x.dims and x.dims[0] == BATCH_SYMBOL else x
                    for x in types
                ]
                for b in batches
            ),
        ]

    def _inferred(self, layer: Layer[Any], types: Sequence[TensorType]) -> tuple[TensorType, ...]:
        """``layer``'s output types for its inputs ``types``.

        NOTE: the reader reads a file's batch of 1 as the symbolic batch N, which a layer of
        batch-1 semantics refuses (Faster R-CNN's Proposal and RCNNDetection, as in
        py-faster-rcnn). Such a layer is inferred at the batch the file was compiled for, as its
        emission is compared in _lowered: the one rule for every layer that needs a fixed batch.
        The graph read keeps N, and binding it to another batch fails there, as the spec's
        would. The error of a layer that no batch satisfies is the symbolic batch's."""
        try:
            return layer.infer(types)
        except LayerError:
            for readings in self._batch_readings(types)[1:]:
                with contextlib.suppress(LayerError):
                    return layer.infer(readings)
            raise

    def _emitted_as(self, emitted: onnx.ModelProto, run: Sequence[onnx.NodeProto]) -> bool:
        """Whether ``emitted`` (one layer's emission) has the nodes of ``run`` (names, operators,
        tensors and attributes) and its constants, by name, type, shape and value (a large one,
        such as AffineGrid's base grid, read from the file here)."""
        from onnx import numpy_helper

        nodes = emitted.graph.node
        if len(nodes) != len(run):
            return False
        for made, found in zip(nodes, run, strict=True):
            if (made.op_type, made.domain, made.name, made.input, made.output) != (
                found.op_type,
                found.domain,
                found.name,
                found.input,
                found.output,
            ) or list(made.attribute) != list(found.attribute):
                return False
        for constant in emitted.graph.initializer:
            if self.initializers.get(constant.name) != (tuple(constant.dims), constant.data_type):
                return False
            known = self.constants.get(constant.name)
            if known is None:
                known = self._stored_constant(constant.name)
            if known is not None and not np.array_equal(known, numpy_helper.to_array(constant)):
                return False
        return True

    def _stored_constant(self, name: str) -> np.ndarray | None:
        """The value of initializer ``name`` too large to be read as a constant, from the file
        (None for one held in external data)."""
        import onnx
        from onnx import numpy_helper

        for init in self.model.graph.initializer:
            if init.name == name and init.data_location != onnx.TensorProto.EXTERNAL:
                return numpy_helper.to_array(init)
        return None

    def matrix(self, tensor: str, transpose: bool) -> WeightSource:
        """The source of a layer's matrix read from initializer ``tensor`` (transposed if
        ``transpose``), through the Transposes of initializers the reader skipped."""
        flipped = transpose != (tensor in self.transposed)
        return WeightSource(tensor, "transpose" if flipped else "")

    def _absorb_pad(
        self, node: onnx.NodeProto, readers: Mapping[str, list[onnx.NodeProto]], returned: set[str]
    ) -> bool:
        """A constant zero Pad of H and W read only by convolutions: they pad instead."""
        attrs = _attributes(node)
        if attrs.get("mode", "constant") != "constant" or node.input[0] not in self.alias:
            return False
        if "pads" in attrs:
            pads, value = list(attrs["pads"]), attrs.get("value", 0.0)
        else:
            known = self.const(node.input[1]) if len(node.input) > 1 else None
            fill = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
            if known is None or fill is None or (len(node.input) > 3 and node.input[3]):
                return False
            pads, value = known.ravel().tolist(), float(fill.ravel()[0])
        if value != 0 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            return False
        consumers = readers.get(node.output[0], [])
        if node.output[0] in returned or not consumers or any(c.op_type != "Conv" for c in consumers):
            return False
        before = self.absorbed_pads.get(node.input[0], (0, 0, 0, 0))
        own = (pads[2], pads[3], pads[6], pads[7])
        self.absorbed_pads[node.output[0]] = tuple(a + b for a, b in zip(before, own, strict=True))
        self.alias[node.output[0]] = self.alias[node.input[0]]
        return True

    # -- names and tensors -----------------------------------------------------------------

    @staticmethod
    def _unique(name: str, used: set[str]) -> str:
        candidate, number = name, 1
        while candidate in used:
            candidate = f"{name}_{number}"
            number += 1
        used.add(candidate)
        return candidate

    def _tensor(self, node: onnx.NodeProto, tensor: str) -> str:
        found = self.alias.get(tensor)
        if found is None:
            raise error(
                f"{self.path}: node {_node_label(node)} reads '{tensor}', a constant netspec cannot place"
            )
        return found

    def _graph_output(self, tensor: str) -> str:
        found = self.alias.get(tensor)
        if found is None:
            raise error(
                f"{self.path}: the output '{tensor}' is a constant; netspec needs it computed from an input"
            )
        return found

    # -- types -------------------------------------------------------------------------------

    def _read_initializers(self, graph: onnx.GraphProto) -> None:
        import onnx
        from onnx import numpy_helper

        for init in graph.initializer:
            shape = tuple(int(d) for d in init.dims)
            self.initializers[init.name] = (shape, init.data_type)
            external = init.data_location == onnx.TensorProto.EXTERNAL
            if math.prod(shape) <= SMALL_CONSTANT and not external:
                self.constants[init.name] = numpy_helper.to_array(init)

    def _infer_types(self, graph: onnx.GraphProto, nodes: Sequence[onnx.NodeProto]) -> None:
        import onnx

        # The batch of every input becomes the symbolic N (as for Caffe files); a fixed batch
        # the exporter baked into Reshape targets is recognised by its value (see _reshape).
        for value in graph.input:
            if value.name in self.initializers:
                continue
            dims = self._dims(value)
            if dims is None or not dims:
                raise error(
                    f"{self.path}: the input '{value.name}' has no shape",
                    hint="export with a fixed input shape",
                )
            if dims[0] == 1 and len(dims) >= 2:
                self.fixed_batch[value.name] = 1
            elif isinstance(dims[0], int):
                self.fixed_inputs.add(value.name)
        try:
            inferred = onnx.shape_inference.infer_shapes(
                self._shape_model(nodes), strict_mode=True, data_prop=True
            )
        except Exception as exc:
            raise error(f"{self.path}: ONNX shape inference failed: {_first_line(exc)}") from None
        batch_names = set()
        for value in inferred.graph.input:
            if value.name in self.initializers:
                continue
            dims = self._dims(value)
            if dims and isinstance(dims[0], str):
                batch_names.add(dims[0])
        for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            dims = self._dims(value)
            if dims is None:
                continue
            elem = value.type.tensor_type.elem_type
            dims = tuple(BATCH_SYMBOL if d in batch_names else d for d in dims)
            if dims and isinstance(dims[0], str):
                # NOTE: a symbolic leading dim that inference named afresh (unk__0 after a
                # Resize) is the batch it was computed from.
                dims = (BATCH_SYMBOL, *dims[1:])
            self.types[value.name] = TensorType(dims, _ONNX_DTYPES.get(elem, "float32"))

    def _shape_model(self, nodes: Sequence[onnx.NodeProto]) -> onnx.ModelProto:
        """The model as shape inference needs it: ``nodes`` in topological order (inference reads
        them in turn), the large initializers as typed inputs (no weight bytes copied), every
        input's batch the symbolic N."""
        import onnx

        source = self.model
        model = onnx.ModelProto()
        model.ir_version = source.ir_version
        model.opset_import.extend(source.opset_import)
        model.functions.extend(source.functions)
        graph = model.graph
        graph.node.extend(nodes)
        graph.output.extend(source.graph.output)
        for value in source.graph.input:
            if value.name in self.initializers:
                continue
            copy = graph.input.add()
            copy.CopyFrom(value)
            given = self.input_shapes.get(value.name)
            if given is not None:
                shape = copy.type.tensor_type.shape
                shape.ClearField("dim")
                for axis, size in enumerate(given):
                    dim = shape.dim.add()
                    if isinstance(size, int) and not (axis == 0 and size == 1 and len(given) >= 2):
                        dim.dim_value = size
                    else:
                        dim.dim_param = BATCH_SYMBOL
            elif value.name not in self.fixed_inputs:
                copy.type.tensor_type.shape.dim[0].dim_param = BATCH_SYMBOL
        for init in source.graph.initializer:
            if init.name in self.constants:
                graph.initializer.append(init)
            else:
                shape, elem = self.initializers[init.name]
                graph.input.append(onnx.helper.make_tensor_value_info(init.name, elem, shape))
        return model

    @staticmethod
    def _dims(value: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            return None
        dims: list[Dim] = []
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append("?")
        return tuple(dims)

    def type_of(self, node: onnx.NodeProto, tensor: str) -> TensorType:
        found = self.types.get(tensor)
        if found is None and tensor in self.initializers:
            shape, elem = self.initializers[tensor]
            found = TensorType(shape, _ONNX_DTYPES.get(elem, "float32"))
        elif found is None and tensor in self.constants:
            found = TensorType(tuple(self.constants[tensor].shape))
        if found is None or any(isinstance(d, str) and d != BATCH_SYMBOL for d in found.dims):
            known = f" (ONNX inference gives {found})" if found is not None else ""
            raise error(
                f"{self.path}: node {_node_label(node)}: the shape of '{tensor}' cannot be inferred{known}",
                hint="export with fixed input shapes, or give them with --input NAME:SHAPE",
            )
        return found

    def _static(self, node: onnx.NodeProto, tensor: str) -> tuple[int, ...]:
        """The dims of ``tensor`` with the batch as the sentinel (for folding Shape)."""
        dims = self.type_of(node, tensor).dims
        if any(isinstance(d, str) and d != BATCH_SYMBOL for d in dims):
            raise error(f"{self.path}: node {_node_label(node)}: '{tensor}' has symbolic dims {list(dims)}")
        return tuple(_BATCH_SENTINEL if d == BATCH_SYMBOL else int(d) for d in dims)

    # -- constant folding --------------------------------------------------------------------

    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate ``node`` if its value is known without running the network; True if done."""
        from onnx import numpy_helper

        op = node.op_type
        attrs = _attributes(node)
        if op == "Constant":
            if "value" in node.attribute[0].name and node.attribute[0].name == "value":
                value = numpy_helper.to_array(node.attribute[0].t)
            else:
                key, raw = next(iter(attrs.items()))
                value = np.array(raw.name if hasattr(raw, "name") else raw)
                if key in ("value_float", "value_floats"):
                    value = value.astype(np.float32)
                elif key in ("value_int", "value_ints"):
                    value = value.astype(np.int64)
            self.constants[node.output[0]] = value
            return True
        if op == "Shape" and node.input[0] not in self.constants:
            dims = np.array(self._static(node, node.input[0]), np.int64)
            start, end = attrs.get("start", 0), attrs.get("end", None)
            self.constants[node.output[0]] = dims[start:end]
            return True
        if op == "Size" and node.input[0] not in self.constants:
            self.constants[node.output[0]] = np.array(math.prod(self._static(node, node.input[0])), np.int64)
            return True
        inputs = [t for t in node.input if t]
        if not inputs or not all(t in self.constants for t in inputs):
            return False
        if op in _GROWING and any(np.any(self.constants[t] >= _BATCH_SENTINEL) for t in inputs):
            return False  # a batch-sized tensor: it stays a node (evaluating it would fill memory)
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(node)
            feeds = {t: self.constants[t] for t in inputs}
            results = evaluator.run(None, feeds)
        except Exception as exc:
            raise error(
                f"{self.path}: node {_node_label(node)}: cannot evaluate it on its constant inputs: "
                + _first_line(exc)
            ) from None
        for output, value in zip(node.output, results, strict=False):
            self.constants[output] = np.asarray(value)
        return True

    # -- mapping onto layers -----------------------------------------------------------------

    def is_dynamic(self, tensor: str) -> bool:
        return tensor in self.alias

    def const(self, tensor: str) -> np.ndarray | None:
        return self.constants.get(tensor) if tensor else None

    def weight(self, tensor: str) -> tuple[int, ...]:
        """The shape of an initializer used as a layer's array."""
        if tensor in self.initializers and not self.is_dynamic(tensor):
            return self.initializers[tensor][0]
        raise _Unsupported

    def _plan(self, node: onnx.NodeProto) -> list[_Planned]:
        if id(node) in self.lowered:
            return [self.lowered[id(node)]]
        mapper = _MAPPERS.get(node.op_type)
        if mapper is None:
            raise _Unsupported
        if node.output[0] in self.roi_sources:  # its boxes and indices were cut from one tensor
            return mapper(self, node, _attributes(node))
        if any(
            t and not self.is_dynamic(t) and t not in self.initializers and t not in self.constants
            for t in node.input
        ):
            raise _Unsupported
        return mapper(self, node, _attributes(node))

    def _opaque(self, node: onnx.NodeProto) -> _Planned:
        roles: list[str] = []
        dynamic: list[str] = []
        constants: list[tuple[int, str, tuple[int, ...], tuple[float, ...]]] = []
        weights: dict[str, WeightSource] = {}
        shapes: list[tuple[int, ...]] = []
        for index, tensor in enumerate(node.input):
            if not tensor:
                roles.append("")
            elif self.is_dynamic(tensor):
                roles.append("x")
                dynamic.append(tensor)
            elif tensor in self.initializers and (
                tensor not in self.constants or self.initializers[tensor][0]
            ):
                if tensor in self.constants and self.constants[tensor].size <= 16:
                    value = self.constants[tensor]
                    constants.append(
                        (index, str(value.dtype), tuple(value.shape), tuple(value.ravel().tolist()))
                    )
                    roles.append("c")
                else:
                    roles.append(f"p{len(shapes)}")
                    shapes.append(self.initializers[tensor][0])
                    weights[f"input{index}"] = WeightSource(tensor)
            elif tensor in self.constants:
                value = self.constants[tensor]
                constants.append((index, str(value.dtype), tuple(value.shape), tuple(value.ravel().tolist())))
                roles.append("c")
            else:
                raise error(f"{self.path}: node {_node_label(node)} reads '{tensor}', which is unknown")
        output_types = tuple(self.type_of(node, t) for t in node.output if t)
        params = {
            "op_type": node.op_type,
            "domain": node.domain,
            "attributes": tuple(sorted(_attributes(node).items())),
            "roles": tuple(roles),
            "constants": tuple(constants),
            "array_shapes": tuple(shapes),
            "output_types": output_types,
        }
        return _Planned("OnnxOp", params, tuple(dynamic), weights, outputs=len(output_types))


def _weight_scope(plan: _Planned) -> str:
    """The module a layer's weight comes from, where the initializer has a state_dict name
    (``layer1.0.conv1.weight``): torch's dynamo exporter names a convolution with BatchNorm
    folded in after the BatchNorm, its weight still after the convolution."""
    source = plan.weights.get("weight")
    if source is None or not source.initializer.endswith(".weight"):
        return ""
    scope = source.initializer[: -len(".weight")]
    return scope if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", scope) else ""


def _final_names(
    nodes: Sequence[Node],
    scopes: Sequence[tuple[str, str]],
    weights: Mapping[str, WeightSource],
    exact: bool = False,
) -> dict[str, str]:
    """Each provisional name's final one: its scope, where one layer has it; the layer with
    weights keeps the scope when several share it (netspec's own multi-op lowerings), the others
    get their operator appended; an operator written in a module that has submodules (torch's
    ``/layer1/layer1.0/Add``) is named ``layer1.0.add``, unless the scopes are ``exact`` layer
    names (netspec's own files, where ``layer2.0.shortcut`` sits beside
    ``layer2.0.shortcut.subsample``)."""
    bases = {scope for scope, _ in scopes if scope}
    containers = set() if exact else {prefix for scope in bases for prefix in _prefixes(scope)}
    with_weights = {key.split(".")[0] for key in weights}
    wanted: list[str] = []
    for scope, op in scopes:
        if not scope:
            wanted.append(op or "node")
        elif scope in containers and op:
            wanted.append(f"{scope}.{op}")
        else:
            wanted.append(scope)
    sharing = Counter(wanted)
    owner: dict[str, int] = {}
    for index, (name, node) in enumerate(zip(wanted, nodes, strict=True)):
        if sharing[name] > 1 and node.name in with_weights and name not in owner:
            owner[name] = index
    used: set[str] = set()
    result: dict[str, str] = {}
    order = sorted(range(len(nodes)), key=lambda i: (owner.get(wanted[i]) != i, i))
    for index in order:
        name, (_, op) = wanted[index], scopes[index]
        if sharing[name] > 1 and owner.get(name) != index and op and name in owner:
            name = f"{name}_{op}"
        result[nodes[index].name] = _Reader._unique(name, used)
    return result


def _move_weights(weights: dict[str, WeightSource], source: str, target: str) -> None:
    """The arrays of layer ``source`` as those of layer ``target`` (a merge kept its node)."""
    for key in [k for k in weights if k.split(".")[0] == source]:
        weights[f"{target}.{key.split('.', 1)[1]}"] = weights.pop(key)


def _kept(
    nodes: list[Node], scopes: list[tuple[str, str]], dropped: set[int]
) -> tuple[list[Node], list[tuple[str, str]]]:
    """What a merge pass returns: the nodes (and their scopes) it did not merge away."""
    keep = [i for i in range(len(nodes)) if i not in dropped]
    return [nodes[i] for i in keep], [scopes[i] for i in keep]


def _merge_linear_bias(
    nodes: list[Node],
    scopes: list[tuple[str, str]],
    alias: Mapping[str, str],
    graph: onnx.GraphProto,
    weights: dict[str, WeightSource],
) -> tuple[list[Node], list[tuple[str, str]]]:
    """MatMul by a weight then Add of a bias over the output features is one InnerProduct with
    a bias: torch's export of ``nn.Linear`` on more than two axes (ViT's and ConvNeXt's MLPs) and
    netspec's own InnerProduct at an axis other than 1."""
    scopes = list(scopes)
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "InnerProduct" or node.layer.params.bias_term:
            continue
        bias = chains.reader(node.outputs[0], "Bias")
        if bias is None or len(nodes[bias].inputs) != 1:
            continue
        p = nodes[bias].layer.params
        # The InnerProduct's output has axis + 1 axes: its features are at its axis.
        if p.axis != node.layer.params.axis or p.num_axes != 1:
            continue
        raw = {
            "num_output": RawParam(node.layer.params.num_output),
            "axis": RawParam(node.layer.params.axis),
        }
        layer = build_layer(LAYER_TYPES["InnerProduct"], raw, None)
        last = nodes[bias].name
        result[bias] = Node(last, layer, node.inputs, nodes[bias].outputs)
        _move_weights(weights, node.name, last)
        scopes[bias] = scopes[index]
        dropped.add(index)
    return _kept(result, scopes, dropped)


def _merge_flatten(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """Flatten(axis 1) followed by its only reader, an InnerProduct, is one InnerProduct (which
    flattens from axis 1 itself): the form a spec and a Caffe file have."""
    readers = Counter(t for n in nodes for t in n.inputs)
    returned = {alias.get(o.name) for o in graph.output}
    producers = {n.outputs[0]: i for i, n in enumerate(nodes) if n.outputs}
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "InnerProduct" or node.layer.params.axis != 1:
            continue
        source = producers.get(node.inputs[0])
        if source is None:
            continue
        flatten = nodes[source]
        if flatten.type != "Flatten" or readers[flatten.outputs[0]] != 1 or flatten.outputs[0] in returned:
            continue
        if (flatten.layer.params.axis, flatten.layer.params.end_axis) != (1, -1):
            continue
        result[index] = Node(node.name, node.layer, flatten.inputs, node.outputs)
        dropped.add(source)
    return _kept(result, scopes, dropped)


def _merge_gates(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """x · sigmoid(x) is one SiLU, x · hardsigmoid(x) (α 1/6, β 1/2) one HardSwish: the form
    torch's exporters and netspec's own emission lower them to."""
    from netspec.layers.activation import TORCH_HARD_SIGMOID

    readers = Counter(t for n in nodes for t in n.inputs)
    returned = {alias.get(o.name) for o in graph.output}
    producers = {n.outputs[0]: i for i, n in enumerate(nodes) if n.outputs}
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "Eltwise" or node.layer.params.operation != "PROD" or len(node.inputs) != 2:
            continue
        if node.layer.params.coeff is not None:
            continue
        for x, gate in (node.inputs, node.inputs[::-1]):
            source = producers.get(gate)
            if source is None or readers[gate] != 1 or gate in returned or nodes[source].inputs != (x,):
                continue
            gate_node = nodes[source]
            if gate_node.type == "Sigmoid":
                fused = "SiLU"
            elif gate_node.type == "HardSigmoid" and all(
                math.isclose(a, b, rel_tol=1e-6)
                for a, b in zip(
                    (gate_node.layer.params.alpha, gate_node.layer.params.beta),
                    TORCH_HARD_SIGMOID,
                    strict=True,
                )
            ):
                fused = "HardSwish"
            else:
                continue
            layer = build_layer(LAYER_TYPES[fused], {}, None)
            result[index] = Node(node.name, layer, (x,), node.outputs)
            dropped.add(source)
            break
    return _kept(result, scopes, dropped)


def _merge_shuffles(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """Reshape to [N, g, C/g, H, W], Transpose(0, 2, 1, 3, 4), Reshape to [N, C, H, W] is one
    ChannelShuffle of g groups (ShuffleNet; torch's and netspec's own lowering)."""
    readers = Counter(t for n in nodes for t in n.inputs)
    returned = {alias.get(o.name) for o in graph.output}
    producers = {n.outputs[0]: i for i, n in enumerate(nodes) if n.outputs}

    def single(tensor: str) -> int | None:
        source = producers.get(tensor)
        return source if source is not None and readers[tensor] == 1 and tensor not in returned else None

    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "Reshape" or len(node.layer.params.shape) != 4:
            continue
        transpose = single(node.inputs[0])
        if transpose is None or nodes[transpose].type != "Permute":
            continue
        if nodes[transpose].layer.params.order != (0, 2, 1, 3, 4):
            continue
        grid = single(nodes[transpose].inputs[0])
        if grid is None or nodes[grid].type != "Reshape" or len(nodes[grid].layer.params.shape) != 5:
            continue
        groups = nodes[grid].layer.params.shape[1]
        layer = build_layer(LAYER_TYPES["ChannelShuffle"], {"group": RawParam(groups)}, None)
        result[index] = Node(node.name, layer, nodes[grid].inputs, node.outputs)
        dropped.update((grid, transpose))
    return _kept(result, scopes, dropped)


class _Chains:
    """Who produces and who reads each tensor of the planned layers, for the structural merges
    below: a tensor is ``single`` when one layer reads it and it is not a graph output."""

    def __init__(self, nodes: Sequence[Node], alias: Mapping[str, str], graph: onnx.GraphProto) -> None:
        self.nodes = nodes
        self.readers = Counter(t for n in nodes for t in n.inputs)
        self.returned = {alias.get(o.name) for o in graph.output}
        self.producers = {n.outputs[0]: i for i, n in enumerate(nodes) if len(n.outputs) == 1}
        self.consumers: dict[str, int] = {}
        for index, node in enumerate(nodes):
            for tensor in node.inputs:
                self.consumers[tensor] = index

    def single(self, tensor: str, type_name: str) -> int | None:
        """The layer of ``type_name`` producing ``tensor``, if ``tensor`` has one reader."""
        source = self.producers.get(tensor)
        if source is None or self.readers[tensor] != 1 or tensor in self.returned:
            return None
        return source if self.nodes[source].type == type_name else None

    def reader(self, tensor: str, type_name: str) -> int | None:
        """The only layer reading ``tensor``, if it is of ``type_name``."""
        if self.readers[tensor] != 1 or tensor in self.returned or tensor not in self.consumers:
            return None
        index = self.consumers[tensor]
        return index if self.nodes[index].type == type_name else None


def _is_power(node: Node, scale: float = 1.0, shift: float = 0.0) -> bool:
    p = node.layer.params
    return (
        node.type == "Power"
        and p.power == 1
        and math.isclose(p.scale, scale, rel_tol=1e-6)
        and math.isclose(p.shift, shift, rel_tol=1e-6, abs_tol=1e-12)
    )


def _merge_gelus(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """x · 0.5 · (1 + erf(x / √2)) is one GELU: torch's export of GELU below opset 20 (Div, Erf,
    Add, Mul, Mul, read as Power, OnnxOp Erf, Power, Eltwise PROD, Power) and netspec's own
    lowering; the halving may come first (0.5·x times the rest)."""
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "Eltwise" or node.layer.params.operation != "PROD" or len(node.inputs) != 2:
            continue
        if node.layer.params.coeff is not None or index in dropped:
            continue
        for other, gate in (node.inputs, node.inputs[::-1]):
            shifted = chains.single(gate, "Power")
            if shifted is None or not _is_power(nodes[shifted], shift=1.0):
                continue
            erf = chains.single(nodes[shifted].inputs[0], "OnnxOp")
            if erf is None or nodes[erf].layer.params.op_type != "Erf" or len(nodes[erf].inputs) != 1:
                continue
            inner = chains.single(nodes[erf].inputs[0], "Power")
            if inner is None or not _is_power(nodes[inner], scale=1 / math.sqrt(2.0)):
                continue
            x = nodes[inner].inputs[0]
            half = chains.single(other, "Power")
            if other == x:  # (x · (1 + erf)) · 0.5
                last = chains.reader(node.outputs[0], "Power")
                if last is None or not _is_power(nodes[last], scale=0.5) or last in dropped:
                    continue
                chain = {index, shifted, erf, inner}
            elif half is not None and _is_power(nodes[half], scale=0.5) and nodes[half].inputs == (x,):
                last, chain = index, {half, shifted, erf, inner}
            else:
                continue
            layer = build_layer(LAYER_TYPES["GELU"], {}, None)
            result[last] = Node(nodes[last].name, layer, (x,), nodes[last].outputs)
            dropped.update(chain)
            break
    return _kept(result, scopes, dropped)


def _merge_layer_norms(
    nodes: list[Node],
    scopes: list[tuple[str, str]],
    alias: Mapping[str, str],
    graph: onnx.GraphProto,
    weights: dict[str, WeightSource],
) -> tuple[list[Node], list[tuple[str, str]]]:
    """Transpose moving one axis last, LayerNormalization over the last axis, the inverse
    Transpose is one LayerNorm over that axis (ConvNeXt's LayerNorm2d over NCHW's channels, as
    torch and netspec export it). The LayerNorm's weights and scope move to the last node."""
    scopes = list(scopes)
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "LayerNorm" or node.layer.params.axis != -1:
            continue
        before = chains.single(node.inputs[0], "Permute")
        after = chains.reader(node.outputs[0], "Permute")
        if before is None or after is None:
            continue
        order = nodes[before].layer.params.order
        rank = len(order)
        axis = order[-1]
        if axis == rank - 1 or list(order) != [a for a in range(rank) if a != axis] + [axis]:
            continue
        if list(nodes[after].layer.params.order) != [int(a) for a in np.argsort(order)]:
            continue
        raw = {
            "axis": RawParam(axis),
            "eps": RawParam(node.layer.params.eps),
            "elementwise_affine": RawParam(node.layer.params.elementwise_affine),
        }
        layer = build_layer(LAYER_TYPES["LayerNorm"], raw, None)
        last = nodes[after].name
        result[after] = Node(last, layer, nodes[before].inputs, nodes[after].outputs)
        _move_weights(weights, node.name, last)
        scopes[after] = scopes[index]
        dropped.update((before, index))
    return _kept(result, scopes, dropped)


def _merge_transposed_matmuls(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """A MatMul whose second input is a Transpose of the last two axes read by it alone is a
    MatMul with ``transpose_b`` (attention's Q·Kᵀ)."""
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "MatMul" or node.layer.params.transpose_b:
            continue
        swap = chains.single(node.inputs[1], "Permute")
        if swap is None:
            continue
        order = nodes[swap].layer.params.order
        rank = len(order)
        if rank < 2 or list(order) != [*range(rank - 2), rank - 1, rank - 2]:
            continue
        layer = build_layer(LAYER_TYPES["MatMul"], {"transpose_b": RawParam(True)}, None)
        result[index] = Node(node.name, layer, (node.inputs[0], nodes[swap].inputs[0]), node.outputs)
        dropped.add(swap)
    return _kept(result, scopes, dropped)


def _merge_weighted_sums(
    nodes: list[Node], scopes: list[tuple[str, str]], alias: Mapping[str, str], graph: onnx.GraphProto
) -> tuple[list[Node], list[tuple[str, str]]]:
    """In netspec's own files, an Eltwise SUM whose terms are scaled by Power layers of its own
    scope is one Eltwise with ``coeff``: the emitter writes each coefficient other than 1 as a
    Mul by a constant before the Add (ResNet's stochastic depth, Inception-ResNet's residual
    scale)."""
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        if node.type != "Eltwise" or node.layer.params.operation != "SUM" or node.layer.params.coeff:
            continue
        terms: list[str] = []
        coefficients: list[float] = []
        scaled: set[int] = set()
        for tensor in node.inputs:
            source = chains.single(tensor, "Power")
            if (
                source is None
                or source in scaled
                or scopes[source][0] != scopes[index][0]
                or not _is_power(nodes[source], scale=nodes[source].layer.params.scale)
            ):
                terms.append(tensor)
                coefficients.append(1.0)
                continue
            terms.append(nodes[source].inputs[0])
            # The constant is a float32: its shortest decimal is the spec's (0.2, not 0.2000000029).
            coefficients.append(float(str(np.float32(nodes[source].layer.params.scale))))
            scaled.add(source)
        if not scaled:
            continue
        raw = {"operation": RawParam("SUM"), "coeff": RawParam(tuple(coefficients))}
        layer = build_layer(LAYER_TYPES["Eltwise"], raw, None)
        result[index] = Node(node.name, layer, tuple(terms), node.outputs)
        dropped.update(scaled)
    return _kept(result, scopes, dropped)


def _merge_layer_scales(
    nodes: list[Node],
    scopes: list[tuple[str, str]],
    alias: Mapping[str, str],
    graph: onnx.GraphProto,
    weights: dict[str, WeightSource],
) -> tuple[list[Node], list[tuple[str, str]]]:
    """In netspec's own files, a Scale by an array stored beside its layer (``features.1.0.
    layer_scale`` for the layer ``features.1.0.scale``, not its own ``.weight``) is a
    LayerScale; with the Add of its own scope that follows (the residual, LayerScale's second
    input), the two are one LayerScale of both inputs (ConvNeXt's ``layer_scale * block(x) + x``)."""
    scopes = list(scopes)
    chains = _Chains(nodes, alias, graph)
    dropped: set[int] = set()
    result = list(nodes)
    for index, node in enumerate(nodes):
        source = weights.get(f"{node.name}.weight")
        if node.type != "Scale" or len(node.inputs) != 1 or source is None:
            continue
        layer_name = scopes[index][0]
        parent = layer_name.rpartition(".")[0]
        prefix = f"{parent}." if parent else ""
        initializer = source.initializer
        array = initializer[len(prefix) :]
        if (
            not initializer.startswith(prefix)
            or not array
            or initializer.startswith(f"{layer_name}.")
            or node.layer.params.num_axes != 1
        ):
            continue
        inputs: tuple[str, ...] = node.inputs
        target = index
        residual = chains.reader(node.outputs[0], "Eltwise")
        if residual is not None:
            add = nodes[residual]
            p = add.layer.params
            if (
                p.operation == "SUM"
                and p.coeff is None
                and len(add.inputs) == 2
                and add.inputs[0] == node.outputs[0]
                and scopes[residual][0] == layer_name
            ):
                inputs, target = (node.inputs[0], add.inputs[1]), residual
        raw = {"axis": RawParam(node.layer.params.axis), "array": RawParam(array)}
        layer = build_layer(LAYER_TYPES["LayerScale"], raw, None)
        kept = nodes[target]
        result[target] = Node(kept.name, layer, inputs, kept.outputs)
        weights[f"{kept.name}.{array}"] = weights.pop(f"{node.name}.weight")
        if target != index:
            scopes[target] = scopes[index]
            dropped.add(index)
    return _kept(result, scopes, dropped)


def _prefixes(scope: str) -> list[str]:
    parts = scope.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _renamed_tensor(tensor: str, names: Mapping[str, str]) -> str:
    head, dot, tail = tensor.partition(".")
    return names[head] + dot + tail


def _renamed(node: Node, names: Mapping[str, str]) -> Node:
    return Node(
        names[node.name],
        node.layer,
        tuple(_renamed_tensor(t, names) for t in node.inputs),
        tuple(_renamed_tensor(t, names) for t in node.outputs),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _spec_dims(dims: Sequence[Dim]) -> tuple[Any, ...]:
    from netspec.expr import Symbol

    return tuple(Symbol(d) if isinstance(d, str) else d for d in dims)


# ---------------------------------------------------------------- operator mappers

Mapper = Callable[[_Reader, "onnx.NodeProto", dict[str, Any]], list[_Planned]]
_MAPPERS: dict[str, Mapper] = {}


def _maps(*op_types: str) -> Callable[[Mapper], Mapper]:
    def decorate(function: Mapper) -> Mapper:
        for op_type in op_types:
            _MAPPERS[op_type] = function
        return function

    return decorate


def _single(type_name: str, node: onnx.NodeProto, **params: Any) -> list[_Planned]:
    return [_Planned(type_name, params, (node.input[0],))]


def _spatial_pads(
    reader: _Reader,
    node: onnx.NodeProto,
    attrs: Mapping[str, Any],
    kernel: Sequence[int],
    dilation: Sequence[int] = (1, 1),
) -> tuple[int, int, int, int]:
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", "VALID"):
        pads = list(attrs.get("pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else [0, 0, 0, 0]
        if len(pads) != 4:
            raise _Unsupported
        return (pads[0], pads[1], pads[2], pads[3])
    x = reader.type_of(node, node.input[0])
    strides = attrs.get("strides", [1, 1])
    result = []
    for axis in range(2):
        size = x.dims[2 + axis]
        if not isinstance(size, int):
            raise _Unsupported
        out = -(-size // strides[axis])
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        total = max((out - 1) * strides[axis] + extent - size, 0)
        small, large = total // 2, total - total // 2
        result.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return (result[0][0], result[1][0], result[0][1], result[1][1])


@_maps("Conv", "ConvTranspose")
def _conv(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    w = reader.weight(node.input[1])
    if len(w) != 4:
        raise _Unsupported
    kernel = tuple(attrs.get("kernel_shape", w[2:]))
    dilation = tuple(attrs.get("dilations", [1, 1]))
    group = attrs.get("group", 1)
    transposed = node.op_type == "ConvTranspose"
    if transposed and ("output_shape" in attrs or attrs.get("auto_pad", "NOTSET") != "NOTSET"):
        raise _Unsupported
    bias = len(node.input) > 2 and bool(node.input[2])
    weights = {"weight": WeightSource(node.input[1])}
    if bias:
        reader.weight(node.input[2])
        weights["bias"] = WeightSource(node.input[2])
    params: dict[str, Any] = {
        "num_output": w[1] * group if transposed else w[0],
        "kernel_size": kernel,
        "stride": tuple(attrs.get("strides", [1, 1])),
        "pad": _with_absorbed(reader, node, _spatial_pads(reader, node, attrs, kernel, dilation)),
        "dilation": dilation,
        "group": group,
        "bias_term": bias,
    }
    if transposed:
        params["output_padding"] = tuple(attrs.get("output_padding", [0, 0]))
    return [_Planned("Deconvolution" if transposed else "Convolution", params, (node.input[0],), weights)]


def _with_absorbed(
    reader: _Reader, node: onnx.NodeProto, pads: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    extra = reader.absorbed_pads.get(node.input[0], (0, 0, 0, 0))
    return tuple(a + b for a, b in zip(pads, extra, strict=True))  # type: ignore[return-value]  # four pairs make four


@_maps("Gemm")
def _gemm(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    if (
        x.rank != 2
        or attrs.get("transA", 0)
        or attrs.get("alpha", 1.0) != 1.0
        or attrs.get("beta", 1.0) != 1.0
    ):
        raise _Unsupported
    b = reader.weight(node.input[1])
    trans_b = attrs.get("transB", 0)
    weights = {"weight": reader.matrix(node.input[1], not trans_b)}
    outputs = b[0] if trans_b else b[1]
    bias = len(node.input) > 2 and bool(node.input[2])
    if bias:
        c = reader.weight(node.input[2])
        if math.prod(c) != outputs:
            raise _Unsupported
        weights["bias"] = WeightSource(node.input[2])
    return [_Planned("InnerProduct", {"num_output": outputs, "bias_term": bias}, (node.input[0],), weights)]


@_maps("MatMul")
def _matmul(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """By a 2-D initializer: an InnerProduct over the last axis; of two activations (attention's
    QKᵀ and AV): a MatMul."""
    x = reader.type_of(node, node.input[0])
    if reader.is_dynamic(node.input[0]) and reader.is_dynamic(node.input[1]):
        if x.rank < 2 or reader.type_of(node, node.input[1]).rank < 2:
            raise _Unsupported
        return [_Planned("MatMul", {}, (node.input[0], node.input[1]))]
    b = reader.weight(node.input[1])
    if len(b) != 2 or x.rank < 2:
        raise _Unsupported
    params = {"num_output": b[1], "bias_term": False, "axis": x.rank - 1}
    return [
        _Planned("InnerProduct", params, (node.input[0],), {"weight": reader.matrix(node.input[1], True)})
    ]


@_maps("BatchNormalization")
def _batchnorm(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise _Unsupported
    names = ("weight", "bias", "running_mean", "running_var")
    for tensor in node.input[1:5]:
        reader.weight(tensor)
    weights = {n: WeightSource(t) for n, t in zip(names, node.input[1:5], strict=True)}
    return [_Planned("BatchNorm", {"eps": attrs.get("epsilon", 1e-5)}, (node.input[0],), weights)]


@_maps("MaxPool", "AveragePool")
def _pool(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    kernel = tuple(attrs["kernel_shape"])
    outputs = len([o for o in node.output if o])
    if len(kernel) != 2 or (outputs > 1 and not _unpooled_indices(reader, node, attrs)):
        raise _Unsupported
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise _Unsupported
    pads = _spatial_pads(reader, node, attrs, kernel)
    average = node.op_type == "AveragePool"
    # Padding out of the average (TF's SAME pooling, count_include_pad 0) is Pooling's
    # count_include_pad: false; the default counts it, as Caffe and torch do.
    padding_counted = bool(attrs.get("count_include_pad", 0)) or not any(pads)
    x, y = reader.type_of(node, node.input[0]), reader.type_of(node, node.output[0])
    if average and not any(pads) and kernel == tuple(x.dims[2:]) and y.dims[2:] == (1, 1):
        return _single("AdaptiveAvgPool", node, output_size=(1, 1))  # netspec's own AdaptiveAvgPool(1)
    params: dict[str, Any] = {
        "pool": "AVE" if average else "MAX",
        "kernel_size": kernel,
        "stride": tuple(attrs.get("strides", [1, 1])),
        "pad": pads,
        "round_mode": "CEIL" if attrs.get("ceil_mode", 0) else "FLOOR",
    }
    if average and not padding_counted:
        params["count_include_pad"] = False
    if outputs > 1:
        reader.masks.add(node.output[1])
    return [_Planned("Pooling", params, (node.input[0],), outputs=outputs)]


def _unpooled_indices(reader: _Reader, node: onnx.NodeProto, attrs: Mapping[str, Any]) -> bool:
    """MaxPool's Indices read only by MaxUnpool (SegNet's encoder and decoder): Pooling's mask
    output and Upsample by it compute the same, though ONNX counts the indices over the whole
    tensor and netspec's mask within each plane."""
    indices = node.output[1]
    readers = reader.readers.get(indices, [])
    return (
        node.op_type == "MaxPool"
        and len(node.output) == 2
        and not attrs.get("storage_order", 0)
        and indices not in reader.returned
        and bool(readers)
        and all(r.op_type == "MaxUnpool" and list(r.input).index(indices) == 1 for r in readers)
    )


@_maps("MaxUnpool")
def _max_unpool(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """MaxUnpool by the Indices of a MaxPool (read as Pooling with a mask) as Upsample by that
    mask, to the output size ONNX gives."""
    if node.input[1] not in reader.masks or not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    x, y = reader.type_of(node, node.input[0]), reader.type_of(node, node.input[1])
    out_hw: tuple[Dim, ...]
    if len(node.input) > 2 and node.input[2]:
        size = reader.const(node.input[2])  # output_shape: ONNX inference leaves it to the value
        if size is None or size.size != 4:
            raise _Unsupported
        out_hw = tuple(int(d) for d in size.ravel()[2:])
    else:
        out_hw = tuple(reader.type_of(node, node.output[0]).dims[2:])
    if x.rank != 4 or x.dims != y.dims or not all(isinstance(d, int) for d in (*x.dims[2:], *out_hw)):
        raise _Unsupported
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    params: dict[str, Any] = (
        {"scale": strides[0]} if strides[0] == strides[1] else {"scale_h": strides[0], "scale_w": strides[1]}
    )
    if out_hw != (x.dims[2] * strides[0], x.dims[3] * strides[1]):
        params.update(upsample_h=out_hw[0], upsample_w=out_hw[1])
    return [_Planned("Upsample", params, (node.input[0], node.input[1]))]


@_maps("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if reader.type_of(node, node.input[0]).rank != 4:
        raise _Unsupported
    # NOTE: torch's AdaptiveAvgPool2d(1) exports as GlobalAveragePool; netspec counts it as
    # AdaptiveAvgPool (a divide per output on top of the sums) as the zoo's specs do.
    if node.op_type == "GlobalAveragePool" and reader.own_file and marked_layer_type(node) == "Pooling":
        return _single("Pooling", node, pool="AVE", global_pooling=True)
    if node.op_type == "GlobalAveragePool":
        return _single("AdaptiveAvgPool", node, output_size=(1, 1))
    return _single("Pooling", node, pool="MAX", global_pooling=True)


@_maps("ReduceMean", "ReduceMax")
def _reduce(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1:
        value = reader.const(node.input[1])
        axes = None if value is None else value.tolist()
    if x.rank != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
        raise _Unsupported
    if node.op_type == "ReduceMean":
        plans = [_Planned("AdaptiveAvgPool", {"output_size": (1, 1)}, (node.input[0],))]
    else:
        plans = [_Planned("Pooling", {"pool": "MAX", "global_pooling": True}, (node.input[0],))]
    if not attrs.get("keepdims", 1):
        plans.append(_Planned("Flatten", {}, (f"{node.output[0]}#0",)))
    return plans


@_maps("LRN")
def _lrn(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single(
        "LRN",
        node,
        local_size=attrs["size"],
        alpha=attrs.get("alpha", 1e-4),
        beta=attrs.get("beta", 0.75),
        k=attrs.get("bias", 1.0),
    )


_ACTIVATIONS = {
    "Relu": "ReLU",
    "Sigmoid": "Sigmoid",
    "HardSwish": "HardSwish",
    "Tanh": "TanH",
    "Abs": "AbsVal",
    "Softplus": "BNLL",
}


@_maps(*_ACTIVATIONS)
def _activation(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single(_ACTIVATIONS[node.op_type], node)


@_maps("Exp", "Log")
def _exp_log(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single(node.op_type, node)


@_maps("LeakyRelu")
def _leaky(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single("ReLU", node, negative_slope=attrs.get("alpha", 0.01))


@_maps("Elu")
def _elu(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single("ELU", node, alpha=attrs.get("alpha", 1.0))


@_maps("HardSigmoid")
def _hard_sigmoid(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    return _single("HardSigmoid", node, alpha=attrs.get("alpha", 0.2), beta=attrs.get("beta", 0.5))


@_maps("PRelu")
def _prelu(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    slope = reader.weight(node.input[1])
    size = math.prod(slope)
    if size != 1 and (x.rank < 2 or size != x.dims[1] or [d for d in slope if d != 1] != [size]):
        raise _Unsupported
    plan = _Planned(
        "PReLU", {"channel_shared": size == 1}, (node.input[0],), {"weight": WeightSource(node.input[1])}
    )
    return [plan]


@_maps("Clip")
def _clip(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    low, high = attrs.get("min"), attrs.get("max")
    for index in (1, 2):
        if len(node.input) > index and node.input[index]:
            value = reader.const(node.input[index])
            if value is None:
                raise _Unsupported
            if index == 1:
                low = float(value.ravel()[0])
            else:
                high = float(value.ravel()[0])
    if low == 0 and high == 6:
        return _single("ReLU6", node)
    if low == 0 and high is None:
        return _single("ReLU", node)
    raise _Unsupported


@_maps("Softmax")
def _softmax(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    axis = attrs.get("axis", -1 if reader.opset >= 13 else 1) % x.rank
    if reader.opset < 13 and axis != x.rank - 1:
        raise _Unsupported  # the old Softmax normalises over all axes from axis on
    return _single("Softmax", node, axis=axis)


@_maps("LayerNormalization")
def _layer_norm(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """LayerNormalization over the last axis, with a scale and a bias of its size (torch's
    LayerNorm(C)); over several axes it has no netspec layer."""
    x = reader.type_of(node, node.input[0])
    if not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    if attrs.get("axis", -1) % x.rank != x.rank - 1 or len([o for o in node.output if o]) > 1:
        raise _Unsupported
    if len(node.input) < 3 or not node.input[2]:
        raise _Unsupported
    features = x.dims[-1]
    for tensor in node.input[1:3]:
        shape = reader.weight(tensor)
        if math.prod(shape) != features or [d for d in shape if d != 1] not in ([features], []):
            raise _Unsupported
    weights = {"weight": WeightSource(node.input[1]), "bias": WeightSource(node.input[2])}
    # ONNX float attributes are float32: the shortest decimal that is that float32 (1e-05).
    params = {"axis": -1, "eps": float(str(np.float32(attrs.get("epsilon", 1e-5))))}
    return [_Planned("LayerNorm", params, (node.input[0],), weights)]


@_maps("Gelu")
def _gelu(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    return _single("GELU", node, approximate=attrs.get("approximate", "none"))


@_maps("Transpose")
def _transpose(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """Transpose of an activation; of a stored array (netspec's own emission of a weight used
    transposed) it stays an operator of its own."""
    if not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    x = reader.type_of(node, node.input[0])
    order = tuple(int(a) for a in attrs.get("perm", range(x.rank - 1, -1, -1)))
    return _single("Permute", node, order=order)


@_maps("Pow", "Sqrt")
def _power(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if node.op_type == "Sqrt":
        return _single("Power", node, power=0.5)
    exponent = reader.const(node.input[1])
    if exponent is None or exponent.size != 1 or not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    return _single("Power", node, power=float(exponent.ravel()[0]))


@_maps("Add", "Sub", "Mul", "Div", "Sum", "Max")
def _elementwise(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    op = node.op_type
    inputs = list(node.input)
    dynamic = [t for t in inputs if reader.is_dynamic(t)]
    if len(dynamic) == len(inputs):
        types = [reader.type_of(node, t) for t in inputs]
        if all(t.dims == types[0].dims for t in types):
            if op in ("Add", "Sum"):
                return [_Planned("Eltwise", {"operation": "SUM"}, tuple(inputs))]
            if op == "Sub":
                return [_Planned("Eltwise", {"operation": "SUM", "coeff": (1.0, -1.0)}, tuple(inputs))]
            if op == "Mul":
                return [_Planned("Eltwise", {"operation": "PROD"}, tuple(inputs))]
            if op == "Max":
                return [_Planned("Eltwise", {"operation": "MAX"}, tuple(inputs))]
            raise _Unsupported
        if op in ("Add", "Mul") and len(inputs) == 2:
            big, small = sorted(inputs, key=lambda t: -math.prod(reader._static(node, t)))
            x, s = reader.type_of(node, big), reader.type_of(node, small)
            if x.rank == s.rank and s.dims[:2] == x.dims[:2] and all(d == 1 for d in s.dims[2:]):
                return [_Planned("Scale" if op == "Mul" else "Bias", {"axis": 0}, (big, small))]
        raise _Unsupported
    if len(inputs) != 2 or len(dynamic) != 1 or op in ("Sum", "Max"):
        raise _Unsupported
    x_name = dynamic[0]
    other = inputs[1] if inputs[0] == x_name else inputs[0]
    reversed_order = inputs[0] != x_name
    x = reader.type_of(node, x_name)
    shape = (
        reader.initializers[other][0]
        if other in reader.initializers
        else tuple(reader.constants[other].shape)
    )
    value = reader.const(other)
    if math.prod(shape) == 1:
        if value is None:
            raise _Unsupported
        c = float(value.ravel()[0])
        if op == "Add":
            return _single_input("Power", x_name, shift=c)
        if op == "Mul":
            return _single_input("Power", x_name, scale=c)
        if op == "Sub":
            return (
                _single_input("Power", x_name, scale=-1.0, shift=c)
                if reversed_order
                else _single_input("Power", x_name, shift=-c)
            )
        if op == "Div" and not reversed_order and c != 0:
            return _single_input("Power", x_name, scale=1.0 / c)
        raise _Unsupported
    if reversed_order and op in ("Sub", "Div"):
        raise _Unsupported
    if other not in reader.initializers:
        raise _Unsupported  # a computed constant with no initializer to store
    dims = list(shape)
    if len(dims) > x.rank:
        raise _Unsupported
    while dims and dims[0] == 1:
        dims.pop(0)
    trailing = 0
    while dims and dims[-1] == 1:
        dims.pop()
        trailing += 1
    axis = x.rank - len(dims) - trailing
    if axis < 1 or list(x.dims[axis : axis + len(dims)]) != dims:
        raise _Unsupported
    transform = {"Sub": "negate", "Div": "reciprocal"}.get(op, "")
    if op in ("Add", "Sub"):
        weights = {"bias": WeightSource(other, transform)}
        return [_Planned("Bias", {"axis": axis, "num_axes": len(dims)}, (x_name,), weights)]
    weights = {"weight": WeightSource(other, transform)}
    return [_Planned("Scale", {"axis": axis, "num_axes": len(dims)}, (x_name,), weights)]


def _single_input(type_name: str, tensor: str, **params: Any) -> list[_Planned]:
    return [_Planned(type_name, params, (tensor,))]


@_maps("Pad")
def _pad(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """A constant Pad (one the convolutions after it do not absorb) as a Pad layer over its
    first to its last padded axis."""
    if attrs.get("mode", "constant") != "constant" or (len(node.input) > 3 and node.input[3]):
        raise _Unsupported
    if "pads" in attrs:
        pads, value = [int(v) for v in attrs["pads"]], float(attrs.get("value", 0.0))
    else:
        known = reader.const(node.input[1]) if len(node.input) > 1 else None
        fill = reader.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
        if known is None or fill is None:
            raise _Unsupported
        pads, value = [int(v) for v in known.ravel()], float(fill.ravel()[0])
    rank = len(pads) // 2
    pairs = list(zip(pads[:rank], pads[rank:], strict=True))
    padded = [axis for axis, pair in enumerate(pairs) if pair != (0, 0)]
    if not padded or min(pads) < 0:
        raise _Unsupported
    first, last = padded[0], padded[-1]
    flat = [width for pair in pairs[first : last + 1] for width in pair]
    return [_Planned("Pad", {"axis": first, "pad": tuple(flat), "value": value}, (node.input[0],))]


@_maps("Concat")
def _concat(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if not all(reader.is_dynamic(t) for t in node.input):
        raise _Unsupported
    rank = reader.type_of(node, node.input[0]).rank
    return [_Planned("Concat", {"axis": attrs["axis"] % rank}, tuple(node.input))]


@_maps("Split")
def _split(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    axis = attrs.get("axis", 0) % x.rank
    sizes = [reader.type_of(node, t).dims[axis] for t in node.output]
    if not all(isinstance(s, int) for s in sizes):
        raise _Unsupported
    points = tuple(int(sum(sizes[: i + 1])) for i in range(len(sizes) - 1))
    return [_Planned("Slice", {"axis": axis, "slice_point": points}, (node.input[0],), outputs=len(sizes))]


@_maps("Gather")
def _gather(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """One index of an activation along an axis after the batch (a scalar index: the axis
    goes) as Take: ViT's class token, ``x[:, 0]``."""
    index = reader.const(node.input[1])
    axis = attrs.get("axis", 0)
    if not reader.is_dynamic(node.input[0]) or index is None or index.ndim != 0:
        raise _Unsupported
    if axis % reader.type_of(node, node.input[0]).rank == 0:
        raise _Unsupported
    return _single("Take", node, axis=axis, index=int(index))


@_maps("Slice")
def _slice(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """A Slice of an activation by constant bounds: the Crop netspec's own file wrote it for
    (see ``_crop_of``), else a StridedSlice. Computed bounds, a symbolic sliced axis and an
    empty slice stay an OnnxOp."""
    if not reader.is_dynamic(node.input[0]):
        raise _Unsupported
    x = reader.type_of(node, node.input[0])
    starts, ends, axes, steps = _slice_bounds(reader, node, attrs, x)
    crop = _crop_of(reader, node, x, starts, ends, axes)
    if crop is not None:
        return [crop]
    params: dict[str, Any] = {"starts": tuple(starts), "ends": tuple(ends), "axes": tuple(axes)}
    if any(step != 1 for step in steps):
        params["steps"] = tuple(steps)
    return [_Planned("StridedSlice", params, (node.input[0],))]


def _slice_bounds(
    reader: _Reader, node: onnx.NodeProto, attrs: Mapping[str, Any], x: TensorType
) -> tuple[list[int], list[int], list[int], list[int]]:
    """A Slice's constant starts, ends, axes and steps (inputs, or before opset 10 attributes),
    each bound past its axis clamped to it: the INT64 extremes torch writes for "to the end"
    have no .net spelling, and Python's slicing (StridedSlice's) clamps them the same way."""
    if "starts" in attrs:
        raw = [attrs["starts"], attrs["ends"], attrs.get("axes")]
    else:
        raw = [reader.const(t) if t else None for t in node.input[1:5]]
        if any(t and value is None for t, value in zip(node.input[1:5], raw, strict=False)):
            raise _Unsupported  # computed bounds
    starts, ends = ([int(v) for v in np.ravel(raw[i])] for i in (0, 1))
    axes = (
        [int(v) for v in np.ravel(raw[2])] if len(raw) > 2 and raw[2] is not None else [*range(len(starts))]
    )
    steps = [int(v) for v in np.ravel(raw[3])] if len(raw) > 3 and raw[3] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise _Unsupported
    sizes: list[int] = []
    for axis in axes:
        size = x.dims[axis % x.rank] if -x.rank <= axis < x.rank else None
        if not isinstance(size, int):
            raise _Unsupported
        sizes.append(size)
    starts = [min(max(v, -size - 1), size) for v, size in zip(starts, sizes, strict=True)]
    ends = [min(max(v, -size - 1), size) for v, size in zip(ends, sizes, strict=True)]
    bounds = zip(starts, ends, steps, sizes, strict=True)
    if any(not range(*slice(start, end, step).indices(size)) for start, end, step, size in bounds):
        raise _Unsupported  # an empty tensor
    return starts, ends, axes, steps


def _crop_of(
    reader: _Reader, node: onnx.NodeProto, x: TensorType, starts: list[int], ends: list[int], axes: list[int]
) -> _Planned | None:
    """The Crop that netspec's own emission wrote as this Slice, if it is one: a netspec file's
    Slice by the layer's ``starts``, ``ends`` and ``axes`` constants (Crop's emit: increasing
    axes, each cut at its offset to a smaller size, no steps), every axis from the first cut
    one on either cut or kept whole. Its second input, which only lends its shape, is the
    latest tensor computed before it with that shape from the first cut axis on; with none, no
    Crop.

    Other files' Slices stay StridedSlices: nothing in them says the bounds follow another
    tensor, and a Crop would add a dependency the model does not have.
    """
    constants = [f"{node.name}/{suffix}" for suffix in ("starts", "ends", "axes")]
    if reader.model.producer_name != "netspec" or list(node.input[1:]) != constants:
        return None
    if axes != sorted(set(axes)) or axes[0] < 0:
        return None
    bounds = list(zip(axes, starts, ends, strict=True))
    # Crop writes offsets and ends from the axis start (clamped, not empty: _slice_bounds), and
    # only for the axes it cuts.
    if any(start < 0 or end < 0 or (start, end) == (0, x.dims[axis]) for axis, start, end in bounds):
        return None
    cut = {axis: (start, end - start) for axis, start, end in bounds}
    first = axes[0]
    wanted = [cut[axis][1] if axis in cut else x.dims[axis] for axis in range(first, x.rank)]
    reference = next(
        (
            tensor
            for tensor in reversed(list(reader.alias))
            if tensor != node.input[0]
            and (found := reader.types.get(tensor)) is not None
            and found.rank == x.rank
            and list(found.dims[first:]) == wanted
        ),
        None,
    )
    if reference is None:
        return None
    offsets = [cut[axis][0] if axis in cut else 0 for axis in range(first, x.rank)]
    params: dict[str, Any] = {"axis": first}
    if any(offsets):
        params["offset"] = (offsets[0],) if len(set(offsets)) == 1 else tuple(offsets)
    return _Planned("Crop", params, (node.input[0], reference))


@_maps("Flatten")
def _flatten(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    if attrs.get("axis", 1) != 1:
        raise _Unsupported
    return _single("Flatten", node)


@_maps("Reshape", "Squeeze", "Unsqueeze")
def _reshape(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    if node.op_type == "Reshape":
        target = reader.const(node.input[1])
        shape = [int(v) for v in target.ravel()] if target is not None else []
        if target is None or (attrs.get("allowzero", 0) and 0 in shape):
            raise _Unsupported
        if (
            shape
            and x.dims[0] == BATCH_SYMBOL
            and (shape[0] == _BATCH_SENTINEL or shape[0] in reader.fixed_batch.values())
        ):
            shape[0] = 0
        elif (
            shape
            and shape[0] == -1
            and x.dims[0] == BATCH_SYMBOL
            and all(isinstance(d, int) for d in x.dims[1:])
            and all(v > 0 for v in shape[1:])
            and math.prod(shape[1:]) == math.prod(x.dims[1:])
        ):
            shape[0] = 0  # -1 that is the batch: netspec's Reshape copies it
    else:
        y = reader.type_of(node, node.output[0])
        if any(isinstance(d, str) for d in y.dims[1:]):
            raise _Unsupported
        shape = [0 if i == 0 and y.dims[0] == x.dims[0] else int(d) for i, d in enumerate(y.dims)]
    if _BATCH_SENTINEL in shape or any(v > _BATCH_SENTINEL for v in shape):
        raise error(
            f"{reader.path}: node {_node_label(node)}: its target shape depends on the batch in a way "
            "netspec cannot fold",
            hint="export the model with a fixed batch size",
        )
    rest = (
        math.prod(d for d in x.dims[1:] if isinstance(d, int))
        if x.is_static or x.dims[0] == BATCH_SYMBOL
        else None
    )
    if x.rank > 2 and len(shape) == 2 and shape[0] == 0 and shape[1] in (-1, rest):
        return _single("Flatten", node)
    return _single("Reshape", node, shape=tuple(shape))


@_maps("Resize", "Upsample")
def _resize(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    x = reader.type_of(node, node.input[0])
    y = reader.type_of(node, node.output[0])
    if x.rank != 4 or not all(isinstance(d, int) for d in (*x.dims[2:], *y.dims[2:])):
        raise _Unsupported
    mode = attrs.get("mode", "nearest")
    transform = attrs.get(
        "coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric"
    )
    if node.op_type == "Upsample":
        transform = "asymmetric"
    if mode == "nearest":
        if transform != "asymmetric" or (
            attrs.get("nearest_mode", "round_prefer_floor") != "floor" and node.op_type == "Resize"
        ):
            raise _Unsupported
        params: dict[str, Any] = {"mode": "NEAREST"}
    elif mode in ("linear", "bilinear"):
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise _Unsupported
        params = {"mode": "BILINEAR", "align_corners": transform == "align_corners"}
    else:
        raise _Unsupported
    h, w = x.dims[2], x.dims[3]
    oh, ow = y.dims[2], y.dims[3]
    if not (isinstance(h, int) and isinstance(w, int) and isinstance(oh, int) and isinstance(ow, int)):
        raise _Unsupported  # a symbolic spatial size: no fixed scale to read
    if oh % h == 0 and ow % w == 0:
        params["scale"] = (oh // h, ow // w)
    else:
        params["size"] = (oh, ow)
    return _single("Resize", node, **params)


@_maps("GridSample")
def _grid_sample(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    mode = {"bilinear": "BILINEAR", "linear": "BILINEAR", "nearest": "NEAREST"}.get(
        attrs.get("mode", "bilinear")
    )
    padding = {"zeros": "ZEROS", "border": "BORDER"}.get(attrs.get("padding_mode", "zeros"))
    if mode is None or padding is None:
        raise _Unsupported
    params = {"mode": mode, "padding_mode": padding, "align_corners": bool(attrs.get("align_corners", 0))}
    return [_Planned("GridSample", params, (node.input[0], node.input[1]))]


@_maps("MaxRoiPool")
def _roi_pool(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    pooled = attrs["pooled_shape"]
    params = {"pooled_h": pooled[0], "pooled_w": pooled[1], "spatial_scale": attrs.get("spatial_scale", 1.0)}
    return [_Planned("ROIPooling", params, (node.input[0], node.input[1]))]


def _roi_align_params(node: onnx.NodeProto, opset: int) -> dict[str, Any] | None:
    """ROIAlign's parameters for an averaging RoiAlign node (None for max pooling)."""
    attrs = _attributes(node)
    if attrs.get("mode", "avg") != "avg":
        return None
    # Before opset 16 RoiAlign had no half-pixel offset (output_half_pixel, Detectron's).
    transform = attrs.get(
        "coordinate_transformation_mode", "half_pixel" if opset >= 16 else "output_half_pixel"
    )
    return {
        "pooled_h": attrs.get("output_height", 1),
        "pooled_w": attrs.get("output_width", 1),
        "spatial_scale": attrs.get("spatial_scale", 1.0),
        "sampling_ratio": attrs.get("sampling_ratio", 0),
        "aligned": transform == "half_pixel",
    }


@_maps("RoiAlign")
def _roi_align(reader: _Reader, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[_Planned]:
    """RoiAlign of boxes and batch indices cut from one [R, 5] tensor (see _find_roi_sources)
    as ROIAlign of that tensor."""
    source = reader.roi_sources.get(node.output[0])
    params = _roi_align_params(node, reader.opset)
    if source is None or params is None or not reader.is_dynamic(source):
        raise _Unsupported
    return [_Planned("ROIAlign", params, (node.input[0], source))]


# ---------------------------------------------------------------- netspec's own lowerings

Candidates = Callable[[_Reader, str, Sequence["onnx.NodeProto"], Sequence[TensorType]], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Lowering:
    """A netspec layer that the operator mappers read as other layers from netspec's own files
    (several ONNX nodes, or one that maps to another layer): ``candidates`` gives, from a run
    of nodes in one layer's scope, its constants and its input types, the parameters it may
    have been emitted with (none where the run cannot be this layer)."""

    type_name: str
    candidates: Candidates


_LOWERINGS: list[_Lowering] = []


def _lowers(type_name: str) -> Callable[[Candidates], Candidates]:
    def decorate(function: Candidates) -> Candidates:
        _LOWERINGS.append(_Lowering(type_name, function))
        return function

    return decorate


def _netspec_runs(nodes: Sequence[onnx.NodeProto]) -> list[tuple[str, list[onnx.NodeProto]]]:
    """The file's nodes in runs of one netspec layer each: netspec names a layer's first node
    after the layer and the others ``layer/Op_k`` (torch's names start with '/', dynamo's nodes
    carry their scopes apart)."""
    runs: list[tuple[str, list[onnx.NodeProto]]] = []
    for node in nodes:
        if (
            not node.name
            or node.name.startswith("/")
            or any(p.key == _TORCH_SCOPES for p in node.metadata_props)
        ):
            runs.append(("", [node]))
            continue
        scope = node.name.split("/")[0]
        if runs and runs[-1][0] == scope and "/" in node.name:
            runs[-1][1].append(node)
        else:
            runs.append((scope, [node]))
    return [(scope, run) for scope, run in runs if scope]


def _beside(scope: str, array: str) -> str | None:
    """The ``array`` parameter of a layer in ``scope`` whose array (beside the layer, in the
    enclosing scope: ViT's ``class_token``) is the initializer ``array``; None for one of the
    layer's own arrays."""
    if array.startswith(f"{scope}."):
        return None
    parent = scope.rpartition(".")[0]
    return array[len(parent) + 1 :] if parent and array.startswith(f"{parent}.") else array


def _stored(reader: _Reader, run: Sequence[onnx.NodeProto]) -> list[tuple[str, tuple[int, ...]]]:
    """The initializers a run reads that are not its own constants, with their shapes."""
    return [
        (t, reader.initializers[t][0])
        for n in run
        for t in n.input
        if t in reader.initializers and "/" not in t
    ]


def _shape_constant(reader: _Reader, scope: str, suffix: str, size: int) -> list[int] | None:
    value = reader.const(f"{scope}/{suffix}")
    return [int(v) for v in value.ravel()] if value is not None and value.size == size else None


@_lowers("MultiheadAttention")
def _attention_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """[N, L, 3, heads, d]: the split into heads gives the head count."""
    split = _shape_constant(reader, scope, "heads_shape", 5)
    if split is None or _shape_constant(reader, scope, "grid_shape", 6) is not None:
        return []
    return [{"num_heads": split[3], "bias": bias} for bias in (True, False)]


@_lowers("ShiftedWindowAttention")
def _window_attention_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """[N, rows, w, cols, w, C] gives the window, [N·windows, w², 3, heads, d] the heads, the
    first Slice of the roll (the last ``shift`` rows or columns) the shift."""
    grid = _shape_constant(reader, scope, "grid_shape", 6)
    split = _shape_constant(reader, scope, "heads_shape", 5)
    if grid is None or split is None:
        return []
    rolls = [_shape_constant(reader, scope, f"shifted_{axis}_a", 1) for axis in (1, 2)]
    shift = next((roll[0] for roll in rolls if roll is not None), 0)
    return [
        {"num_heads": split[3], "window_size": grid[2], "shift_size": shift, "qkv_bias": q, "proj_bias": p}
        for q in (True, False)
        for p in (True, False)
    ]


@_lowers("PatchMerge")
def _patch_merge_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    grid = _shape_constant(reader, scope, "grid_shape", 6)
    return [{}] if grid is not None and grid[2] == grid[4] == 2 else []


@_lowers("ClassToken")
def _class_token_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """The token array [1, tokens, D], beside the layer."""
    if run[-1].op_type != "Concat":
        return []
    return [
        {"tokens": shape[1], "array": array}
        for tensor, shape in _stored(reader, run)
        if len(shape) == 3 and shape[0] == 1 and (array := _beside(scope, tensor)) is not None
    ]


@_lowers("PositionEmbedding")
def _position_embedding_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """One Add of an array of one batch item's shape, beside the layer (ViT's
    ``encoder.pos_embedding``)."""
    if len(run) != 1 or run[0].op_type != "Add" or len(inputs) != 1:
        return []
    return [
        {"array": array}
        for tensor, shape in _stored(reader, run)
        if shape == (1, *inputs[0].dims[1:]) and (array := _beside(scope, tensor)) is not None
    ]


@_lowers("Flatten")
def _flatten_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """A Reshape merging axes after the first (Flatten from axis 1 to the end is ONNX's
    Flatten, which the mapper reads): the axes it may merge, given the output's rank."""
    if len(run) != 1 or run[0].op_type != "Reshape" or len(inputs) != 1:
        return []
    rank = inputs[0].rank
    output = reader.types.get(run[0].output[0])
    if output is None or not 2 <= output.rank < rank:
        return []
    merged = rank - output.rank
    return [
        {"axis": axis, "end_axis": -1 if axis + merged == rank - 1 else axis + merged}
        for axis in range(1, rank - merged)
    ]


@_lowers("InnerProduct")
def _token_linear_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """InnerProduct over the last axes of a tensor of rank > 2 (tokens, a channels-last map):
    rows by Flatten, one Gemm reading the [out, in] weight, a Reshape back (after a Reshape
    merging the feature axes when there are several; netspec.layers.linear.emit_linear). The
    width from the weight, the bias from the Gemm; any axis after the batch."""
    gemms = [n for n in run if n.op_type == "Gemm"]
    if len(gemms) != 1 or len(inputs) != 1 or inputs[0].rank < 3 or run[-1].op_type != "Reshape":
        return []
    weight = reader.initializers.get(gemms[0].input[1])
    if weight is None or len(weight[0]) != 2:
        return []
    bias = len(gemms[0].input) > 2 and bool(gemms[0].input[2])
    return [
        {"num_output": weight[0][0], "axis": axis, "bias_term": bias} for axis in range(1, inputs[0].rank)
    ]


@_lowers("LocallyConnected")
def _locally_connected_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """The unfolding Conv (one-hot kernels) gives the window, the weight [Ho·Wo, C·kh·kw, Cout]
    the output channels; an Add of the untied bias closes the run when there is one."""
    weight = reader.initializers.get(f"{scope}.weight")
    if run[0].op_type != "Conv" or weight is None or len(weight[0]) != 3 or len(inputs) != 1:
        return []
    window = _attributes(run[0])
    if len(window.get("kernel_shape", ())) != 2:
        return []
    return [
        {
            "num_output": weight[0][2],
            "kernel_size": tuple(window["kernel_shape"]),
            "stride": tuple(window.get("strides", (1, 1))),
            "pad": tuple(window.get("pads", (0, 0, 0, 0))),
            "bias_term": run[-1].op_type == "Add",
        }
    ]


@_lowers("NetVLAD")
def _netvlad_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """The centroids [K, D] give the clusters; a run that opens with a norm (ReduceL2) rather
    than the assignment Conv normalises its input."""
    centroids = reader.initializers.get(f"{scope}.centroids")
    if centroids is None or len(centroids[0]) != 2 or len(inputs) != 1:
        return []
    return [{"num_clusters": centroids[0][0], "normalize_input": run[0].op_type == "ReduceL2"}]


def _operators(run: Sequence[onnx.NodeProto]) -> list[str]:
    return [n.op_type for n in run]


@_lowers("BN")
def _bn_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """SegNet's BN: a Mul by its slope, an Add of its bias (its mode is not emitted)."""
    return [{}] if _operators(run) == ["Mul", "Add"] else []


@_lowers("Pooling")
def _masked_pooling_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """MAX Pooling with its mask: a MaxPool with Indices, their index in the plane (a Mod), cast
    to floats. The window is the MaxPool's, read as the MaxPool mapper reads it (ceil rounding
    as the end padding it was lowered to)."""
    if _operators(run) != ["MaxPool", "Mod", "Cast"]:
        return []
    window = _attributes(run[0])
    return [
        {
            "pool": "MAX",
            "kernel_size": tuple(window["kernel_shape"]),
            "stride": tuple(window.get("strides", (1, 1))),
            "pad": tuple(window.get("pads", (0, 0, 0, 0))),
        }
    ]


@_lowers("Upsample")
def _unpooling_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """Upsample by a Pooling mask (values scattered into zeros, reshaped to [N, C, Ho, Wo]):
    the scale is the output size over the input's, rounded up; a size it does not give is
    upsample_h/upsample_w."""
    out = _shape_constant(reader, scope, "out_shape", 4)
    if out is None or len(inputs) != 2 or inputs[0].rank != 4 or "ScatterElements" not in _operators(run):
        return []
    size = inputs[0].dims[2:]
    if not all(isinstance(d, int) and d > 0 for d in size):
        return []
    out_hw = (out[2], out[3])
    scale_h, scale_w = (-(-o // int(i)) for o, i in zip(out_hw, size, strict=True))
    params: dict[str, Any] = (
        {"scale": scale_h} if scale_h == scale_w else {"scale_h": scale_h, "scale_w": scale_w}
    )
    if out_hw != (int(size[0]) * scale_h, int(size[1]) * scale_w):
        params.update(upsample_h=out_hw[0], upsample_w=out_hw[1])
    return [params]


@_lowers("AffineGrid")
def _affine_grid_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """A MatMul of the base grid with θ transposed, reshaped to [N, H, W, 2]: the output gives
    the size, an Add opening the run (of the identity) relative_to_identity; the base grid's
    values, compared on emission, tell align_corners."""
    output = reader.types.get(run[-1].output[0])
    if "MatMul" not in _operators(run) or output is None or output.rank != 4 or len(inputs) != 1:
        return []
    base: dict[str, Any] = {"output_size": (output.dims[1], output.dims[2])}
    if run[0].op_type == "Add":
        base["relative_to_identity"] = True
    return [base, {**base, "align_corners": True}]


def _float32_param(value: np.ndarray | None) -> float | None:
    """The shortest decimal of a float32 constant of one value (0.7, not 0.699999988)."""
    return float(str(np.float32(value.ravel()[0]))) if value is not None and value.size == 1 else None


def _anchor_candidates(anchors: np.ndarray, count: int, width: int) -> list[dict[str, Any]]:
    """Proposal's anchor parameters that may have given ``anchors`` [H·W·A, 4] (A = ``count``,
    ratio-major, ``width`` positions a row): the base anchor's centre gives base_size, the next
    position's shift (along the row, or down where a row has one position) feat_stride; the
    first position's anchors give, for each way of splitting A into ratios × scales, the ratios
    (height over width) and the scales (the sides over base_size), both rounded to a few
    decimals, since generate_anchors rounds the sides."""
    first = anchors[:count].astype(np.float64)
    base_size = round(float(first[0, 0] + first[0, 2]) + 1)
    axis = 0 if width > 1 else 1
    # A map of one position has its anchors unshifted: any stride emits them, the default does.
    feat_stride = round(float(anchors[count, axis] - anchors[0, axis])) if len(anchors) > count else 16
    if base_size < 1 or feat_stride < 1:
        return []
    widths, heights = first[:, 2] - first[:, 0] + 1, first[:, 3] - first[:, 1] + 1
    found = []
    for ratio_count in (r for r in range(1, count + 1) if count % r == 0):
        scale_count = count // ratio_count
        w, h = widths.reshape(ratio_count, scale_count), heights.reshape(ratio_count, scale_count)
        unit = np.sqrt(w[:, 0] * h[:, 0]) / base_size
        for digits in (0, 1, 2):
            first_scale = round(float(np.mean(unit)), digits)
            if first_scale <= 0:
                continue
            scales = tuple(round(first_scale * float(x), digits) for x in w[0] / w[0, 0])
            ratios = tuple(round(float(x), max(digits, 1)) for x in h[:, 0] / w[:, 0])
            if all(x > 0 for x in (*scales, *ratios)):
                found.append(
                    {"feat_stride": feat_stride, "base_size": base_size, "ratios": ratios, "scales": scales}
                )
    return found


@_lowers("Proposal")
def _proposal_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """The anchors give their parameters (see _anchor_candidates); TopK's k pre_nms_top_n (k is
    every box where there are fewer, which any larger pre_nms_top_n emits alike),
    NonMaxSuppression's constants post_nms_top_n and nms_threshold, the Mul by the image's scale
    min_size."""
    top_k = _shape_constant(reader, scope, "top_k", 1)
    post = _shape_constant(reader, scope, "nms_max", 1)
    numbers = {
        "pre_nms_top_n": top_k[0] if top_k is not None else None,
        "post_nms_top_n": post[0] if post is not None else None,
        "nms_threshold": _float32_param(reader.const(f"{scope}/nms_iou")),
        "min_size": _float32_param(reader.const(f"{scope}/min_size")),
    }
    anchors = reader._stored_constant(f"{scope}/anchors")
    if None in numbers.values() or anchors is None or len(inputs) != 3 or inputs[0].rank != 4:
        return []
    channels, width = inputs[0].dims[1], inputs[0].dims[3]
    if not isinstance(channels, int) or not isinstance(width, int) or channels < 2 or anchors.ndim != 2:
        return []
    return [{**anchor, **numbers} for anchor in _anchor_candidates(anchors, channels // 2, width)]


@_lowers("RCNNDetection")
def _detection_candidates(
    reader: _Reader, scope: str, run: Sequence[onnx.NodeProto], inputs: Sequence[TensorType]
) -> list[dict[str, Any]]:
    """NonMaxSuppression's constants give the thresholds, the Min of the detections found
    max_detections."""
    kept = _shape_constant(reader, scope, "max_detections", 1)
    nms = _float32_param(reader.const(f"{scope}/nms_iou"))
    score = _float32_param(reader.const(f"{scope}/nms_score"))
    if kept is None or nms is None or score is None or len(inputs) != 4:
        return []
    return [{"score_threshold": score, "nms_threshold": nms, "max_detections": kept[0]}]


# ---------------------------------------------------------------- convert


@dataclass(frozen=True)
class OnnxConversion:
    """An ONNX model written as a .net spec and its weights by the spec's names."""

    conversion: Any  # netspec.convert.Conversion
    weights: Mapping[str, np.ndarray]


def convert_onnx(
    path: str | os.PathLike[str],
    *,
    templates: bool = True,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
) -> OnnxConversion:
    """Read the ONNX model at ``path`` and write it as a .net spec (netspec.convert's writer:
    implicit chaining, templates for repeated blocks, loops), with its initializers as the
    spec's weights (``layer1.0.conv1.weight``). Operators without a netspec layer are an error."""
    from netspec.convert import convert_graph
    from netspec.typed import bind, node_arrays

    imported = import_onnx(path, input_shapes)
    if imported.unknown:
        listed = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in sorted(imported.unknown.items()))
        raise error(
            f"{path}: cannot convert: operators netspec has no layer for ({listed})",
            hint="netspec report still analyses the model; a .net spec can only hold netspec layers",
        )
    graph = imported.graph
    typed = bind(graph)
    arrays = read_weights(imported, typed)
    conversion = convert_graph(graph, templates=templates, origin=Path(path).name)
    names = conversion.node_names
    weights = {}
    for typed_node in typed.nodes:
        node = typed_node.node
        # The spec's name of each array: its layer's new name, the array beside it or its own.
        renamed = replace(node, name=names.get(node.name, node.name))
        for array, spec_array in zip(typed_node.arrays, node_arrays(renamed, typed_node.inputs), strict=True):
            weights[spec_array.name] = arrays[array.name]
    return OnnxConversion(conversion, weights)
