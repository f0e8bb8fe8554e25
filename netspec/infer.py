"""Shape inference over a whole graph: every tensor's type, with layer errors turned into
diagnostics that point at the layer (or the parameter) the user wrote."""

from __future__ import annotations

from collections.abc import Mapping

from netspec.diagnostics import error
from netspec.graph import Dim, Graph, TensorType
from netspec.layers.base import LayerError


def infer_shapes(
    graph: Graph,
    bindings: Mapping[str, int] | None = None,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
) -> dict[str, TensorType]:
    """Types of every tensor by name. ``bindings`` fixes symbolic dimensions (``{"N": 8}``);
    ``input_shapes`` replaces declared input shapes (``--input data:1x3x299x299``)."""
    bindings = dict(bindings or {})
    input_shapes = dict(input_shapes or {})
    unknown = set(input_shapes) - {n.outputs[0] for n in graph.input_nodes}
    if unknown:
        names = ", ".join(n.outputs[0] for n in graph.input_nodes)
        raise error(
            f"--input names '{sorted(unknown)[0]}', which is not an input of the network (inputs: {names})"
        )
    types: dict[str, TensorType] = {}
    # A layer's outputs depend only on it and its input types; the elaborator gives a template's
    # layers one object in all instances, so a deep net infers each distinct case once.
    inferred: dict[tuple[object, ...], tuple[TensorType, ...]] = {}
    for node in graph.nodes:
        try:
            if not node.layer.arity.accepts(len(node.inputs)):
                raise LayerError(f"takes {node.layer.arity.describe()}, got {len(node.inputs)}")
            if not node.inputs and node.outputs[0] in input_shapes:
                outputs: tuple[TensorType, ...] = (TensorType(tuple(input_shapes[node.outputs[0]])),)
            else:
                input_types = [types[t] for t in node.inputs]
                key = (node.layer, *input_types)
                found = inferred.get(key)
                if found is None:
                    found = inferred[key] = node.layer.infer(input_types)
                outputs = found
        except LayerError as exc:
            shapes = ", ".join(str(types[t]) for t in node.inputs)
            detail = f" (input{'s' if len(node.inputs) > 1 else ''} {shapes})" if node.inputs else ""
            raise exc.located(node, detail) from None
        if not node.inputs:
            outputs = tuple(t.bind(bindings) for t in outputs)
            unbound = [d for t in outputs for d in t.dims if isinstance(d, str)]
            # NOTE: with the batch fixed, every later stage (counts, weights) needs static shapes.
            if bindings and unbound:
                raise error(
                    f"input '{node.name}' has the symbolic dimension '{unbound[0]}', which the batch "
                    f"size does not fix (it sets {', '.join(sorted(bindings))})",
                    node.span,
                    hint="the batch binds the leading dimension of each input; write the others as numbers",
                    trace=node.trace,
                )
        for tensor, tensor_type in zip(node.outputs, outputs, strict=True):
            for dim in tensor_type.dims:
                if isinstance(dim, int) and dim <= 0:
                    raise error(
                        f"{node.type} '{node.name}' produces a non-positive size: input "
                        f"{', '.join(str(types[t]) for t in node.inputs)} gives output {tensor_type}",
                        node.span,
                        hint="the input is too small for this kernel/stride/padding",
                        trace=node.trace,
                    )
            types[tensor] = tensor_type
    return types
