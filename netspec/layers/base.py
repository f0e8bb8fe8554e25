"""What a layer type is: a parameter schema, a shape rule, counts, ONNX emission and a float64
numpy reference, all on one registered class. Adding a layer type means adding one such class.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from netspec.diagnostics import NetspecError, SourceSpan, did_you_mean, error
from netspec.expr import Symbol, TensorRef, Value, as_integer, describe
from netspec.graph import Dim, Node, TensorType
from netspec.lazy import numpy as np

# ---------------------------------------------------------------- errors raised by layer rules


class LayerError(Exception):
    """A layer's rule refused its inputs or parameters; the stage that ran the rule adds the
    location (:meth:`located`).

    ``param`` names the parameter at fault so the diagnostic can point at where it was written;
    ``span``, where given, points inside it (a field of a ``weight_filler { }`` block).
    """

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        hint: str | None = None,
        span: SourceSpan | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.hint = hint
        self.span = span

    def located(self, node: Node, detail: str = "") -> NetspecError:
        """This refusal as a diagnostic at ``node``'s spec: ``Type 'name': message``, pointing at
        the parameter at fault (``detail``, e.g. the input shapes, is added when no parameter is)."""
        return error(
            f"{node.type} '{node.name}': {self.message}{detail if self.param is None else ''}",
            node.param_span(self.param),
            hint=self.hint,
            trace=node.trace,
        )


# ---------------------------------------------------------------- parameter kinds


class Kind:
    """How a parameter's spec value is checked and converted to its Python value."""

    description = "a value"

    def convert(self, value: ParamValue) -> Any:
        raise NotImplementedError

    def reject(self, value: ParamValue) -> LayerError:
        return LayerError(f"expected {self.description}, got {describe(value)}")


@dataclass(frozen=True)
class Int(Kind):
    """An integer, optionally within [min, max] (a whole float such as 2.0 counts)."""

    min: int | None = None
    max: int | None = None

    @property
    def description(self) -> str:  # type: ignore[override]  # a property over Kind's class attribute
        return _range_text("an integer", self.min, self.max)

    def convert(self, value: ParamValue) -> int:
        number = as_integer(value)
        if number is None or not _within(number, self.min, self.max):
            raise self.reject(value)
        return number


@dataclass(frozen=True)
class Float(Kind):
    """A finite number, optionally within [min, max] (or above min)."""

    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False

    @property
    def description(self) -> str:  # type: ignore[override]  # a property over Kind's class attribute
        text = _range_text("a number", self.min, self.max)
        return text.replace(">=", ">") if self.exclusive_min else text

    def convert(self, value: ParamValue) -> float:
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
    """true or false (also as a word in any case, TRUE or False, as Caffe files write it)."""

    description = "true or false"

    def convert(self, value: ParamValue) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, Symbol) and value.name.lower() in ("true", "false"):
            return value.name.lower() == "true"
        raise self.reject(value)


@dataclass(frozen=True)
class Enum(Kind):
    """One of ``choices``, written as a word or a string."""

    choices: tuple[str, ...]

    @property
    def description(self) -> str:  # type: ignore[override]  # a property over Kind's class attribute
        return "one of " + ", ".join(self.choices)

    def convert(self, value: ParamValue) -> str:
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
    """A string (a bare word too)."""

    description = "a string"

    def convert(self, value: ParamValue) -> str:
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
    def description(self) -> str:  # type: ignore[override]  # a property over Kind's class attribute
        return _range_text("an integer", self.min, None) + " or a list [h, w] of them"

    def convert(self, value: ParamValue) -> tuple[int, int]:
        items = value if isinstance(value, tuple) else (value, value)
        if len(items) == 1:
            items = (items[0], items[0])
        numbers = [n for v in items if (n := as_integer(v)) is not None and n >= self.min]
        if len(items) != 2 or len(numbers) != 2:
            raise self.reject(value)
        return (numbers[0], numbers[1])


