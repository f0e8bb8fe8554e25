"""The one product of binding and inference: a :class:`TypedGraph` — a graph with the batch and
input shapes bound, every tensor's type, every node's stored arrays — frozen.

Everything after binding (counts, receptive fields, size caps, weights, passes, ONNX emission,
the reference executor, reports) is a function of this value; no stage infers again.

**Which dimension ``--batch`` binds**: the leading dimension of every graph input whose leading
dimension is symbolic (``input data: [N, 3, 224, 224]``, or ``[B, ...]``: the name is the
spec's). All such inputs must name the same symbol. An input with a number there keeps it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING

from netspec.collector import cycle_collector_paused
from netspec.diagnostics import NetspecError, error
from netspec.graph import Dim, Graph, Node, TensorType
from netspec.infer import infer_shapes
from netspec.layers.base import ParamSpec
from netspec.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from netspec.count import Counts
    from netspec.receptive import ReceptiveField


@dataclass(frozen=True)
class StoredArray:
    """One array a node stores: its full name (``layer1.0.conv1.weight``, or the shared name
    a Caffe ``param { name }`` gives it), its spec, and whether training leaves it fixed."""

    name: str
    spec: ParamSpec
    frozen: bool = False


def node_arrays(
    node: Node, input_types: Sequence[TensorType], specs: Sequence[ParamSpec] | None = None
) -> tuple[StoredArray, ...]:
    """The arrays of one node given its input types, in the layer's order (Caffe's blob order);
    ``specs``, when given, are its layer's ``parameters(input_types)``, already asked."""
    arrays = []
    for index, spec in enumerate(node.layer.parameters(input_types) if specs is None else specs):
        shared = node.array_names[index] if index < len(node.array_names) else None
        own = f"{node.name}.{spec.name}"
        if spec.beside:  # a bare nn.Parameter of the enclosing module: ViT's class_token
            scope = node.name.rpartition(".")[0]
            own = f"{scope}.{spec.name}" if scope else spec.name
        arrays.append(StoredArray(shared or own, spec, index in node.frozen_arrays))
    return tuple(arrays)


@dataclass(frozen=True)
class TypedNode:
    """One node with its bound input and output types and the arrays it stores."""

    node: Node
    inputs: tuple[TensorType, ...]
    outputs: tuple[TensorType, ...]
    arrays: tuple[StoredArray, ...]

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True, eq=False)
class TypedGraph:
    """A graph bound and inferred once (:func:`bind`): the value every later stage reads.

    ``types`` holds every tensor's type; ``bindings`` the symbolic dimensions fixed
    (``{"N": 8}``); ``batch`` what was asked for (None: left symbolic, a dynamic batch);
    ``dtype`` the element type weights and activations are counted (and emitted) in.
    """

    graph: Graph
    types: Mapping[str, TensorType]
    bindings: Mapping[str, int] = field(default_factory=dict)
    batch: int | None = 1
    batch_symbol: str | None = None
    dtype: str = "float32"

    @cached_property
    def nodes(self) -> tuple[TypedNode, ...]:
        """Every node with its types and arrays, in execution order."""
        typed = []
        specs: dict[tuple[object, ...], tuple[ParamSpec, ...]] = {}  # per layer and input types
        for node in self.graph.nodes:
            inputs = tuple(self.types[t] for t in node.inputs)
            key = (node.layer, *inputs)
            found = specs.get(key)
            if found is None:
                found = specs[key] = tuple(node.layer.parameters(inputs))
            outputs = tuple(self.types[t] for t in node.outputs)
            typed.append(TypedNode(node, inputs, outputs, node_arrays(node, inputs, found)))
        return tuple(typed)

    def _repr_svg_(self) -> str | None:
        """Jupyter's picture of the graph (:func:`netspec.viz.graph_svg`): SVG drawn by Graphviz's
        ``dot``; None when ``dot`` is not on PATH, so that Jupyter shows the text repr instead."""
        from netspec.viz import graph_svg

        return graph_svg(self)

    @cached_property
    def _by_name(self) -> dict[str, TypedNode]:
        return {typed.node.name: typed for typed in self.nodes}

    def of(self, node: Node | str) -> TypedNode:
        """The typed form of ``node`` (a node of this graph, or its name)."""
        return self._by_name[node if isinstance(node, str) else node.name]

    @cached_property
    def arrays(self) -> dict[Node, tuple[StoredArray, ...]]:
        """Each node's stored arrays (only nodes that have some). An array shared by name
        (Caffe's ``param { name }``) must have one shape wherever it is used: a diagnostic at
        the layer that differs, as Caffe refuses such a net."""
        result = {}
        owners: dict[str, tuple[Node, StoredArray]] = {}
        for typed in self.nodes:
            node = typed.node
            for array in typed.arrays:
                if array.spec.beside and array.name in self.types:
                    raise error(
                        f"layer '{node.name}' stores its array as '{array.name}', which is also a "
                        "tensor's name",
                        node.span,
                        hint=f"name the layer otherwise; its array keeps the name '{array.name}'",
                        trace=node.trace,
                    )
                owner, first = owners.setdefault(array.name, (node, array))
                if first.spec.shape != array.spec.shape:
                    raise error(
                        f"layer '{node.name}' shares the array '{array.name}' with layer '{owner.name}', "
                        f"but its {array.spec.name} is {list(array.spec.shape)} where "
                        f"'{owner.name}' has {list(first.spec.shape)}",
                        node.span,
                        hint="layers that share an array (param { name }) need the same shape of it",
                        trace=node.trace,
                    )
            if typed.arrays:
                result[node] = typed.arrays
        return result

    @cached_property
    def expected_arrays(self) -> dict[str, StoredArray]:
        """Every distinct stored array by full name (a shared array once), in order."""
        expected: dict[str, StoredArray] = {}
        for arrays in self.arrays.values():
            for array in arrays:
                expected.setdefault(array.name, array)
        return expected

    @cached_property
    def counts(self) -> Counts:
        """Params, MACs, memory per layer and in total, bytes in ``dtype`` elements."""
        from netspec.count import count_graph

        with cycle_collector_paused():
            return count_graph(self)

    @cached_property
    def receptive_fields(self) -> dict[str, ReceptiveField | None]:
        """Each tensor's receptive field on the graph's image input (None where undefined)."""
        from netspec.receptive import receptive_fields

        return receptive_fields(self)

    def rewritten(self, graph: Graph, types: Mapping[str, TensorType]) -> TypedGraph:
        """This value with a pass's graph and types, the bindings kept (passes use this)."""
        return dataclasses.replace(self, graph=graph, types=MappingProxyType(dict(types)))

    def with_dtype(self, dtype: str) -> TypedGraph:
        """The same graph counted (and emitted) in ``dtype`` elements."""
        return dataclasses.replace(self, dtype=dtype)

    def check_sizes(self, limits: Limits = DEFAULT_LIMITS) -> None:
        """A diagnostic at the first layer whose output or stored array has more elements than
        ``limits`` allow, or where all stored arrays together pass theirs. Symbolic dimensions
        count as 1."""
        total = 0
        for typed in self.nodes:
            node = typed.node
            for tensor, tensor_type in zip(node.outputs, typed.outputs, strict=True):
                elements = _elements(tensor_type.dims)
                if elements > limits.max_tensor_elements:
                    raise _size_error(
                        f"{node.type} '{node.name}' produces the tensor {self.types[tensor]} of {elements:,} "
                        f"elements, more than the limit of {limits.max_tensor_elements:,}",
                        "max_tensor_elements",
                        node,
                    )
            for array in typed.arrays:
                elements = _elements(array.spec.shape)
                if elements > limits.max_tensor_elements:
                    raise _size_error(
                        f"{node.type} '{node.name}' stores the array '{array.name}' of shape "
                        f"{list(array.spec.shape)} ({elements:,} elements), more than the limit of "
                        f"{limits.max_tensor_elements:,}",
                        "max_tensor_elements",
                        node,
                    )
                total += elements
            if total > limits.max_weight_elements:
                raise _size_error(
                    f"the weights reach {total:,} elements at {node.type} '{node.name}', more than the "
                    f"limit of {limits.max_weight_elements:,}",
                    "max_weight_elements",
                    node,
                )


