"""Caffe's .prototxt files as they are: the protobuf text format parsed with Lark, then Caffe's
semantics — ``layer``/legacy ``layers`` with V1 enum types, the four input forms, phases,
in-place blobs, loss layers, shared and frozen parameters — turned into the Graph that every
later stage shares with .net specs (DESIGN.md §4)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args

from netspec import parse_tables
from netspec.diagnostics import Diagnostic, SourceFile, SourceSpan, did_you_mean, error
from netspec.expr import Symbol, Value
from netspec.graph import BATCH_SYMBOL, ArraySetting, Dim, Graph, Node, array_settings
from netspec.layers import LAYER_TYPES, InputLayer
from netspec.layers.base import Layer, Message, ParamValue, RawParam, build_layer, schema
from netspec.parse import (
    PUNCTUATION_WORDS,
    Syntax,
    integer_literal,
    parse_tree,
    reject_nul_bytes,
    transform,
    unquote,
)

PHASES = ("TEST", "TRAIN")

# ---------------------------------------------------------------- the text format


@dataclass(frozen=True)
class Word:
    """An unquoted value: an enum word (MAX, TRAIN), true/false, inf or nan."""

    text: str


Scalar = str | int | float | Word


@dataclass(frozen=True)
class TextField:
    key: str
    value: Scalar | tuple[Scalar, ...] | TextMessage
    key_span: SourceSpan
    value_span: SourceSpan


@dataclass(frozen=True)
class TextMessage:
    """A message: its fields in file order (a repeated field appears once per value)."""

    fields: tuple[TextField, ...]
    span: SourceSpan

    def all(self, key: str) -> list[TextField]:
        return [f for f in self.fields if f.key == key]

    def first(self, key: str) -> TextField | None:
        return next((f for f in self.fields if f.key == key), None)

    def scalar(self, key: str, default: Any = None) -> Any:
        found = self.first(key)
        return default if found is None else found.value


def _parser() -> Lark:
    return parse_tables.parser("caffe.lark")


class _ToMessage(Transformer[Token, Any]):
    def __init__(self, source: SourceFile) -> None:
        super().__init__()
        self.source = source

    def _span(self, item: Any) -> SourceSpan:
        return SourceSpan(self.source, item.line, item.column, item.end_line, item.end_column)

    @v_args(meta=True)
    def message(self, meta: Any, children: list[Any]) -> TextMessage:
        span = SourceSpan(self.source, 1, 1, 1, 1) if meta.empty else self._span(meta)
        return TextMessage(tuple(children), span)

    @v_args(meta=True)
    def scalar_field(self, meta: Any, children: list[Any]) -> TextField:
        key, (value, value_span) = children
        return TextField(str(key), value, self._span(key), value_span)

    @v_args(meta=True)
    def message_field(self, meta: Any, children: list[Any]) -> TextField:
        key, *fields = children
        span = self._span(meta)
        return TextField(str(key), TextMessage(tuple(fields), span), self._span(key), span)

    @v_args(meta=True)
    def list_field(self, meta: Any, children: list[Any]) -> TextField:
        key, *values = children
        items = tuple(v for v, _ in (c for c in values if c is not None))
        return TextField(str(key), items, self._span(key), self._span(meta))

    @v_args(meta=True)
    def string(self, meta: Any, children: list[Token]) -> tuple[str, SourceSpan]:
        return "".join(unquote(c) for c in children), self._span(meta)

    @v_args(meta=True)
    def number(self, meta: Any, children: list[Token]) -> tuple[int | float, SourceSpan]:
        text = str(children[0]).rstrip("fF")
        span = self._span(meta)
        if text.lstrip("+-").isdigit():
            return integer_literal(text, span), span
        value = float(text)
        if math.isinf(value):
            raise error(f"the number {text} is too large", span)
        return value, span

    @v_args(meta=True)
    def word(self, meta: Any, children: list[Token]) -> tuple[Scalar, SourceSpan]:
        text = "".join(str(c) for c in children)
        lowered = text.lower()
        if lowered in ("inf", "-inf", "infinity", "-infinity", "nan", "-nan"):
            return float(lowered.replace("infinity", "inf")), self._span(meta)
        return Word(text), self._span(meta)


def _caffe_hint(text: str, token: Token, expected: set[str], still_open: list[int]) -> str | None:
    """The text format's common mistake: a value after a key with no ':' between them."""
    if "COLON" in expected and token.type in ("NAME", "NUMBER", "STRING", "LSQB", "SIGN"):
        return "fields are written 'key: value'; is the ':' missing?"
    return None


