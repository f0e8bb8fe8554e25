"""What a layer type is: a parameter schema, a shape rule, counts, ONNX emission and a float64
numpy reference, all on one registered class. Adding a layer type means adding one such class.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from netspec.diagnostics import SourceSpan, did_you_mean, error
from netspec.expr import Symbol, TensorRef, Value, describe
from netspec.graph import TensorType

if TYPE_CHECKING:
    from netspec.export.onnx import NodeEmitter

# ---------------------------------------------------------------- errors raised by layer rules


class LayerError(Exception):
    """A layer's rule refused its inputs or parameters; the infer stage adds the location.

    ``param`` names the parameter at fault so the diagnostic can point at where it was written.
    """

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.hint = hint


# ---------------------------------------------------------------- parameter kinds


class Kind:
    """How a parameter's spec value is checked and converted to its Python value."""

    description = "a value"

    def convert(self, value: Value) -> Any:
        raise NotImplementedError

    def reject(self, value: Value) -> LayerError:
        return LayerError(f"expected {self.description}, got {describe(value)}")


def _as_int(value: Value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass(frozen=True)
class Int(Kind):
    min: int | None = None
    max: int | None = None

    @property
    def description(self) -> str:  # type: ignore[override]
        return _range_text("an integer", self.min, self.max)

    def convert(self, value: Value) -> int:
        number = _as_int(value)
        if number is None or not _within(number, self.min, self.max):
            raise self.reject(value)
        return number


@dataclass(frozen=True)
class Float(Kind):
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False

    @property
    def description(self) -> str:  # type: ignore[override]
        text = _range_text("a number", self.min, self.max)
        return text.replace(">=", ">") if self.exclusive_min else text

    def convert(self, value: Value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.reject(value)
        number = float(value)
        if not math.isfinite(number) or not _within(number, self.min, self.max):
            raise self.reject(value)
        if self.exclusive_min and self.min is not None and number == self.min:
            raise self.reject(value)
        return number


@dataclass(frozen=True)
class Bool(Kind):
    description = "true or false"

    def convert(self, value: Value) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, Symbol) and value.name.lower() in ("true", "false"):
            return value.name.lower() == "true"
        raise self.reject(value)


@dataclass(frozen=True)
class Enum(Kind):
    choices: tuple[str, ...]

    @property
    def description(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.choices)

    def convert(self, value: Value) -> str:
        word = value.name if isinstance(value, (Symbol, TensorRef)) else value
        if isinstance(word, str):
            if word in self.choices:
                return word
            if word.upper() in self.choices:
                return word.upper()
            hint = did_you_mean(word, self.choices)
            raise LayerError(f"expected {self.description}, got '{word}'", hint=hint)
        raise self.reject(value)


@dataclass(frozen=True)
class Str(Kind):
    description = "a string"

    def convert(self, value: Value) -> str:
        if isinstance(value, (Symbol, TensorRef)):
            return value.name
        if isinstance(value, str):
            return value
        raise self.reject(value)


@dataclass(frozen=True)
class Spatial(Kind):
    """A per-axis integer: one value for both axes, or ``[h, w]``."""

    min: int = 1

    @property
    def description(self) -> str:  # type: ignore[override]
        return _range_text("an integer", self.min, None) + " or a list [h, w] of them"

    def convert(self, value: Value) -> tuple[int, int]:
        items = value if isinstance(value, tuple) else (value, value)
        if len(items) == 1:
            items = (items[0], items[0])
        numbers = [_as_int(v) for v in items]
        if len(numbers) != 2 or any(n is None or n < self.min for n in numbers):
            raise self.reject(value)
        return (numbers[0], numbers[1])  # type: ignore[return-value]


@dataclass(frozen=True)
class Padding(Kind):
    """Zero padding: one value, ``[h, w]``, or ``[top, left, bottom, right]``."""

    description = "a non-negative integer, [h, w], or [top, left, bottom, right]"

    def convert(self, value: Value) -> tuple[int, int, int, int]:
        items = value if isinstance(value, tuple) else (value,)
        numbers = [_as_int(v) for v in items]
        if any(n is None or n < 0 for n in numbers) or len(numbers) not in (1, 2, 4):
            raise self.reject(value)
        if len(numbers) == 1:
            numbers = numbers * 4
        elif len(numbers) == 2:
            numbers = numbers * 2
        return tuple(numbers)  # type: ignore[return-value]


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of values of one kind (a single value is a list of one)."""

    item: Kind
    min_length: int = 0

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"a list of values, each {self.item.description}"

    def convert(self, value: Value) -> tuple[Any, ...]:
        items = value if isinstance(value, tuple) else (value,)
        if len(items) < self.min_length:
            raise self.reject(value)
        try:
            return tuple(self.item.convert(v) for v in items)
        except LayerError:
            raise self.reject(value) from None


@dataclass(frozen=True)
class Shape(Kind):
    """Tensor dimensions: positive integers, or names for symbolic dimensions such as ``N``."""

    description = "a list of positive integers or dimension names"

    def convert(self, value: Value) -> tuple[int | str, ...]:
        if not isinstance(value, tuple) or not value:
            raise self.reject(value)
        dims: list[int | str] = []
        for item in value:
            number = _as_int(item)
            if number is not None and number > 0:
                dims.append(number)
            elif isinstance(item, Symbol):
                dims.append(item.name)
            else:
                raise self.reject(value)
        return tuple(dims)


def _within(number: float, low: float | None, high: float | None) -> bool:
    return (low is None or number >= low) and (high is None or number <= high)


def _range_text(noun: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    if low == 1 and noun == "an integer":
        return "a positive integer"
    if low == 0 and noun == "an integer":
        return "a non-negative integer"
    if low is not None:
        return f"{noun} >= {low}"
    if high is not None:
        return f"{noun} <= {high}"
    return noun


REQUIRED: Any = dataclasses.MISSING


def param(kind: Kind, default: Any = REQUIRED, doc: str = "") -> Any:
    """Declare a layer parameter in a ``Params`` dataclass: its kind, spec default and meaning."""
    metadata = {"kind": kind, "doc": doc, "spec_default": default}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if default is None:  # optional: absent unless written
        return dataclasses.field(default=None, metadata=metadata)
    return dataclasses.field(default=kind.convert(default), metadata=metadata)


@dataclass(frozen=True)
class NoParams:
    """A layer type without parameters."""


# ---------------------------------------------------------------- what a layer stores


@dataclass(frozen=True)
class ParamSpec:
    """One stored array of a layer: ``weight``, ``bias``, ``running_mean``...

    ``learnable`` separates params from buffers (DESIGN.md §5); ``init`` names the default
    initialiser (``he``, ``zeros``, ``ones``, ``constant:0.25``) and ``fan_in`` its scale.
    """

    name: str
    shape: tuple[int, ...]
    learnable: bool = True
    init: str = "he"
    fan_in: int = 1

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Window:
    """How one spatial axis of a layer's output reads its input: the kernel's extent
    (dilation included), the stride and the leading padding (for receptive fields)."""

    kernel: int
    stride: int
    pad: int


IDENTITY_WINDOW = Window(1, 1, 0)


@dataclass(frozen=True)
class Arity:
    """How many input tensors a layer takes."""

    min: int = 1
    max: int | None = 1

    def describe(self) -> str:
        if self.max == self.min:
            return f"exactly {self.min} input{'s' if self.min != 1 else ''}"
        if self.max is None:
            return f"at least {self.min} inputs"
        return f"{self.min} to {self.max} inputs"

    def accepts(self, count: int) -> bool:
        return count >= self.min and (self.max is None or count <= self.max)


class Layer:
    """Base of every layer type. Subclasses set ``type_name``, ``Params`` and override the rules.

    The class docstring of a layer states its counting formula; ``docs/language.md`` lists them.
    """

    type_name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    arity: ClassVar[Arity] = Arity()

    def __init__(self, params: Any, output_count: int = 1) -> None:
        self.params = params
        self.output_count = output_count

    def output_arity(self) -> Arity:
        """How many output tensors the layer can produce with its parameters (one by default;
        Slice, Split and max pooling with its argmax mask produce more)."""
        return Arity(1, 1)

    def __repr__(self) -> str:
        return f"{self.type_name}({self.params})"

    # -- shape rule -------------------------------------------------------------------------
    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        raise NotImplementedError

    # -- stored arrays and counts -------------------------------------------------------------
    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        return ()

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        """Multiply-accumulates (DESIGN.md §5: conv, fully connected and matmul layers only)."""
        return 0

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        """All floating-point operations, by the rule in the class docstring."""
        return 0

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        """Per-axis (H, W) window for receptive fields; None where the output is not spatial.

        The default suits layers that keep the spatial grid (activations, normalisation,
        merges): identity when every input and output is 4-D with the same H and W.
        """
        tensors = [*inputs, *outputs]
        if all(t.rank == 4 for t in tensors) and len({t.dims[2:] for t in tensors}) == 1:
            return (IDENTITY_WINDOW, IDENTITY_WINDOW)
        return None

    # -- ONNX and reference semantics ------------------------------------------------------------
    def emit(self, node: NodeEmitter) -> None:
        raise NotImplementedError

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The layer's float64 numpy semantics: the oracle the ONNX output is checked against."""
        raise NotImplementedError


LAYER_TYPES: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer type known by its ``type_name``."""
    if cls.type_name in LAYER_TYPES:
        raise RuntimeError(f"layer type {cls.type_name} registered twice")
    LAYER_TYPES[cls.type_name] = cls
    return cls


def schema(layer_type: type[Layer]) -> list[dataclasses.Field[Any]]:
    """The declared parameters of a layer type, in declaration order."""
    return list(dataclasses.fields(layer_type.Params))


@dataclass(frozen=True)
class RawParam:
    """A parameter as written in a spec, before its kind checked it."""

    value: Value
    key_span: SourceSpan | None = None
    value_span: SourceSpan | None = None


def build_layer(
    layer_type: type[Layer],
    raw: Mapping[str, RawParam],
    span: SourceSpan | None,
    name: str | None = None,
    output_count: int | None = None,
) -> Layer:
    """Check ``raw`` against the layer type's schema and build the layer, or raise a diagnostic.

    ``output_count`` is the number of output tensors the spec names (``top:``); without it the
    layer produces the smallest number it can.
    """
    fields = {f.name: f for f in schema(layer_type)}
    values: dict[str, Any] = {}
    for key, given in raw.items():
        spec_field = fields.get(key)
        if spec_field is None:
            hint = did_you_mean(key, fields)
            message = f"{layer_type.type_name} has no parameter '{key}'"
            if hint:
                message += f"; {hint}"
                hint = None
            elif fields:
                hint = f"{layer_type.type_name} parameters: {', '.join(fields)}"
            else:
                hint = f"{layer_type.type_name} takes no parameters"
            raise error(message, given.key_span or span, hint=hint)
        kind: Kind = spec_field.metadata["kind"]
        try:
            values[key] = kind.convert(given.value)
        except LayerError as exc:
            raise error(
                f"{layer_type.type_name} parameter '{key}': {exc.message}",
                given.value_span or given.key_span or span,
                hint=exc.hint,
            ) from None
    missing = [name for name, f in fields.items() if name not in values and f.default is dataclasses.MISSING]
    if missing:
        raise error(
            f"{layer_type.type_name} needs parameter{'s' if len(missing) > 1 else ''} "
            + ", ".join(f"'{m}'" for m in missing),
            span,
        )
    try:
        params = layer_type.Params(**values)
        layer = layer_type(params)
        check = getattr(layer, "check", None)
        if check is not None:
            check()
        outputs = layer.output_arity()
        count = outputs.min if output_count is None else output_count
        if not outputs.accepts(count):
            raise LayerError(
                f"produces {outputs.describe().replace('input', 'output')}, but "
                f"{count} {'are' if count != 1 else 'is'} named",
                param="top",
            )
        layer.output_count = count
    except LayerError as exc:
        where = raw[exc.param].value_span if exc.param in raw else span
        subject = f"{layer_type.type_name} '{name}'" if name else layer_type.type_name
        raise error(f"{subject}: {exc.message}", where, hint=exc.hint) from None
    return layer


# ---------------------------------------------------------------- shared shape helpers


def expect_rank(tensor: TensorType, rank: int, what: str = "input") -> None:
    if tensor.rank != rank:
        raise LayerError(f"expects a {rank}-D {what} (N, C, H, W), got {tensor.rank}-D {tensor}")


def static_dim(tensor: TensorType, axis: int) -> int:
    value = tensor.dims[axis]
    if not isinstance(value, int):
        raise LayerError(f"needs a fixed size on axis {axis}, got '{value}' in {tensor}")
    return value


def spatial_numel(tensor: TensorType) -> int:
    """Elements per batch item (everything after axis 0), requiring static dims there."""
    return math.prod(static_dim(tensor, axis) for axis in range(1, tensor.rank))


def batch_size(tensor: TensorType) -> int:
    """The batch dimension as a count; a symbolic batch counts as one item."""
    return tensor.dims[0] if isinstance(tensor.dims[0], int) else 1


def numel(tensor: TensorType) -> int:
    return batch_size(tensor) * spatial_numel(tensor)


def normalize_axis(axis: int, tensor: TensorType, param: str = "axis") -> int:
    """``axis`` of ``tensor`` as a non-negative index; negative values count from the end."""
    if not -tensor.rank <= axis < tensor.rank:
        raise LayerError(
            f"{param} {axis} is out of range for the {tensor.rank}-D input {tensor} "
            f"(valid: {-tensor.rank} to {tensor.rank - 1})",
            param=param,
        )
    return axis % tensor.rank


def broadcast_shape(channels: int, rank: int, axis: int) -> tuple[int, ...]:
    """The shape that makes a per-channel vector broadcast against a rank-``rank`` tensor
    along ``axis``: ``[C, 1, 1]`` for axis 1 of a 4-D tensor (leading ones are implied)."""
    return aligned_shape((channels,), rank, axis)


def aligned_shape(dims: Sequence[Any], rank: int, axis: int) -> tuple[Any, ...]:
    """``dims`` followed by the ones that make an operand covering axes ``axis`` … of a
    rank-``rank`` tensor broadcast against it: ``[C, H]`` at axis 1 of 4-D gives ``[C, H, 1]``."""
    return (*dims, *(1,) * (rank - axis - len(dims)))
