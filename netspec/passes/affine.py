"""What the folding passes share: whether a layer can absorb a per-channel affine y = a·x + b
after it, and its arrays with one folded in (float64 arithmetic, stored as float32)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from netspec.typed import TypedNode

Affine = tuple[np.ndarray, np.ndarray]  # per channel y = a·x + b, float64


def array_names(typed: TypedNode) -> dict[str, str]:
    """A node's arrays, each full name by the layer's name for it (``weight``: ``conv1.weight``)."""
    return {a.spec.name: a.name for a in typed.arrays}


class NodeArrays(Mapping[str, np.ndarray]):
    """A node's arrays by the layer's names for them, each read from the weights only when it is
    asked for: asking a layer whether a pass applies to it draws no initial weight it does not
    look at (VGG-16's 138 M values would all be drawn and held otherwise)."""

    def __init__(self, typed: TypedNode, weights: Mapping[str, np.ndarray]) -> None:
        self._names = array_names(typed)
        self._weights = weights

    def __getitem__(self, name: str) -> np.ndarray:
        return self._weights[self._names[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def absorbs(typed: TypedNode, axis: int = 1) -> bool:
    """Whether a per-channel affine along ``axis`` after this node can fold into it: one output
    with channels, a layer that declares it can, arrays of its own (not shared by Caffe's
    ``param { name }``)."""
    node = typed.node
    if len(node.outputs) != 1 or any(name is not None for name in node.array_names):
        return False
    output = typed.outputs[0]
    return output.rank >= 2 and node.layer.absorbs_channel_affine(output, axis)


def absorbed(
    typed: TypedNode,
    weights: Mapping[str, np.ndarray],
    scale: np.ndarray,
    shift: np.ndarray | None,
    bias_name: str,
) -> dict[str, np.ndarray]:
    """The node's weight and bias (``bias_name``) with y = scale·y + shift folded in, float32.
    Without a shift a missing bias stays missing."""
    arrays = array_names(typed)
    weight = np.asarray(weights[arrays["weight"]], np.float64)
    result = {arrays["weight"]: typed.node.layer.scale_output_channels(weight, scale).astype(np.float32)}
    bias = np.asarray(weights[bias_name], np.float64) if "bias" in arrays else None
    if bias is not None or shift is not None:
        folded = (0.0 if bias is None else bias) * scale + (0.0 if shift is None else shift)
        result[bias_name] = np.asarray(folded).astype(np.float32)
    return result


def composed(affines: list[Affine]) -> Affine:
    """A chain of per-channel affines, applied in order, as one."""
    scale, shift = affines[0]
    for a, b in affines[1:]:
        scale, shift = scale * a, shift * a + b
    return scale, shift