CAFFE_SYNTAX = Syntax(
    token_words={
        **PUNCTUATION_WORDS,
        "NAME": "a name",
        "NUMBER": "a number",
        "STRING": "a string",
        "SIGN": "'-'",
    },
    valued_tokens=frozenset({"NAME", "NUMBER", "STRING"}),
    hint=_caffe_hint,
)


def parse_prototxt(source: SourceFile) -> TextMessage:
    """Parse a prototxt file into its top-level message, or raise a diagnostic."""
    reject_nul_bytes(source)
    tree = parse_tree(_parser(), source, CAFFE_SYNTAX, "message")
    return transform(_ToMessage(source), tree)


# ---------------------------------------------------------------- Caffe's vocabulary

# Legacy V1LayerParameter type enums and the layer type each names.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}  # fmt: skip

# Training-only layers: an inference graph leaves them (and the blobs only they produce) out.
TRAINING_ONLY_TYPES = frozenset({
    "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "ContrastiveLoss", "Accuracy", "Silence", "HDF5Output",
})  # fmt: skip

DATA_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "DummyData"})

# Fields of LayerParameter netspec reads itself or that do not affect inference.
_LAYER_FIELDS = frozenset({
    "name", "type", "bottom", "top", "include", "exclude", "phase", "param", "blobs_lr",
    "weight_decay", "loss_weight", "propagate_down", "transform_param", "blobs", "blob_share_mode",
    "loss_param", "accuracy_param", "data_param", "image_data_param", "hdf5_data_param",
    "window_data_param", "memory_data_param", "dummy_data_param", "hdf5_output_param",
})  # fmt: skip

# Parameters inside *_param blocks that say how to train or which engine to use: read, unused.
_TRAINING_FIELDS = frozenset({
    "engine", "force_nd_im2col", "scale_train", "stable_prod_grad",
})  # fmt: skip

# Caffe's FillerParameter fields: read as the layer's initialiser where its netspec type declares
# that filler (Convolution, InnerProduct...), skipped elsewhere (netspec initialises it itself).
_FILLER_FIELDS = frozenset({"weight_filler", "bias_filler", "filler", "scale_filler", "shift_filler"})

# How a Caffe layer type differs from netspec's type of the same name, as parameters.
_CAFFE_SEMANTICS: dict[str, dict[str, Value]] = {
    # Caffe's BatchNorm has no affine part (a Scale layer follows) and stores a third blob.
    "BatchNorm": {"affine": False, "caffe_scale_factor": True},
}

# Per-axis pairs Caffe spells as two fields: kernel_h + kernel_w -> kernel_size [h, w].
_AXIS_PAIRS = {
    "kernel_h": ("kernel_size", 0), "kernel_w": ("kernel_size", 1),
    "pad_h": ("pad", 0), "pad_w": ("pad", 1),
    "stride_h": ("stride", 0), "stride_w": ("stride", 1),
}  # fmt: skip


@dataclass
class _Rule:
    """A NetStateRule: does a layer belong to the net in ``phase`` (no stages, level 0)?"""

    message: TextMessage

    def matches(self, phase: str) -> bool:
        rule_phase = self.message.scalar("phase")
        if rule_phase is not None and _word(rule_phase) != phase:
            return False
        if self.message.all("stage"):
            return False
        return self.message.scalar("min_level", 0) <= 0 <= self.message.scalar("max_level", 0)


def _word(value: Any) -> str:
    return value.text if isinstance(value, Word) else str(value)


def _included(layer: TextMessage, phase: str) -> bool:
    includes = [f.value for f in layer.all("include") if isinstance(f.value, TextMessage)]
    excludes = [f.value for f in layer.all("exclude") if isinstance(f.value, TextMessage)]
    legacy_phase = layer.scalar("phase")
    if legacy_phase is not None and _word(legacy_phase) != phase:
        return False
    if includes:
        return any(_Rule(rule).matches(phase) for rule in includes)
    return not any(_Rule(rule).matches(phase) for rule in excludes)


def _to_value(scalar: Any) -> Value:
    if isinstance(scalar, Word):
        lowered = scalar.text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return Symbol(scalar.text)
    if isinstance(scalar, tuple):
        return tuple(_to_value(s) for s in scalar)
    return scalar


