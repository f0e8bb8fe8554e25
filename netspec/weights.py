"""Initial values of a typed graph's stored arrays by each array's filler (by default He-uniform
for weights, zeros for biases, BatchNorm at identity), deterministic per seed and per parameter
name. The arrays' specs are the typed graph's (netspec.typed); weight files are netspec.weightfile."""

from __future__ import annotations

import hashlib
import math
from collections import ChainMap
from collections.abc import Iterator, Mapping

import numpy as np

from netspec.layers.base import ParamSpec
from netspec.typed import TypedGraph


def _rng(seed: int, name: str) -> np.random.Generator:
    # A generator per parameter name: the values do not depend on layer order or on which
    # other layers exist, so editing one layer leaves every other layer's weights unchanged.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def caffe_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Caffe's fans of an array: fan_in = count / shape[0], fan_out = count / shape[1] (count
    for a 1-D array). For a conv weight [Cout, Cin/g, kh, kw] that is (Cin/g)·kh·kw and
    Cout·kh·kw; for a fully connected [out, in], in and out; for a deconvolution's
    [Cin, Cout/g, kh, kw], (Cout/g)·kh·kw and Cin·kh·kw."""
    count = math.prod(shape)
    fan_in = count // shape[0] if shape else 1
    fan_out = count // shape[1] if len(shape) > 1 else count
    return max(fan_in, 1), max(fan_out, 1)


def bilinear_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """Caffe's bilinear upsampling kernel in every [out, in] slot of a square k×k kernel."""
    size = shape[-1]
    factor = math.ceil(size / 2)
    center = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    ramp = 1 - np.abs(np.arange(size) / factor - center)
    return np.broadcast_to(np.outer(ramp, ramp), shape).astype(np.float32)


def initial_value(spec: ParamSpec, full_name: str, seed: int) -> np.ndarray:
    """The initial float32 values of one array, by its filler (see Filler's docstring), drawn
    from a generator seeded by ``seed`` and the array's name."""
    filler, shape = spec.init, spec.shape
    if spec.fixed is not None:
        return np.array(spec.fixed, np.float32).reshape(shape)
    if filler.type == "constant":
        return np.full(shape, filler.value, np.float32)
    if filler.type == "bilinear":
        return bilinear_kernel(shape)
    rng = _rng(seed, full_name)
    bounds = _uniform_bounds(spec)
    if bounds is not None:
        return _uniform(rng, shape, *bounds)
    fan_in, fan_out = spec.fans or caffe_fans(shape)
    if filler.type == "positive_unitball":
        values = rng.random(shape, dtype=np.float32)
        values /= values.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))
        return values
    n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[filler.variance_norm]
    if filler.type == "msra":
        return _gaussian(rng, shape, 0.0, np.sqrt(2.0 / n))
    if filler.type == "gaussian":
        values = _gaussian(rng, shape, filler.mean, filler.std)
        if filler.sparse >= 0:  # Caffe: keep each value with probability sparse / shape[0]
            values *= rng.random(shape, dtype=np.float32) < filler.sparse / shape[0]
        return values
    raise ValueError(f"unknown filler type {filler.type!r} for {full_name}")


def _uniform_bounds(spec: ParamSpec) -> tuple[float, float] | None:
    """(low, high) of a filler that draws uniforms (he_uniform, uniform, xavier), else None."""
    filler = spec.init
    fan_in, fan_out = spec.fans or caffe_fans(spec.shape)
    if filler.type == "he_uniform":
        # He et al. 2015 in its uniform form (variance 2 / fan_in, as torch's kaiming_uniform_
        # for ReLU). NOTE: uniform, not Gaussian: numpy draws uniforms four times faster, and
        # random weights for a 138M-parameter VGG are generated on every compile.
        bound = float(np.sqrt(6.0 / fan_in))
        return -bound, bound
    if filler.type == "uniform":
        return filler.min, filler.max
    if filler.type == "xavier":
        n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[filler.variance_norm]
        bound = float(np.sqrt(3.0 / n))
        return -bound, bound
    return None