@dataclass(frozen=True)
class Padding(Kind):
    """Zero padding: one value, ``[h, w]``, or ``[top, left, bottom, right]``."""

    description = "a non-negative integer, [h, w], or [top, left, bottom, right]"

    def convert(self, value: ParamValue) -> tuple[int, int, int, int]:
        items = value if isinstance(value, tuple) else (value,)
        numbers = [n for v in items if (n := as_integer(v)) is not None and n >= 0]
        if len(numbers) != len(items) or len(numbers) not in (1, 2, 4):
            raise self.reject(value)
        if len(numbers) == 1:
            return (numbers[0],) * 4
        if len(numbers) == 2:
            return (numbers[0], numbers[1], numbers[0], numbers[1])
        return (numbers[0], numbers[1], numbers[2], numbers[3])


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of values of one kind (a single value is a list of one)."""

    item: Kind
    min_length: int = 0

    @property
    def description(self) -> str:  # type: ignore[override]  # a property over Kind's class attribute
        return f"a list of values, each {self.item.description}"

    def convert(self, value: ParamValue) -> tuple[Any, ...]:
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

    def convert(self, value: ParamValue) -> tuple[int | str, ...]:
        if not isinstance(value, tuple) or not value:
            raise self.reject(value)
        dims: list[int | str] = []
        for item in value:
            number = as_integer(item)
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
class LayerParams:
    """Base of every layer type's parameter schema: a frozen dataclass whose fields are declared
    with :func:`param` (the class ``Params`` nested in the layer class)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A docstring of its own, or @dataclass computes one from the class's signature, which
        # costs start-up ~0.1 ms per layer type.
        if cls.__doc__ is None:
            cls.__doc__ = f"The parameters of {cls.__qualname__.removesuffix('.Params')}."


@dataclass(frozen=True)
class NoParams(LayerParams):
    """A layer type without parameters."""


# The parameter schema a layer class is generic in: ``class Convolution(Layer["Convolution.Params"])``
# makes ``self.params.kernel_size`` a checked ``tuple[int, int]``.
P = TypeVar("P", bound=LayerParams)


# ---------------------------------------------------------------- initialisers (fillers)

VARIANCE_NORMS = ("FAN_IN", "FAN_OUT", "AVERAGE")


@dataclass(frozen=True)
class Filler:
    """How a stored array starts: Caffe's ``FillerParameter``, with Caffe's defaults (a block
    without ``type`` is ``constant`` 0, as in Caffe).

    ``constant`` fills ``value``; ``gaussian`` draws N(``mean``, ``std``²), and with
    ``sparse`` ≥ 0 keeps each value with probability sparse / shape[0]; ``uniform`` draws
    U(``min``, ``max``); ``positive_unitball`` draws U(0, 1) and scales each of the shape[0]
    slices to sum 1; ``xavier`` draws U(−√(3/n), √(3/n)) and ``msra`` N(0, 2/n), where n is
    ``variance_norm`` of the fans fan_in = count / shape[0], fan_out = count / shape[1]
    (AVERAGE: their mean); ``bilinear`` is Caffe's upsampling kernel for square k×k kernels,
    f = ⌈k/2⌉, c = (2f − 1 − f mod 2) / 2f, w(y, x) = (1 − |x/f − c|)(1 − |y/f − c|).
    ``he_uniform`` (netspec's default for weights, not written in specs) draws
    U(−√(6/fan_in), √(6/fan_in)). Fields a type does not read are ignored, as Caffe does.
    """

    type: str = "constant"
    value: float = 0.0
    min: float = 0.0
    max: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    sparse: int = -1
    variance_norm: str = "FAN_IN"

    def spec_text(self) -> str:
        """The filler as a ``.net`` block: its type, and the fields that differ from Caffe's defaults."""
        from netspec.expr import render

        fields = [
            f"{f.name}: {value if f.name == 'variance_norm' else render(value)}"
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) != f.default or f.name == "type"
        ]
        return "{ " + "  ".join(fields) + " }"


HE_UNIFORM = Filler("he_uniform")
ZEROS = Filler("constant", 0.0)
ONES = Filler("constant", 1.0)

# The filler types and the fields each reads; Caffe ignores the others (files often carry a stray
# 'std' on a xavier filler), and so does netspec, so that equal fillers compare equal.
_FILLER_USES = {
    "constant": ("value",),
    "gaussian": ("mean", "std", "sparse"),
    "positive_unitball": (),
    "uniform": ("min", "max"),
    "xavier": ("variance_norm",),
    "msra": ("variance_norm",),
    "bilinear": (),
}