# ---------------------------------------------------------------- building the graph


@dataclass
class _CaffeReader:
    """The graph being built from a net's messages: its nodes so far, each blob's latest
    tensor, the layer names taken and the warnings given."""

    source: SourceFile
    phase: str
    input_shapes: Mapping[str, tuple[Dim, ...]]  # as --input gives them; add_input checks them
    nodes: list[Node] = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)  # blob -> its latest tensor
    tensors: set[str] = field(default_factory=set)
    layer_names: dict[str, SourceSpan] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    all_blob_names: set[str] = field(default_factory=set)

    # -- inputs ------------------------------------------------------------------------------
    def add_input(
        self, name: str, tensor: str, given: Sequence[int | TextField] | None, span: SourceSpan
    ) -> None:
        """An input node; ``given`` holds the dims as written (fields point a diagnostic at the
        bad one) or as derived (integers), and --input overrides it."""
        dims: Sequence[object] | None = None
        if tensor in self.input_shapes:
            dims = self.input_shapes[tensor]
        elif given is not None:
            dims = [d.value if isinstance(d, TextField) else d for d in given]
            for written, value in zip(given, dims, strict=True):
                if isinstance(written, TextField) and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 1
                ):
                    raise error(
                        f"input '{tensor}' has the dimension {value} in its shape {list(dims)}; "
                        "dimensions are positive integers",
                        written.value_span,
                    )
        if dims is None:
            raise error(
                f"the shape of input '{tensor}' is not in the file",
                span,
                hint=f"give it on the command line: --input {tensor}:1x3x224x224",
            )
        sizes = [d for d in dims if isinstance(d, int) and not isinstance(d, bool) and d >= 1]
        if not dims or len(sizes) != len(dims):
            raise error(f"input '{tensor}' has an invalid shape {list(dims)}", span)
        if tensor in self.current:
            raise error(
                f"input '{tensor}' is a blob an earlier layer or input already wrote",
                span,
                hint="every input needs its own blob name",
            )
        # The declared batch (often 10 in deploy files) is Caffe's test batch, not part of the
        # architecture: it becomes the symbolic N that --batch fixes.
        shape: tuple[Value, ...] = (Symbol(BATCH_SYMBOL), *sizes[1:])
        layer = build_layer(InputLayer, {"shape": RawParam(shape)}, span)
        self.add_node(Node(name, layer, (), (tensor,), span), {tensor: tensor}, span)

    def top_level_inputs(self, net: TextMessage) -> None:
        names = net.all("input")
        shapes = [f.value for f in net.all("input_shape") if isinstance(f.value, TextMessage)]
        dims = net.all("input_dim")
        if dims and len(dims) != 4 * len(names):
            raise error(
                f"{len(names)} input(s) need {4 * len(names)} input_dim values, got {len(dims)}",
                net.all("input_dim")[0].key_span,
                hint="each input has four input_dim values: N, C, H, W",
            )
        for index, entry in enumerate(names):
            name = str(entry.value)
            if shapes:
                chosen = shapes[index] if index < len(shapes) else None
                shape = chosen.all("dim") if chosen else None
            elif dims:
                shape = dims[4 * index : 4 * index + 4]
            else:
                shape = None
            self.add_input(name, name, shape, entry.value_span)

    def data_layer(self, layer: TextMessage, name: str, tops: list[str], span: SourceSpan,
                   consumed: set[str]) -> None:  # fmt: skip
        shapes = _data_shapes(layer, len(tops))
        for index, top in enumerate(tops):
            if index > 0 and top not in consumed:
                continue  # labels feed only the loss layers an inference graph leaves out
            node_name = name if index == 0 else f"{name}.{top}"
            self.add_input(node_name, top, shapes[index], span)

    # -- layers ---------------------------------------------------------------------------------
    def unique_name(self, name: str, span: SourceSpan) -> str:
        """``name``, or for a layer name used before (BVLC Caffe accepts that: tops define the
        graph) the first free ``name_2``, ``name_3``... with a warning: emitted names stay unique."""
        if name not in self.layer_names:
            return name
        number = 2
        while f"{name}_{number}" in self.layer_names:
            number += 1
        renamed = f"{name}_{number}"
        self.warnings.append(
            Diagnostic(
                f"the layer name '{name}' is used again (first at {self.layer_names[name].location}); "
                f"this layer is named '{renamed}'",
                span,
                severity="warning",
                hint="weights are matched by layer name: trained weights named "
                f"'{name}' go to the first layer",
            )
        )
        return renamed

    def add_node(self, node: Node, blobs: Mapping[str, str], span: SourceSpan) -> None:
        self.layer_names[node.name] = span
        self.nodes.append(node)
        self.tensors.update(node.outputs)
        self.current.update(blobs)

    def resolve_bottoms(self, bottoms: list[TextField], layer_name: str) -> tuple[str, ...]:
        tensors = []
        for bottom in bottoms:
            blob = str(bottom.value)
            if blob not in self.current:
                hint = did_you_mean(blob, self.current)
                raise error(
                    f"layer '{layer_name}' reads blob '{blob}', which no earlier layer writes"
                    + (f"; {hint}" if hint else ""),
                    bottom.value_span,
                )
            tensors.append(self.current[blob])
        return tuple(tensors)

    def output_tensors(self, layer_name: str, tops: list[TextField], bottoms: list[str]) -> list[str]:
        """SSA names: a first write keeps the blob's name; an in-place write (top == bottom)
        is a new tensor named after the layer (or ``blob/layer`` if that name is taken)."""
        names: list[str] = []
        for top in tops:
            blob = str(top.value)
            if blob not in self.current:
                names.append(blob)
                continue
            if blob not in bottoms:
                raise error(
                    f"layer '{layer_name}' writes blob '{blob}', which an earlier layer already wrote",
                    top.value_span,
                    hint="only in-place layers (top equal to bottom) may write a blob again",
                )
            candidate = layer_name
            if candidate in self.tensors or candidate in self.all_blob_names or candidate in names:
                candidate = f"{blob}/{layer_name}"
            names.append(candidate)
        return names

    def add_entry(self, entry: _LayerEntry, consumed: set[str]) -> None:
        """The nodes for one layer of the phase: inputs for a data or Input layer (``consumed``:
        the blobs later layers read), else the layer itself."""
        _check_distinct_tops(entry.layer, entry.name)
        name = self.unique_name(entry.name, entry.span)
        tops = [str(t.value) for t in entry.layer.all("top")]
        if entry.type in DATA_TYPES or _is_fork_data_layer(entry.layer, entry.type, self.input_shapes):
            self.data_layer(entry.layer, name, tops, entry.span, consumed)
        elif entry.type == "Input":
            shapes = _input_layer_shapes(entry.layer, len(tops), entry.span)
            for index, (top, shape) in enumerate(zip(tops, shapes, strict=True)):
                self.add_input(name if index == 0 else f"{name}.{top}", top, shape, entry.span)
        else:
            self.add_layer(entry.layer, entry.type, name, entry.span)

    def graph(self, net: TextMessage) -> Graph:
        """The Graph of the nodes read: its outputs are the tensors no layer reads."""
        read = {t for node in self.nodes for t in node.inputs}
        outputs = tuple(t for node in self.nodes if node.inputs for t in node.outputs if t not in read)
        name = net.scalar("name") or Path(self.source.path).stem
        return Graph(
            name=str(name),
            nodes=tuple(self.nodes),
            outputs=outputs,
            source_path=self.source.path,
            source_text=self.source.text,
            metadata=(("caffe_phase", self.phase),),
            warnings=tuple(self.warnings),
        )

    def add_layer(self, layer: TextMessage, layer_type: str, name: str, span: SourceSpan) -> None:
        layer_class = LAYER_TYPES.get(layer_type)
        if layer_class is None:
            hint = did_you_mean(layer_type, LAYER_TYPES)
            type_field = layer.first("type")
            raise error(
                f"layer '{name}' has type '{layer_type}', which netspec does not support"
                + (f"; {hint}" if hint else ""),
                type_field.value_span if type_field else span,
                hint=_unknown_type_hint(layer, hint),
            )
        bottoms = layer.all("bottom")
        tops = layer.all("top")
        inputs = self.resolve_bottoms(bottoms, name)
        outputs = self.output_tensors(name, tops, [str(b.value) for b in bottoms])
        raw = _layer_params(layer, layer_type, self.warnings)
        _check_known(layer_class, raw)
        for key, value in _CAFFE_SEMANTICS.get(layer_type, {}).items():
            raw.setdefault(key, RawParam(value))
        built = build_layer(layer_class, raw, span, name, output_count=len(outputs) or None)
        if not outputs:
            raise error(f"layer '{name}' has no top", span, hint="name its output blob with 'top:'")
        array_names, frozen = _array_settings(layer)
        node = Node(
            name,
            built,
            inputs,
            tuple(outputs),
            span,
            param_spans=tuple((k, v.value_span) for k, v in raw.items() if v.value_span is not None),
            array_names=array_names,
            frozen_arrays=frozen,
        )
        self.add_node(node, {str(t.value): o for t, o in zip(tops, outputs, strict=True)}, span)


