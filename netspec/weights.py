"""Stored arrays of a graph: their specs, and default initialisation (He for weights, zeros for
biases, BatchNorm at identity), deterministic per seed and per parameter name."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """Each node's stored arrays (only nodes that have some)."""
    result = {}
    for node in graph.nodes:
        arrays = node_arrays(node, [types[t] for t in node.inputs])
        if arrays:
            result[node] = arrays
    return result


def _rng(seed: int, name: str) -> np.random.Generator:
    # A generator per parameter name: the values do not depend on layer order or on which
    # other layers exist, so editing one layer leaves every other layer's weights unchanged.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def initial_value(spec: ParamSpec, full_name: str, seed: int) -> np.ndarray:
    if spec.init == "zeros":
        return np.zeros(spec.shape, np.float32)
    if spec.init == "ones":
        return np.ones(spec.shape, np.float32)
    if spec.init.startswith("constant:"):  # e.g. PReLU's slopes, "constant:0.25"
        return np.full(spec.shape, float(spec.init.partition(":")[2]), np.float32)
    if spec.init == "he":
        # He et al. 2015 in its uniform form (variance 2 / fan_in, as torch's kaiming_uniform_
        # for ReLU). NOTE: uniform, not Gaussian: numpy draws uniforms four times faster, and
        # random weights for a 138M-parameter VGG are generated on every compile.
        bound = np.float32(np.sqrt(6.0 / max(spec.fan_in, 1)))
        values = _rng(seed, full_name).random(spec.shape, dtype=np.float32)
        values *= np.float32(2.0) * bound
        values -= bound
        return values
    raise ValueError(f"unknown initialiser {spec.init!r} for {full_name}")


def initialize_weights(graph: Graph, types: Mapping[str, TensorType], seed: int = 0) -> dict[str, np.ndarray]:
    """Every stored array of ``graph`` by full name, initialised by its spec's initialiser."""
    weights = {}
    for arrays in graph_arrays(graph, types).values():
        for array in arrays:
            if array.name not in weights:
                weights[array.name] = initial_value(array.spec, array.name, seed)
    return weights


# ---------------------------------------------------------------- loading trained weights

WEIGHT_FORMATS = (".caffemodel", ".npz")


def load_weights(path: str, graph: Graph, types: Mapping[str, TensorType]) -> dict[str, np.ndarray]:
    """Every stored array of ``graph`` from a weights file, by name: a Caffe ``.caffemodel``
    (blobs by layer name, in the layer's array order) or a ``.npz`` (arrays by full name).

    Arrays whose element count matches are reshaped (Caffe's legacy 4-D blobs). A missing
    array, one of the wrong size, or (in npz) an array the net does not have is an error
    naming it; a caffemodel may hold layers the net lacks (a deploy net leaves out training
    heads). Nothing is executed: npz files are read without pickle.
    """
    from netspec.diagnostics import error

    suffix = Path(path).suffix.lower()
    if suffix == ".caffemodel":
        found = _caffemodel_arrays(path, graph, types)
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                found = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise error(f"no such weights file: {path}") from None
        except (OSError, ValueError) as exc:
            raise error(f"cannot read weights from {path}: {exc}") from None
    else:
        raise error(f"unknown weights format '{suffix or path}'; expected one of {', '.join(WEIGHT_FORMATS)}")
    return _match_arrays(path, found, graph, types, allow_unexpected=suffix == ".caffemodel")


def _caffemodel_arrays(path: str, graph: Graph, types: Mapping[str, TensorType]) -> dict[str, np.ndarray]:
    """Caffe blobs renamed to the graph's array names: blob i of layer L is array i of node L."""
    from netspec.caffemodel import read_caffemodel
    from netspec.diagnostics import error

    caffe = read_caffemodel(path)
    found: dict[str, np.ndarray] = {}
    for node, arrays in graph_arrays(graph, types).items():
        if node.name not in caffe:
            continue
        blobs = caffe[node.name]
        if len(blobs) != len(arrays):
            names = ", ".join(a.spec.name for a in arrays)
            raise error(
                f"{path}: layer '{node.name}' has {len(blobs)} blobs; the {node.type} in the net "
                f"stores {len(arrays)} ({names})"
            )
        for array, blob in zip(arrays, blobs, strict=True):
            found.setdefault(array.name, blob)
    return found


def _match_arrays(
    path: str,
    found: Mapping[str, np.ndarray],
    graph: Graph,
    types: Mapping[str, TensorType],
    allow_unexpected: bool,
) -> dict[str, np.ndarray]:
    from netspec.diagnostics import did_you_mean, error

    weights: dict[str, np.ndarray] = {}
    expected: dict[str, StoredArray] = {}
    for arrays in graph_arrays(graph, types).values():
        for array in arrays:
            expected.setdefault(array.name, array)
    missing, mismatched = [], []
    for name, array in expected.items():
        value = found.get(name)
        if value is None:
            hint = did_you_mean(name, [n for n in found if n not in expected])
            missing.append(f"{name} {list(array.spec.shape)}" + (f" ({hint})" if hint else ""))
        elif value.size != array.spec.size:
            mismatched.append(f"{name}: file {list(value.shape)}, net {list(array.spec.shape)}")
        else:
            weights[name] = np.ascontiguousarray(value, dtype=np.float32).reshape(array.spec.shape)
    unexpected = [] if allow_unexpected else sorted(set(found) - set(expected))
    problems = [
        f"{title}: {'; '.join(items[:8])}" + (f", and {len(items) - 8} more" if len(items) > 8 else "")
        for title, items in (
            (f"missing {len(missing)} array(s)", missing),
            ("shapes that do not fit", mismatched),
            ("arrays the net does not have", unexpected),
        )
        if items
    ]
    if problems:
        raise error(f"the weights in {path} do not fit the net: " + " | ".join(problems))
    return weights
