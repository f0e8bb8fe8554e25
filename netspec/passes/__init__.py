"""Graph rewrites: each pass takes a typed graph and its weights and returns them rewritten
(:class:`Rewrite`), one pass per module. Which layers a pass applies to is what the layer
classes declare (``Layer.channel_affine``, ``absorbs_channel_affine``, ``input_scales``), never
a list of classes here.

Adding a pass: one module holding one function of the :class:`GraphPass` shape, a test file
for it, and its place in :data:`FOLDING_PASSES` (or a caller of its own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from netspec.typed import TypedGraph


@dataclass(frozen=True)
class Fold:
    """One fold made: the layer kept (under its own name) and what was merged into it."""

    kept: str
    merged: tuple[str, ...]


@dataclass(frozen=True)
class Rewrite:
    """A pass's result: the rewritten typed graph, its weights (rewritten arrays over the given
    ones, which stay as they are) and the folds made."""

    typed: TypedGraph
    weights: Mapping[str, np.ndarray]
    folds: tuple[Fold, ...]


class GraphPass(Protocol):
    """The shape of every pass."""

    def __call__(self, typed: TypedGraph, weights: Mapping[str, np.ndarray]) -> Rewrite: ...


def folding_passes() -> tuple[GraphPass, ...]:
    """The passes compile runs by default (as torch's exporters fold): BatchNorm and Scale
    chains into the layer before them, then residual scale factors and learned layer scales
    into the layers that compute the scaled inputs."""
    from netspec.passes.fold_batchnorm import fold_batchnorm
    from netspec.passes.fold_input_scales import fold_input_scales
    from netspec.passes.fold_layer_scale import fold_layer_scale

    return (fold_batchnorm, fold_input_scales, fold_layer_scale)


def run_passes(
    typed: TypedGraph, weights: Mapping[str, np.ndarray], passes: tuple[GraphPass, ...]
) -> Rewrite:
    """``passes`` applied in order; the folds of all of them."""
    folds: tuple[Fold, ...] = ()
    for graph_pass in passes:
        done = graph_pass(typed, weights)
        typed, weights, folds = done.typed, done.weights, folds + done.folds
    return Rewrite(typed, weights, folds)