# The fields of a filler block and how each is checked.
_FILLER_FIELDS: dict[str, Kind] = {
    "type": Enum(tuple(_FILLER_USES)),
    "value": Float(),
    "min": Float(),
    "max": Float(),
    "mean": Float(),
    "std": Float(min=0),
    "sparse": Int(min=-1),
    "variance_norm": Enum(VARIANCE_NORMS),
}


@dataclass(frozen=True)
class FillerBlock(Kind):
    """A filler written as a block: ``weight_filler { type: "msra"  variance_norm: FAN_OUT }``."""

    description = 'a filler block { type: "..." ... }'

    def convert(self, value: ParamValue) -> Filler:
        if isinstance(value, Filler):
            return value
        if not isinstance(value, Message):
            raise self.reject(value)
        given: dict[str, Any] = {}
        for key, raw in value.fields:
            kind = _FILLER_FIELDS.get(key)
            if kind is None:
                hint = did_you_mean(key, _FILLER_FIELDS) or "a filler has " + ", ".join(_FILLER_FIELDS)
                raise LayerError(f"a filler has no field '{key}'", hint=hint, span=raw.key_span)
            try:
                given[key] = kind.convert(raw.value)
            except LayerError as exc:
                raise LayerError(
                    f"filler field '{key}': {exc.message}", hint=exc.hint, span=raw.value_span
                ) from None
        filler_type = given.get("type", Filler.type)
        filler = Filler(filler_type, **{k: v for k, v in given.items() if k in _FILLER_USES[filler_type]})
        if filler.type == "uniform" and filler.min > filler.max:
            raise LayerError(f"a uniform filler needs min <= max, got min {filler.min} > max {filler.max}")
        return filler


def check_filler(filler: Filler | None, param: str, kernel: tuple[int, int] | None) -> None:
    """Refuse a filler that cannot fill its array: ``bilinear`` needs a square convolution
    kernel (``kernel`` is None for arrays that are not one)."""
    if filler is None or filler.type != "bilinear":
        return
    if kernel is None:
        raise LayerError("the bilinear filler fills convolution kernels only", param=param)
    if kernel[0] != kernel[1]:
        raise LayerError(
            f"the bilinear filler needs a square kernel, got {kernel[0]}x{kernel[1]}", param=param
        )


# ---------------------------------------------------------------- what a layer stores


@dataclass(frozen=True)
class ParamSpec:
    """One stored array of a layer: ``weight``, ``bias``, ``running_mean``...

    ``learnable`` separates params from buffers (DESIGN.md §5); ``init`` is the filler that
    gives its initial values (netspec.weights draws them). ``fans`` gives (fan_in, fan_out) for
    a layout other than Caffe's [out, in, ...], whose fans fillers otherwise derive from the
    shape (netspec.weights.caffe_fans). ``beside`` names the array beside the layer rather than
    under it (``features.1.0.layer_scale`` for a layer ``features.1.0.scale``): a bare
    ``nn.Parameter`` of the enclosing module, as ViT's ``class_token``. ``fixed`` holds the
    values of an array the architecture determines (Swin's ``relative_position_index``, an
    integer buffer in torch): it is that, whatever a weights file says.
    """

    name: str
    shape: tuple[int, ...]
    learnable: bool = True
    init: Filler = HE_UNIFORM
    fans: tuple[int, int] | None = None
    beside: bool = False
    fixed: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Window:
    """How one spatial axis of a layer's output reads its input: the kernel's extent
    (dilation included), the stride and the leading padding (for receptive fields).

    ``transposed`` windows run backwards (Deconvolution, nearest upsampling): each input pixel
    spreads over ``kernel`` output pixels, ``stride`` apart, so output pixels are 1/stride input
    pixels apart.
    """

    kernel: int
    stride: int
    pad: int
    transposed: bool = False


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


