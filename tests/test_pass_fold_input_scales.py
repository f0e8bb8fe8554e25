"""The residual-scale folding pass (netspec.passes.fold_input_scales): an Eltwise SUM's constant
coefficient moves into the convolution that writes that input, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.passes.fold_input_scales import fold_input_scales
from netspec.typed import bind

SPEC = """input a: [1, 1, 2, 2]
Convolution conv { num_output: 1 kernel_size: 1 }
Eltwise sum { bottom: [conv, a] coeff: [0.5, 1] }
"""


@pytest.mark.unit
def test_the_coefficient_moves_into_the_convolution_by_hand() -> None:
    typed = bind(elaborate(SourceFile("t.net", SPEC)))
    weights = {"conv.weight": np.full((1, 1, 1, 1), 2, np.float32), "conv.bias": np.ones(1, np.float32)}
    done = fold_input_scales(typed, weights)
    assert [(f.kept, f.merged) for f in done.folds] == [("conv", ("sum coeff 0.5",))]
    np.testing.assert_array_equal(done.weights["conv.weight"].reshape(-1), [1.0])
    np.testing.assert_array_equal(done.weights["conv.bias"], [0.5])
    assert weights["conv.weight"].reshape(-1).tolist() == [2.0]  # the given arrays are left as they are
    (eltwise,) = [n for n in done.typed.graph.nodes if n.type == "Eltwise"]
    assert eltwise.layer.input_scales(2) == (1.0, 1.0)
    # The rewritten value keeps the bindings, and its nodes are typed again from its own graph.
    assert done.typed.bindings == typed.bindings and done.typed.batch == typed.batch
    assert done.typed.of("sum").outputs == typed.of("sum").outputs


@pytest.mark.unit
def test_a_coefficient_on_a_graph_input_stays() -> None:
    typed = bind(elaborate(SourceFile("t.net", SPEC.replace("coeff: [0.5, 1]", "coeff: [1, 0.25]"))))
    weights = {"conv.weight": np.full((1, 1, 1, 1), 2, np.float32), "conv.bias": np.ones(1, np.float32)}
    done = fold_input_scales(typed, weights)
    assert done.folds == () and done.typed.graph.nodes == typed.graph.nodes