def _unknown_type_hint(layer: TextMessage, did_you_mean_hint: str | None) -> str | None:
    tops = layer.all("top")
    if not layer.all("bottom") and tops:
        return (
            "a layer that reads no blob is a data layer: give its shape with "
            f"--input {tops[0].value}:1x3x224x224 and netspec reads it as an input"
        )
    return None if did_you_mean_hint else "supported layer types are listed in docs/language.md"


def _layer_params(layer: TextMessage, layer_type: str, warnings: list[Diagnostic]) -> dict[str, RawParam]:
    """The layer's *_param blocks flattened into netspec parameters."""
    written: dict[str, list[tuple[ParamValue, TextField]]] = {}
    pairs: dict[str, dict[int, TextField]] = {}
    declared = {f.name for f in schema(LAYER_TYPES[layer_type])}
    for block in layer.fields:
        if block.key in _LAYER_FIELDS:
            continue
        if not block.key.endswith("_param") or not isinstance(block.value, TextMessage):
            raise error(
                f"layer field '{block.key}' is not one netspec knows",
                block.key_span,
                hint="a layer has name, type, bottom, top, include/exclude, param and *_param blocks",
            )
        for item in block.value.fields:
            if item.key in _TRAINING_FIELDS or (item.key in _FILLER_FIELDS and item.key not in declared):
                continue
            if item.key in _AXIS_PAIRS:
                target, axis = _AXIS_PAIRS[item.key]
                pairs.setdefault(target, {})[axis] = item
                continue
            raw_value: ParamValue
            if isinstance(item.value, TextMessage):
                raw_value = _nested_param(item, layer_type)
            else:
                raw_value = _to_value(item.value)
            key, raw_value = _rename(layer_type, item.key, raw_value, item, warnings)
            written.setdefault(key, []).append((raw_value, item))
    if any(value is False for value, _ in written.get("bias_term", ())):
        written.pop("bias_filler", None)  # Caffe reads it only for a layer with a bias
    # A field written more than once (kernel_size: 3 kernel_size: 5) is the list of its values.
    raw = {
        key: RawParam(
            values[0][0] if len(values) == 1 else tuple(v for v, _ in values),
            values[0][1].key_span,
            values[0][1].value_span,
        )
        for key, values in written.items()
    }
    for target, axes in pairs.items():
        if target in raw:
            raise error(
                f"'{target}' and its per-axis form are both given",
                axes[min(axes)].key_span,
                hint=f"give either '{target}' or its _h/_w fields",
            )
        if set(axes) != {0, 1}:
            missing = "w" if 0 in axes else "h"
            only = axes[min(axes)]
            raise error(f"'{only.key}' needs its partner '{target.split('_')[0]}_{missing}'", only.key_span)
        values = tuple(_to_value(axes[i].value) for i in (0, 1))
        raw[target] = RawParam(values, axes[0].key_span, axes[0].value_span)
    return raw


