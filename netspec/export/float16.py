"""float16 models: a float32 ModelProto from the builder rewritten so that its weights, inputs,
outputs and every activation tensor of the spec are float16.

Which tensors stay float32, and why:

* **Index-valued tensors** (a max-pooling mask, ArgMax's indices) are emitted as a Cast to
  float; float16 holds integers exactly only up to 2048, so these, and data-movement ops
  (Reshape, Concat, ...) applied to them, stay float32, also as graph outputs.
* **Ops computed in float32** (:data:`FLOAT32_OPS`): exponentials, logarithms, powers, sums of
  squares and long reductions, whose float16 intermediates overflow (65504 is float16's
  largest value: LRN squares its input, Softmax sums exponentials) or lose the accuracy the
  result needs. Such a node reads its inputs cast to float32 and its output is cast back to
  float16, so the tensor the spec names is float16 like every other; the constants it reads
  stay float32. This follows PyTorch autocast's float32 list.

Everything else (Conv, Gemm, MatMul, BatchNormalization, pooling, activations, elementwise ops)
runs in float16: every such op accepts float16 under the ONNX type constraints, and
onnxruntime's CPU provider itself casts the nodes it has no float16 kernel for to float32 and
back (its InsertCastTransformer), so the model runs on CPU and CUDA alike.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT32_OPS = frozenset(
    {
        "LRN",
        "Softmax",
        "LogSoftmax",
        "Exp",
        "Log",
        "Pow",
        "Softplus",
        "LpNormalization",
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceMean",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        # No float16 kernel in ONNX's type constraints: boxes and scores are float32 only.
        "NonMaxSuppression",
    }
)

# Ops that move or select values without arithmetic: they keep the element type they are given
# (so an index tensor passing through stays exact).
DATA_MOVEMENT_OPS = frozenset(
    {
        "Identity",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Expand",
        "Tile",
    }
)

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def convert_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite ``model`` (float32, from the builder) in place as described in the module
    docstring, and return it."""
    from netspec.export.onnx import infer_bare

    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    inferred = infer_bare(model)
    element_types = {
        info.name: info.type.tensor_type.elem_type
        for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    initializers = {t.name: t for t in graph.initializer}
    for name, tensor in initializers.items():
        element_types[name] = tensor.data_type

    def is_float(tensor: str) -> bool:
        return bool(tensor) and element_types.get(tensor) == FLOAT

    # Pass 1: the element type each node computes in, the tensors that stay float32, and what
    # each float initializer's readers want.
    exact: set[str] = set()  # float32 tensors holding indices
    # Per node: HALF, FLOAT, or None (Cast: untouched), and which inputs take that type.
    compute: list[tuple[int | None, list[bool]]] = []
    wanted: dict[str, set[int]] = {}
    for node in graph.node:
        if node.op_type == "Cast":
            compute.append((None, []))
            if is_float(node.output[0]):
                exact.add(node.output[0])
            continue
        if node.op_type in FLOAT32_OPS:
            kind = FLOAT
        elif node.op_type in DATA_MOVEMENT_OPS and any(t in exact for t in node.input):
            kind = FLOAT
            exact.update(t for t in node.output if is_float(t))
        else:
            kind = HALF
        generic = _generic_inputs(node, opset)
        compute.append((kind, generic))
        for index, tensor in enumerate(node.input):
            if tensor in initializers and is_float(tensor):
                wanted.setdefault(tensor, set()).add(kind if generic[index] else FLOAT)

    for name, kinds in wanted.items():
        if kinds == {HALF}:
            _to_half(initializers[name])
            element_types[name] = HALF
    for info in graph.input:
        if info.type.tensor_type.elem_type == FLOAT:
            info.type.tensor_type.elem_type = HALF
            element_types[info.name] = HALF

    # Pass 2: rebuild the node list with the casts each node needs.
    casts: dict[tuple[str, int], str] = {}
    nodes: list[onnx.NodeProto] = []

    def cast(tensor: str, to: int) -> str:
        key = (tensor, to)
        if key not in casts:
            suffix = "float32" if to == FLOAT else "float16"
            casts[key] = f"{tensor}/as_{suffix}"
            nodes.append(
                helper.make_node("Cast", [tensor], [casts[key]], name=f"{tensor}/cast_{suffix}", to=to)
            )
        return casts[key]

    for node, (computes_in, generic) in zip(list(graph.node), compute, strict=True):
        if computes_in is None:
            nodes.append(node)
            continue
        for index, tensor in enumerate(node.input):
            current = element_types.get(tensor)
            # A float32 op's fixed float inputs (NonMaxSuppression's boxes) take float32 too.
            if (
                current in (FLOAT, HALF)
                and current != computes_in
                and (generic[index] or computes_in == FLOAT)
            ):
                node.input[index] = cast(tensor, computes_in)
        if node.op_type == "ConstantOfShape" and computes_in == HALF:
            _constant_of_shape_to_half(node)
        nodes.append(node)
        outputs = [t for t in node.output if is_float(t)]
        if computes_in == FLOAT and not any(t in exact for t in outputs):
            # The op computes in float32; the tensor the spec names stays float16.
            for index, tensor in enumerate(node.output):
                if tensor in outputs:
                    node.output[index] = f"{tensor}/float32"
                    casts[(tensor, FLOAT)] = node.output[index]  # float32 readers take it as it is
                    nodes.append(
                        helper.make_node(
                            "Cast", [node.output[index]], [tensor], name=f"{tensor}/cast_float16", to=HALF
                        )
                    )
            computes_in = HALF
        for tensor in outputs:
            element_types[tensor] = computes_in

    del graph.node[:]
    graph.node.extend(nodes)
    for info in [*graph.value_info, *graph.output]:
        if info.type.tensor_type.elem_type == FLOAT:
            info.type.tensor_type.elem_type = element_types.get(info.name, FLOAT)
    return model


def _to_half(tensor: onnx.TensorProto) -> None:
    value = numpy_helper.to_array(tensor).astype(np.float16)
    tensor.ClearField("float_data")
    tensor.data_type = HALF
    tensor.raw_data = value.tobytes()


def _constant_of_shape_to_half(node: onnx.NodeProto) -> None:
    for attribute in node.attribute:
        if attribute.name == "value":
            if attribute.t.data_type == FLOAT:
                _to_half(attribute.t)
            return
    # Without a value attribute ConstantOfShape makes float32 zeros.
    node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))


def _generic_inputs(node: onnx.NodeProto, opset: int) -> list[bool]:
    """Per input of ``node``: whether the op's schema types it by a type parameter that allows
    float16 (Resize's ``scales``, say, is float32 whatever the data is)."""
    schema = onnx.defs.get_schema(node.op_type, opset, "")
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    formal = list(schema.inputs)
    result = []
    for index in range(len(node.input)):
        parameter = formal[min(index, len(formal) - 1)]
        result.append("tensor(float16)" in allowed.get(parameter.type_str, ()))
    return result