# Values drawn, scaled and written per chunk while they are in cache: 512 KiB of float32 stays in
# a core's L2 through the draw, the two scaling passes and the copy into the page cache (4 MiB
# chunks spilled to L3 and took ~15% more CPU to compile VGG-16; smaller ones add Python-level
# iterations for nothing).
CHUNK_VALUES = 1 << 17


def initial_value_chunks(spec: ParamSpec, full_name: str, seed: int) -> Iterator[np.ndarray]:
    """:func:`initial_value`'s values in C order, flat, a chunk at a time: the same numbers
    (the generator draws its uniforms in sequence, whatever the chunks), without the whole
    array in memory, for fillers that draw uniforms; the whole array for the others. Each
    chunk is overwritten by the next: use it before asking for another."""
    bounds = _uniform_bounds(spec)
    if bounds is None:
        yield initial_value(spec, full_name, seed).reshape(-1)
        return
    low, high = bounds
    rng, total = _rng(seed, full_name), math.prod(spec.shape)
    buffer = np.empty(min(total, CHUNK_VALUES), np.float32)
    for start in range(0, total, CHUNK_VALUES):
        part = buffer[: min(CHUNK_VALUES, total - start)]
        rng.random(part.shape, dtype=np.float32, out=part)
        part *= np.float32(high - low)
        part += np.float32(low)
        yield part


def overlaid(arrays: dict[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """``arrays`` over ``weights``, which stay as they are: lazily drawn initial weights are not
    all drawn (``dict(weights)`` would hold every array at once), and :func:`array_chunks` still
    reads them chunk by chunk."""
    # ChainMap writes only to its first map, and nothing writes to this one (it is a Mapping
    # from here on), but typeshed asks every map to be mutable.
    return ChainMap(arrays, weights)  # type: ignore[arg-type]


def array_chunks(weights: Mapping[str, np.ndarray], name: str) -> Iterator[np.ndarray]:
    """The float32 values of ``weights[name]`` in C order, flat, in chunks: lazily drawn initial
    weights (InitialWeights, under folded arrays in a ChainMap) chunk by chunk, others whole."""
    if isinstance(weights, ChainMap):
        owner = next(m for m in weights.maps if name in m)
        yield from array_chunks(owner, name)
    elif isinstance(weights, InitialWeights):
        yield from weights.chunks(name)
    else:
        yield np.ascontiguousarray(weights[name], dtype=np.float32).reshape(-1)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    # In place and in float32: VGG's 138M random weights are drawn on every compile.
    values = rng.random(shape, dtype=np.float32)
    values *= np.float32(high - low)
    values += np.float32(low)
    return values


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...], mean: float, std: float) -> np.ndarray:
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(std)
    values += np.float32(mean)
    return values


def initialize_weights(typed: TypedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Every stored array of ``typed`` by full name, initialised by its spec's initialiser."""
    return dict(InitialWeights(typed, seed).items())


class InitialWeights(Mapping[str, np.ndarray]):
    """The initial values of a typed graph's arrays, drawn when asked for and not kept: what
    initialize_weights returns, without holding every array at once. The ONNX builder turns
    each array into its initializer and drops it, so compiling with random weights peaks near
    the model's own size, not twice it. Each lookup draws afresh, the same values every time
    (a generator per seed and name)."""

    def __init__(self, typed: TypedGraph, seed: int = 0) -> None:
        self._specs = {name: array.spec for name, array in typed.expected_arrays.items()}
        self._seed = seed

    def __getitem__(self, name: str) -> np.ndarray:
        return initial_value(self._specs[name], name, self._seed)

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        """The values of ``name`` in chunks (:func:`initial_value_chunks`)."""
        return initial_value_chunks(self._specs[name], name, self._seed)

    def __contains__(self, name: object) -> bool:
        return name in self._specs  # without drawing (Mapping's default would draw)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
