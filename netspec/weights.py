"""Stored arrays of a graph: their specs, and their initial values by each array's filler (by
default He-uniform for weights, zeros for biases, BatchNorm at identity), deterministic per seed
and per parameter name. Reading and writing weight files is netspec.weightfile."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netspec.diagnostics import error
from netspec.graph import Graph, Node, TensorType
from netspec.layers.base import ParamSpec


@dataclass(frozen=True)
class StoredArray:
    """One array a node stores: its full name (``layer1.0.conv1.weight``, or the shared name
    a Caffe ``param { name }`` gives it), its spec, and whether training leaves it fixed."""

    name: str
    spec: ParamSpec
    frozen: bool = False


def node_arrays(node: Node, input_types: Sequence[TensorType]) -> tuple[StoredArray, ...]:
    """The arrays of one node, in the layer's order (Caffe's blob order)."""
    arrays = []
    for index, spec in enumerate(node.layer.parameters(input_types)):
        shared = node.array_names[index] if index < len(node.array_names) else None
        arrays.append(StoredArray(shared or f"{node.name}.{spec.name}", spec, index in node.frozen_arrays))
    return tuple(arrays)


def graph_arrays(graph: Graph, types: Mapping[str, TensorType]) -> dict[Node, tuple[StoredArray, ...]]:
    """Each node's stored arrays (only nodes that have some). An array shared by name (Caffe's
    ``param { name }``) must have one shape wherever it is used: a diagnostic at the layer
    that differs, as Caffe refuses such a net."""
    result = {}
    owners: dict[str, tuple[Node, StoredArray]] = {}
    for node in graph.nodes:
        arrays = node_arrays(node, [types[t] for t in node.inputs])
        for array in arrays:
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
        if arrays:
            result[node] = arrays
    return result


def expected_arrays(graph: Graph, types: Mapping[str, TensorType]) -> dict[str, StoredArray]:
    """Every distinct stored array of ``graph`` by full name (a shared array once), in order."""
    expected: dict[str, StoredArray] = {}
    for arrays in graph_arrays(graph, types).values():
        for array in arrays:
            expected.setdefault(array.name, array)
    return expected


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
    if filler.type == "constant":
        return np.full(shape, filler.value, np.float32)
    if filler.type == "bilinear":
        return bilinear_kernel(shape)
    rng = _rng(seed, full_name)
    fan_in, fan_out = spec.fans or caffe_fans(shape)
    if filler.type == "he_uniform":
        # He et al. 2015 in its uniform form (variance 2 / fan_in, as torch's kaiming_uniform_
        # for ReLU). NOTE: uniform, not Gaussian: numpy draws uniforms four times faster, and
        # random weights for a 138M-parameter VGG are generated on every compile.
        bound = np.sqrt(6.0 / fan_in)
        return _uniform(rng, shape, -bound, bound)
    if filler.type == "uniform":
        return _uniform(rng, shape, filler.min, filler.max)
    if filler.type == "positive_unitball":
        values = rng.random(shape, dtype=np.float32)
        values /= values.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))
        return values
    n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[filler.variance_norm]
    if filler.type == "xavier":
        bound = np.sqrt(3.0 / n)
        return _uniform(rng, shape, -bound, bound)
    if filler.type == "msra":
        return _gaussian(rng, shape, 0.0, np.sqrt(2.0 / n))
    if filler.type == "gaussian":
        values = _gaussian(rng, shape, filler.mean, filler.std)
        if filler.sparse >= 0:  # Caffe: keep each value with probability sparse / shape[0]
            values *= rng.random(shape, dtype=np.float32) < filler.sparse / shape[0]
        return values
    raise ValueError(f"unknown filler type {filler.type!r} for {full_name}")


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


def initialize_weights(graph: Graph, types: Mapping[str, TensorType], seed: int = 0) -> dict[str, np.ndarray]:
    """Every stored array of ``graph`` by full name, initialised by its spec's initialiser."""
    return dict(InitialWeights(graph, types, seed).items())


class InitialWeights(Mapping[str, np.ndarray]):
    """The initial values of ``graph``'s arrays, drawn when asked for and not kept: what
    initialize_weights returns, without holding every array at once. The ONNX builder turns
    each array into its initializer and drops it, so compiling with random weights peaks near
    the model's own size, not twice it. Each lookup draws afresh, the same values every time
    (a generator per seed and name)."""

    def __init__(self, graph: Graph, types: Mapping[str, TensorType], seed: int = 0) -> None:
        self._specs = {name: array.spec for name, array in expected_arrays(graph, types).items()}
        self._seed = seed

    def __getitem__(self, name: str) -> np.ndarray:
        return initial_value(self._specs[name], name, self._seed)

    def __contains__(self, name: object) -> bool:
        return name in self._specs  # without drawing (Mapping's default would draw)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