def _check_known(layer_class: type[Layer], raw: Mapping[str, RawParam]) -> None:
    """Unknown parameters, with "did you mean" over netspec's names and Caffe's spellings."""
    known = [f.name for f in schema(layer_class)]
    for key, given in raw.items():
        if key not in known:
            hint = did_you_mean(key, [*known, *_AXIS_PAIRS, "concat_dim"])
            raise error(
                f"{layer_class.type_name} has no parameter '{key}'" + (f"; {hint}" if hint else ""),
                given.key_span,
                hint=None if hint else f"{layer_class.type_name} parameters: {', '.join(known)}",
            )


def _rename(layer_type: str, key: str, value: ParamValue, item: TextField,
            warnings: list[Diagnostic]) -> tuple[str, ParamValue]:  # fmt: skip
    """Caffe spellings that netspec names differently."""
    if key == "concat_dim":  # ConcatParameter's legacy name for axis
        return "axis", value
    if layer_type == "Pooling" and key == "ceil_mode":
        # A field of the Caffe forks (SegNet, PSPNet), not of BVLC Caffe.
        warnings.append(
            Diagnostic(
                "'ceil_mode' is a field of Caffe forks; read as round_mode: "
                + ("CEIL" if value else "FLOOR"),
                item.key_span,
                severity="warning",
            )
        )
        return "round_mode", Symbol("CEIL" if value else "FLOOR")
    return key, value