class Emitter(Protocol):
    """What a layer's :meth:`Layer.emit` works with: its node's tensor names and types, the
    target opset, its stored arrays' initializer names, and a way to add ONNX nodes, constants
    and intermediate tensors named after the node. :class:`netspec.export.onnx.NodeEmitter`
    implements it; layers see only this, so that they do not depend on the exporter."""

    @property
    def inputs(self) -> Sequence[str]:
        """The node's input tensor names, in order."""
        ...

    @property
    def outputs(self) -> Sequence[str]:
        """The node's output tensor names, in order."""
        ...

    @property
    def input_types(self) -> Sequence[TensorType]:
        """The inferred types of :attr:`inputs`."""
        ...

    @property
    def output_types(self) -> Sequence[TensorType]:
        """The inferred types of :attr:`outputs`."""
        ...

    @property
    def opset(self) -> int:
        """The ONNX opset the model targets (a lowering may depend on it)."""
        ...

    def param(self, suffix: str) -> str:
        """The initializer name of one of the node's own arrays (``conv1.weight``)."""
        ...

    def constant(self, suffix: str, value: np.ndarray) -> str:
        """Add a constant initializer named after the node and return its name."""
        ...

    def temp(self, suffix: str) -> str:
        """A fresh intermediate tensor name for multi-op lowerings."""
        ...

    def add(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: Any) -> None:
        """Add one ONNX node of ``op_type`` reading ``inputs`` and writing ``outputs``."""
        ...

    def add_marked(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: Any
    ) -> None:
        """``add``, the node's doc_string naming the layer type after the spec location: for a
        lowering another layer type writes too, so that netspec's ONNX reader tells them apart."""
        ...


