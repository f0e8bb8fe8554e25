"""The layer graph every later stage works on: tensor types, nodes and the graph itself.

.net specs, Caffe files and ONNX models all become a :class:`Graph`; nodes run in their listed
order, which is always a topological order (each front end builds it so), so the stages after it
walk the node list and need no graph library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from netspec.diagnostics import Diagnostic, SourceSpan, TraceFrame

if TYPE_CHECKING:
    from netspec.layers.base import Layer

Dim = int | str

# The name front ends give the batch dimension where the source names none: Caffe's input
# dims are all numbers, and ONNX's batch dim_params (``batch_size``, ``unk__0``) are renamed.
BATCH_SYMBOL = "N"

DTYPE_SIZES = {"float32": 4, "float16": 2, "float64": 8, "int64": 8}


@dataclass(frozen=True)
class TensorType:
    """A tensor's element type and dimensions; a ``str`` dimension is symbolic (the batch, BATCH_SYMBOL)."""

    dims: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    @property
    def static_dims(self) -> tuple[int, ...]:
        """The dimensions as integers (a numpy shape); ValueError when one is symbolic."""
        dims = tuple(d for d in self.dims if isinstance(d, int))
        if len(dims) != self.rank:
            raise ValueError(f"tensor {self} has symbolic dimensions")
        return dims

    @cached_property
    def numel(self) -> int:
        return math.prod(self.static_dims)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_SIZES[self.dtype]

    def bind(self, bindings: Mapping[str, int]) -> TensorType:
        """The same type with symbolic dimensions replaced where ``bindings`` has them."""
        dims = tuple(bindings.get(d, d) if isinstance(d, str) else d for d in self.dims)
        return TensorType(dims, self.dtype)

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self.dims) + "]"


@dataclass(frozen=True)
class ArraySetting:
    """Caffe's ``param { name lr_mult }`` for one stored array: a name shares the array with
    every layer that names it, and ``lr_mult: 0`` freezes it."""

    name: str | None = None
    lr_mult: float = 1.0


def array_settings(settings: Sequence[ArraySetting]) -> tuple[tuple[str | None, ...], tuple[int, ...]]:
    """A node's ``array_names`` and ``frozen_arrays`` from its arrays' settings, in order."""
    names = tuple(setting.name for setting in settings)
    return names, tuple(index for index, setting in enumerate(settings) if setting.lr_mult == 0)


@dataclass(frozen=True)
class Node:
    """One layer instance: its unique scoped name, the layer, and the tensors it reads and writes."""

    name: str
    layer: Layer[Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    span: SourceSpan | None = None
    trace: tuple[TraceFrame, ...] = ()
    param_spans: tuple[tuple[str, SourceSpan], ...] = ()
    # Caffe's per-array settings, by array index (the order of ``layer.parameters``): a name
    # shares the array with every layer that names it (``param { name: "w" }``), and frozen
    # arrays have ``lr_mult: 0``.
    array_names: tuple[str | None, ...] = ()
    frozen_arrays: tuple[int, ...] = ()

    @property
    def type(self) -> str:
        return self.layer.type_name

    def __hash__(self) -> int:
        # Equal nodes have equal names, and names are unique in a graph: hashing the name alone
        # keeps a dict of nodes (TypedGraph.arrays) from hashing every span and trace frame.
        return hash(self.name)

    def param_span(self, param: str | None) -> SourceSpan | None:
        """Where the user wrote ``param`` (falls back to the layer itself)."""
        return dict(self.param_spans).get(param or "", self.span) if param else self.span


@dataclass(frozen=True)
class Graph:
    """A whole network: nodes in execution order and the tensors it returns."""

    name: str
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    source_path: str = "<string>"
    # The root spec's text (hashed into a compiled model's metadata); None for an ONNX model.
    source_text: str | None = field(default=None, repr=False, compare=False)
    metadata: tuple[tuple[str, str], ...] = field(default=())
    # Non-fatal diagnostics from reading the source (a Caffe fork field accepted, ...).
    warnings: tuple[Diagnostic, ...] = ()

    @cached_property
    def producers(self) -> dict[str, Node]:
        return {tensor: node for node in self.nodes for tensor in node.outputs}

    @cached_property
    def consumers(self) -> dict[str, list[Node]]:
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for tensor in node.inputs:
                result.setdefault(tensor, []).append(node)
        return result

    @property
    def input_nodes(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if not node.inputs)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