def _message(message: TextMessage) -> Message:
    """A nested message as a parameter value, for the layer's schema to check."""
    return Message(
        tuple(
            (
                item.key,
                RawParam(
                    _message(item.value) if isinstance(item.value, TextMessage) else _to_value(item.value),
                    item.key_span,
                    item.value_span,
                ),
            )
            for item in message.fields
        )
    )


def _nested_param(item: TextField, layer_type: str) -> ParamValue:
    message = item.value
    assert isinstance(message, TextMessage)
    if item.key in _FILLER_FIELDS:
        return _message(message)
    if item.key == "shape":
        return tuple(_to_value(f.value) for f in message.all("dim"))
    raise error(
        f"{layer_type} parameter '{item.key}' is a message netspec does not read",
        item.key_span,
    )


def _array_settings(layer: TextMessage) -> tuple[tuple[str | None, ...], tuple[int, ...]]:
    """Shared names and frozen flags per stored array, from ``param { name lr_mult }`` (and the
    V1 forms ``param: "name"`` and ``blobs_lr``)."""
    settings = []
    for entry in layer.all("param"):
        if isinstance(entry.value, TextMessage):
            shared = entry.value.scalar("name")
            settings.append(ArraySetting(str(shared) if shared else None, entry.value.scalar("lr_mult", 1)))
        else:
            settings.append(ArraySetting(str(entry.value)))
    for index, entry in enumerate(layer.all("blobs_lr")):
        if entry.value == 0:
            if index >= len(settings):
                settings.extend(ArraySetting() for _ in range(index + 1 - len(settings)))
            settings[index] = replace(settings[index], lr_mult=0)
    return array_settings(settings)


def _data_shapes(layer: TextMessage, count: int) -> list[Sequence[Any] | None]:
    """What a data layer says of its tops' shapes (None where it says nothing): integers, or
    the ``dim`` fields as written."""
    shapes: list[Sequence[Any] | None] = [None] * count
    transform = layer.scalar("transform_param")
    crop = transform.scalar("crop_size") if isinstance(transform, TextMessage) else None
    memory = layer.scalar("memory_data_param")
    dummy = layer.scalar("dummy_data_param")
    image = layer.scalar("image_data_param")
    channels = 1 if isinstance(image, TextMessage) and image.scalar("is_color") == Word("false") else 3
    if crop:
        shapes[0] = [1, channels, crop, crop]
    elif isinstance(memory, TextMessage):
        shapes[0] = [memory.scalar(k, 1) for k in ("batch_size", "channels", "height", "width")]
    elif isinstance(dummy, TextMessage):
        for index, entry in enumerate(dummy.all("shape")[:count]):
            if isinstance(entry.value, TextMessage):
                shapes[index] = entry.value.all("dim")
    elif isinstance(image, TextMessage) and image.scalar("new_height") and image.scalar("new_width"):
        shapes[0] = [1, channels, image.scalar("new_height"), image.scalar("new_width")]
    return shapes


def _input_layer_shapes(layer: TextMessage, tops: int, span: SourceSpan) -> list[list[TextField] | None]:
    param = layer.scalar("input_param")
    shapes = [f.value for f in param.all("shape")] if isinstance(param, TextMessage) else []
    if len(shapes) not in (0, 1, tops):
        raise error(f"an Input layer with {tops} tops needs 1 or {tops} shapes, got {len(shapes)}", span)
    if not shapes:
        return [None] * tops
    dims: list[list[TextField] | None] = [
        shape.all("dim") for shape in shapes if isinstance(shape, TextMessage)
    ]
    return dims * tops if len(dims) == 1 else dims


def _check_distinct_tops(layer: TextMessage, name: str) -> None:
    seen: set[str] = set()
    for top in layer.all("top"):
        blob = str(top.value)
        if blob in seen:
            raise error(
                f"layer '{name}' names the top '{blob}' twice; a layer's tops need distinct names",
                top.value_span,
            )
        seen.add(blob)