class Layer(Generic[P]):
    """Base of every layer type. Subclasses set ``type_name``, ``Params`` and override the rules.

    A layer class is generic in its parameter schema: ``class Convolution(Layer["Convolution.Params"])``
    with the nested ``Params`` dataclass (a subclass that extends the schema redeclares
    ``params: Deconvolution.Params``). The class docstring of a layer states its counting formula;
    ``docs/language.md`` lists them.
    """

    type_name: ClassVar[str]
    Params: ClassVar[type[LayerParams]] = NoParams
    arity: ClassVar[Arity] = Arity()
    # Where the output lives at inference, for peak memory (netspec.count): "new" (a buffer of
    # its own), "view" (the first input's memory: Dropout, Flatten, Reshape, Split copy nothing),
    # "in_place" (may overwrite the first input when nothing reads it later, as Caffe's in-place
    # blobs and onnxruntime's in-place elementwise kernels do).
    output_memory: ClassVar[str] = "new"
    # How many leading inputs the output's values come from, for receptive fields (None: all;
    # Crop's second input only lends its shape).
    field_inputs: ClassVar[int | None] = None
    # Whether the report leaves the layer out of its counts (an ONNX operator netspec only passes
    # through, whose costs it does not know): the report names such layers in a note.
    uncounted: ClassVar[bool] = False

    def __init__(self, params: P, output_count: int = 1) -> None:
        self.params = params
        self.output_count = output_count

    def check(self) -> None:
        """Refuse parameters that are valid one by one but not together (raise
        :class:`LayerError`); run once when the layer is built. By default there is nothing to check."""

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

    # -- capabilities that graph passes ask for (netspec.fold) --------------------------------------
    def channel_affine(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The layer as y = a·x + b with one (a, b) per channel (axis 1), in float64, from its
        stored arrays by their names (``running_mean``); None when it is not such a layer.
        BatchNorm folding merges a chain of these into the weighted layer before them."""
        return None

    def absorbs_channel_affine(self, output: TensorType, axis: int = 1) -> bool:
        """Whether a per-channel affine along ``axis`` after this layer can fold into it: its
        output (of type ``output``) is linear in its ``weight`` with its output channels on that
        axis, and it has or can take a bias (``bias_term``). Such a layer implements
        :meth:`scale_output_channels`."""
        return False

    def scale_output_channels(self, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """``weight`` (this layer's, float64) with output channel o's part multiplied by
        ``scale[o]`` (only for a layer that :meth:`absorbs_channel_affine`)."""
        raise NotImplementedError

    def input_channel_scale(
        self, inputs: Sequence[TensorType], arrays: Mapping[str, np.ndarray]
    ) -> tuple[int, int, np.ndarray] | None:
        """For a layer whose first step multiplies one input by a learned per-channel factor
        (ConvNeXt's layer scale, before its residual add): that input's index, the scaled axis
        (non-negative) and the factor per channel (float64, from the layer's arrays by name);
        None for other layers. The factor can fold into the layer that computes that input
        (:mod:`netspec.passes.fold_layer_scale`), leaving :meth:`without_input_channel_scale`."""
        return None

    def without_input_channel_scale(self, count: int) -> Layer[Any]:
        """The layer that remains, with ``count`` inputs, once :meth:`input_channel_scale`'s
        factor is folded away."""
        raise NotImplementedError

    def source_axis(self, axis: int, inputs: Sequence[TensorType]) -> int | None:
        """For a layer that only moves its one input's elements so that its output's ``axis``
        is one axis of the input (Permute): that input axis; None for other layers. Folding
        passes follow a channel axis back through such layers."""
        return None

    def input_scales(self, count: int) -> tuple[float, ...] | None:
        """The constant factors this layer multiplies its ``count`` inputs by before adding them
        (Eltwise SUM's ``coeff``), or None for a layer that does not. A factor can fold into
        the layer that writes that input (:func:`netspec.fold.fold_input_scales`)."""
        return None

    def with_input_scales(self, scales: tuple[float, ...]) -> Layer[P]:
        """This layer with its input factors replaced by ``scales`` (see :meth:`input_scales`)."""
        raise NotImplementedError

    # -- test inputs ----------------------------------------------------------------------------
    def sample_input(
        self, index: int, input_types: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray | None:
        """A valid random value for input ``index`` (of ``input_types``) where not every value is
        valid (indices, region boxes), for :func:`netspec.verify.sample_inputs`; None (the
        default) for an input that takes any values of its type."""
        return None

    # -- ONNX and reference semantics ------------------------------------------------------------
    def emit(self, node: Emitter) -> None:
        """Lower the layer to ONNX nodes through ``node``."""
        raise NotImplementedError

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The layer's float64 numpy semantics: the oracle the ONNX output is checked against."""
        raise NotImplementedError


class LayerTypes(Mapping[str, "type[Layer[Any]]"]):
    """Every layer type by its ``type_name``, importing a family's module when one of its types
    is first asked for: a spec's report loads only the families it uses (each module's parameter
    classes cost about half a millisecond apiece to create). Which module defines which type is
    :mod:`netspec.layers.index`, generated from the classes; iterating imports every family and
    yields the types in the index's order (by family, then as each module defines them)."""

    def __init__(self) -> None:
        self._registered: dict[str, type[Layer[Any]]] = {}

    def add(self, cls: type[Layer[Any]]) -> None:
        if cls.type_name in self._registered:
            raise RuntimeError(f"layer type {cls.type_name} registered twice")
        self._registered[cls.type_name] = cls

    def imported(self) -> list[type[Layer[Any]]]:
        """The types whose modules are imported so far, in the order they registered."""
        return list(self._registered.values())

    def __getitem__(self, type_name: str) -> type[Layer[Any]]:
        found = self._registered.get(type_name)
        if found is None:
            from netspec.layers.index import MODULE_OF_TYPE

            if type_name not in MODULE_OF_TYPE:
                raise KeyError(type_name)
            importlib.import_module(f"netspec.layers.{MODULE_OF_TYPE[type_name]}")
            found = self._registered[type_name]
        return found

    def __contains__(self, type_name: object) -> bool:
        from netspec.layers.index import MODULE_OF_TYPE

        return type_name in self._registered or type_name in MODULE_OF_TYPE

    def __iter__(self) -> Iterator[str]:
        from netspec.layers.index import FAMILIES, MODULE_OF_TYPE

        for family in FAMILIES:
            importlib.import_module(f"netspec.layers.{family}")
        # The index's order, then any type it does not list yet (it is regenerated with the docs).
        listed = [name for name in MODULE_OF_TYPE if name in self._registered]
        return iter([*listed, *(name for name in self._registered if name not in MODULE_OF_TYPE)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


LAYER_TYPES = LayerTypes()

# A layer class, whatever its schema: register and build_layer give back the class they are given.
AnyLayer = TypeVar("AnyLayer", bound="Layer[Any]")


def register(cls: type[AnyLayer]) -> type[AnyLayer]:
    """Class decorator: make a layer type known by its ``type_name``."""
    LAYER_TYPES.add(cls)
    return cls


def schema(layer_type: type[Layer[Any]]) -> list[dataclasses.Field[Any]]:
    """The declared parameters of a layer type, in declaration order."""
    return list(dataclasses.fields(layer_type.Params))


@dataclass(frozen=True)
class RawParam:
    """A parameter as written in a spec, before its kind checked it."""

    value: ParamValue
    key_span: SourceSpan | None = None
    value_span: SourceSpan | None = None


@dataclass(frozen=True)
class Message:
    """A block written as a parameter's value (``weight_filler { type: "msra" }``): its fields
    in the order written, each as its own RawParam."""

    fields: tuple[tuple[str, RawParam], ...]

    def __repr__(self) -> str:
        return "a { } block"


# What a parameter is written as: an expression's value, or a block.
ParamValue = Value | Message


def build_layer(
    layer_type: type[AnyLayer],
    raw: Mapping[str, RawParam],
    span: SourceSpan | None,
    name: str | None = None,
    output_count: int | None = None,
) -> AnyLayer:
    """Check ``raw`` against the layer type's schema and build the layer, or raise a diagnostic.

    ``output_count`` is the number of output tensors the spec names (``top:``); without it the
    layer produces the smallest number it can.
    """
    fields = {f.name: f for f in schema(layer_type)}
    values: dict[str, Any] = {}
    for key, given in raw.items():
        spec_field = fields.get(key)
        if spec_field is None and isinstance(given.value, Message):
            raise error(
                f"'{key}' is a block; only Caffe-style '*_param' blocks may group parameters",
                given.key_span or span,
                hint=f"write '{key}: value'",
            )
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
                exc.span or given.value_span or given.key_span or span,
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
        layer.check()
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
        written = raw.get(exc.param) if exc.param is not None else None
        where = exc.span or (written.value_span if written is not None else span)
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


# ---------------------------------------------------------------- shared ONNX emission helpers
# (here rather than in the shape family, so that the families emitting a Reshape do not import
# that module's layer classes)


def reshape_target(source: TensorType, target: Sequence[Dim]) -> list[int]:
    """The ONNX Reshape ``shape`` input that turns ``source`` into ``target`` dims.

    Static dims are written out. A symbolic dim (the batch) becomes 0, ONNX's "copy the input
    dim at this index", when the input has it at the same index, else -1 ("infer it").
    """
    shape: list[int] = []
    for index, dim in enumerate(target):
        if isinstance(dim, int):
            shape.append(dim)
        elif index < source.rank and source.dims[index] == dim:
            shape.append(0)
        else:
            shape.append(-1)
    if shape.count(-1) > 1:
        raise LayerError(
            f"cannot express the reshape of {source} to "
            f"[{', '.join(map(str, target))}] with a constant shape; fix the batch size"
        )
    return shape


def emit_reshape(
    node: Emitter,
    source: str,
    source_type: TensorType,
    target: Sequence[Dim],
    output: str,
    suffix: str = "shape",
) -> None:
    """Add an ONNX Reshape of ``source`` to ``target`` dims, writing ``output``."""
    shape = node.constant(suffix, np.array(reshape_target(source_type, target), np.int64))
    node.add("Reshape", [source, shape], [output])


def emit_aligned(
    node: Emitter, source: str, source_type: TensorType, rank: int, axis: int, suffix: str
) -> str:
    """``source``, an operand covering axes ``axis`` … of a rank-``rank`` tensor, reshaped with
    the trailing ones that make it broadcast against that tensor; ``source`` itself when it
    already does. Returns the name to use."""
    target = aligned_shape(source_type.dims, rank, axis)
    if source_type.rank in (0, len(target)):
        return source
    aligned = node.temp(f"{suffix}_aligned")
    emit_reshape(node, source, source_type, target, aligned, suffix=f"{suffix}_shape")
    return aligned