def _elements(dims: tuple[Dim, ...]) -> int:
    count = 1
    for d in dims:
        count *= d if isinstance(d, int) else 1
    return count


def _size_error(message: str, limit: str, node: Node) -> NetspecError:
    return error(
        message,
        node.span,
        hint=f"check the sizes; to allow it, raise the cap with --limit {limit}=VALUE",
        trace=node.trace,
    )


def batch_symbol(graph: Graph, input_shapes: Mapping[str, tuple[Dim, ...]] | None = None) -> str | None:
    """The symbol the graph's inputs name their leading (batch) dimension, None when no input
    has a symbolic one; inputs that name different symbols are an error."""
    input_shapes = input_shapes or {}
    named: dict[str, Node] = {}
    for node in graph.input_nodes:
        given = input_shapes.get(node.outputs[0])
        dims = tuple(given) if given is not None else node.layer.infer([])[0].dims
        if dims and isinstance(dims[0], str):
            named.setdefault(dims[0], node)
    if len(named) > 1:
        (first, one), (second, other) = list(named.items())[:2]
        raise error(
            f"input '{other.name}' names its batch dimension '{second}' where input '{one.name}' "
            f"names it '{first}'",
            other.span,
            hint="--batch binds the leading dimension of every input: give them the same name",
            trace=other.trace,
        )
    return next(iter(named), None)


def bind(
    graph: Graph,
    batch: int | None = 1,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    *,
    dtype: str = "float32",
    limits: Limits = DEFAULT_LIMITS,
) -> TypedGraph:
    """``graph`` with its batch (``None``: left symbolic) and ``input_shapes`` bound, every type
    inferred, tensors and weights past ``limits`` refused: the one place inference runs."""
    symbol = batch_symbol(graph, input_shapes)
    bindings = {symbol: batch} if symbol is not None and batch is not None else {}
    with cycle_collector_paused():
        types = infer_shapes(graph, bindings, input_shapes)
        typed = TypedGraph(graph, MappingProxyType(types), MappingProxyType(bindings), batch, symbol, dtype)
        typed.check_sizes(limits)
        typed.arrays  # noqa: B018 (names of shared and beside arrays checked with the rest)
    return typed