def _is_fork_data_layer(layer: TextMessage, layer_type: str, input_shapes: Mapping[str, object]) -> bool:
    """Whether ``layer`` is a data layer of a type netspec does not know (a fork's, such as
    SegNet's DenseImageData) whose first top's shape ``--input`` gives: it reads no blob, so
    it can only be an input."""
    tops = layer.all("top")
    return (
        layer_type not in LAYER_TYPES
        and not layer.all("bottom")
        and bool(tops)
        and str(tops[0].value) in input_shapes
    )


def _layer_type(layer: TextMessage, span: SourceSpan) -> str:
    type_field = layer.first("type")
    if type_field is None:
        raise error("a layer needs a 'type'", span)
    value = type_field.value
    if isinstance(value, Word):  # V1 enum
        if value.text not in V1_TYPES:
            # Caffe forks add enum values of their own (CROP, UPSAMPLE): the layer type of the
            # same name without underscores, when netspec has one.
            folded = value.text.replace("_", "").lower()
            fork = next((t for t in LAYER_TYPES if t.lower() == folded), None)
            if fork is not None:
                return fork
            hint = did_you_mean(value.text, V1_TYPES)
            raise error(f"unknown legacy layer type {value.text}" + (f"; {hint}" if hint else ""),
                        type_field.value_span)  # fmt: skip
        return V1_TYPES[value.text]
    return str(value)


def read_caffe(
    source: SourceFile,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
) -> Graph:
    """A Caffe prototxt as a netspec Graph for ``phase`` (TEST: the deploy/inference net)."""
    net = parse_prototxt(source)
    _check_net_fields(net)
    layer_fields = [f for f in net.fields if f.key in ("layer", "layers")]
    reader = _CaffeReader(source, phase, dict(input_shapes or {}), all_blob_names=_top_blobs(layer_fields))
    reader.top_level_inputs(net)
    layers = _phase_layers(layer_fields, phase)
    consumed = {
        str(b.value) for entry in layers if entry.type not in DATA_TYPES for b in entry.layer.all("bottom")
    }
    for entry in layers:
        reader.add_entry(entry, consumed)
    if not reader.nodes:
        raise error("the file defines no layers for phase " + phase, SourceSpan(source, 1, 1, 1, 1))
    return reader.graph(net)


_NET_FIELDS = frozenset({
    "layer", "layers", "name", "input", "input_dim", "input_shape", "force_backward", "state", "debug_info",
})  # fmt: skip


def _check_net_fields(net: TextMessage) -> None:
    """Refuse a top-level field that NetParameter does not have (a typo of ``layers``...)."""
    for entry in net.fields:
        if entry.key not in _NET_FIELDS:
            hint = did_you_mean(entry.key, ("layer", "layers", "input", "input_dim", "input_shape"))
            raise error(f"'{entry.key}' is not a field of a Caffe net" + (f"; {hint}" if hint else ""),
                        entry.key_span)  # fmt: skip


def _top_blobs(layer_fields: Sequence[TextField]) -> set[str]:
    """Every blob any layer writes, in any phase (an in-place tensor's name must avoid them)."""
    return {
        str(top.value) for f in layer_fields if isinstance(f.value, TextMessage) for top in f.value.all("top")
    }


@dataclass(frozen=True)
class _LayerEntry:
    """A layer of the net in the phase read: its message, netspec type, name and where it is."""

    layer: TextMessage
    type: str
    name: str
    span: SourceSpan


def _phase_layers(layer_fields: Sequence[TextField], phase: str) -> list[_LayerEntry]:
    """The layers that belong to the net in ``phase``, less the training-only ones (losses,
    accuracy); an unnamed layer is named after its type and position among them."""
    kept: list[_LayerEntry] = []
    for entry in layer_fields:
        layer = entry.value
        if not isinstance(layer, TextMessage):
            raise error(f"'{entry.key}' must be a message '{entry.key} {{ ... }}'", entry.key_span)
        name_field = layer.first("name")
        span = name_field.value_span if name_field else entry.key_span
        layer_type = _layer_type(layer, span)
        name = str(name_field.value) if name_field else f"{layer_type.lower()}{len(kept) + 1}"
        if _included(layer, phase) and layer_type not in TRAINING_ONLY_TYPES:
            kept.append(_LayerEntry(layer, layer_type, name, span))
    return kept
