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

from collections.abc import Sequence
from dataclasses import dataclass

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
    rewrite = _Float16Rewrite(model)
    plans = [rewrite.plan(node) for node in model.graph.node]
    rewrite.initializers_to_half(plans)
    rewrite.inputs_to_half()
    rewrite.rebuild_nodes(plans)
    rewrite.retype_value_infos()
    return model


@dataclass(frozen=True)
class _NodePlan:
    """The element type a node computes in: HALF, FLOAT, or None for a Cast (left as it is);
    and per input whether the op's schema lets that input take float16."""

    kind: int | None
    generic: list[bool]


class _Float16Rewrite:
    """One model's rewrite: each tensor's element type as the rewrite goes, the float32
    tensors that hold indices, and the node list being rebuilt with its casts."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from netspec.export.onnx import infer_bare

        self.graph = model.graph
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        inferred = infer_bare(model).graph
        self.element_types = {
            info.name: info.type.tensor_type.elem_type
            for info in [*inferred.value_info, *inferred.input, *inferred.output]
        }
        self.initializers = {t.name: t for t in self.graph.initializer}
        for name, tensor in self.initializers.items():
            self.element_types[name] = tensor.data_type
        self.exact: set[str] = set()  # float32 tensors holding indices
        self.casts: dict[tuple[str, int], str] = {}
        self.nodes: list[onnx.NodeProto] = []

    def is_float(self, tensor: str) -> bool:
        return bool(tensor) and self.element_types.get(tensor) == FLOAT

    def plan(self, node: onnx.NodeProto) -> _NodePlan:
        """Pass 1, per node in order: the type ``node`` computes in; the index-valued tensors
        it makes (a Cast's float output, data movement of an index tensor) stay float32."""
        if node.op_type == "Cast":
            if self.is_float(node.output[0]):
                self.exact.add(node.output[0])
            return _NodePlan(None, [])
        if node.op_type in FLOAT32_OPS:
            kind = FLOAT
        elif node.op_type in DATA_MOVEMENT_OPS and any(t in self.exact for t in node.input):
            kind = FLOAT
            self.exact.update(t for t in node.output if self.is_float(t))
        else:
            kind = HALF
        return _NodePlan(kind, _generic_inputs(node, self.opset))

    def initializers_to_half(self, plans: Sequence[_NodePlan]) -> None:
        """Store as float16 each float initializer that every node reading it takes as float16."""
        wanted: dict[str, set[int]] = {}
        for node, plan in zip(self.graph.node, plans, strict=True):
            if plan.kind is None:
                continue
            for index, tensor in enumerate(node.input):
                if tensor in self.initializers and self.is_float(tensor):
                    wanted.setdefault(tensor, set()).add(plan.kind if plan.generic[index] else FLOAT)
        for name, kinds in wanted.items():
            if kinds == {HALF}:
                _to_half(self.initializers[name])
                self.element_types[name] = HALF

    def inputs_to_half(self) -> None:
        """The graph's float inputs become float16."""
        for info in self.graph.input:
            if info.type.tensor_type.elem_type == FLOAT:
                info.type.tensor_type.elem_type = HALF
                self.element_types[info.name] = HALF

    def rebuild_nodes(self, plans: Sequence[_NodePlan]) -> None:
        """Pass 2: the node list again, each node with the casts it needs around it."""
        for node, plan in zip(list(self.graph.node), plans, strict=True):
            if plan.kind is None:
                self.nodes.append(node)
                continue
            self.cast_inputs(node, plan.kind, plan.generic)
            if node.op_type == "ConstantOfShape" and plan.kind == HALF:
                _constant_of_shape_to_half(node)
            self.nodes.append(node)
            self.type_outputs(node, plan.kind)
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)

    def cast_inputs(self, node: onnx.NodeProto, kind: int, generic: Sequence[bool]) -> None:
        """Read each float input of ``node`` in the type the node computes in."""
        for index, tensor in enumerate(node.input):
            current = self.element_types.get(tensor)
            # A float32 op's fixed float inputs (NonMaxSuppression's boxes) take float32 too.
            if current in (FLOAT, HALF) and current != kind and (generic[index] or kind == FLOAT):
                node.input[index] = self.cast(tensor, kind)

    def cast(self, tensor: str, to: int) -> str:
        """The name of ``tensor`` cast to ``to``, adding the Cast node the first time."""
        key = (tensor, to)
        if key not in self.casts:
            suffix = "float32" if to == FLOAT else "float16"
            self.casts[key] = f"{tensor}/as_{suffix}"
            self.nodes.append(
                helper.make_node("Cast", [tensor], [self.casts[key]], name=f"{tensor}/cast_{suffix}", to=to)
            )
        return self.casts[key]

    def type_outputs(self, node: onnx.NodeProto, kind: int) -> None:
        """Record the element type of ``node``'s float outputs. A float32 op's outputs are cast
        back, so that the tensors the spec names are float16, unless they hold indices."""
        outputs = [t for t in node.output if self.is_float(t)]
        if kind == FLOAT and not any(t in self.exact for t in outputs):
            for index, tensor in enumerate(node.output):
                if tensor in outputs:
                    node.output[index] = f"{tensor}/float32"
                    self.casts[(tensor, FLOAT)] = node.output[index]  # float32 readers take it as it is
                    self.nodes.append(
                        helper.make_node(
                            "Cast", [node.output[index]], [tensor], name=f"{tensor}/cast_float16", to=HALF
                        )
                    )
            kind = HALF
        for tensor in outputs:
            self.element_types[tensor] = kind

    def retype_value_infos(self) -> None:
        """The declared types of the intermediate and output tensors, as the rewrite left them."""
        for info in [*self.graph.value_info, *self.graph.output]:
            if info.type.tensor_type.elem_type == FLOAT:
                info.type.tensor_type.elem_type = self.element_types.get(info.name, FLOAT)


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
