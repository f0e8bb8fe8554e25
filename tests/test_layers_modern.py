"""Per-layer tests of the layer types the efficient networks need (issue 7): HardSigmoid,
HardSwish, SiLU/Swish, ChannelShuffle, and Scale's broadcast second input (squeeze-and-
excitation). Shapes and hand-computed counts; each configuration compiled to ONNX, checked,
shape-inferred and run in onnxruntime against the layer's float64 reference (1e-5 relative),
with static and dynamic batch; the references themselves against formulas written out here
independently; error messages.

Each case is one layer statement named ``layer`` reading inputs ``a``, ``b`` declared with the
shapes given (``N`` is the batch, bound to 2). The harness is tests/test_layers.py's.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_layers import (  # the shared harness and its Case
    BATCH,
    Case,
    assert_shape_and_counts,
    build_graph,
    case_params,
    compile_error,
    reference_of,
    run_case,
)

from netspec.typed import bind

X = ("N", 8, 5, 5)  # 400 elements at N = 2

CASES = [
    # 4 FLOPs per element (multiply, add, two comparisons): 4·400
    Case("hardsigmoid-torch", "HardSigmoid layer", (X,), (2, 8, 5, 5), flops=1600),
    Case("hardsigmoid-onnx", "HardSigmoid layer { alpha: 0.2  beta: 0.5 }", (X,), (2, 8, 5, 5), flops=1600),
    # the hard sigmoid's 4 and a multiply: 5·400
    Case("hardswish", "HardSwish layer", (X,), (2, 8, 5, 5), flops=2000),
    # sigmoid and multiply: 2·400; Swish with β ≠ 1 adds the scaling multiply: 3·400
    Case("silu", "SiLU layer", (X,), (2, 8, 5, 5), flops=800),
    Case("swish", "Swish layer", (X,), (2, 8, 5, 5), flops=800),
    Case("swish-beta", "Swish layer { beta: 1.5 }", (X,), (2, 8, 5, 5), flops=1200),
    Case("silu-2d", "SiLU layer", (("N", 7),), (2, 7), flops=28),
    Case("shuffle-2", "ChannelShuffle layer { group: 2 }", (X,), (2, 8, 5, 5)),
    Case("shuffle-4", "ChannelShuffle layer { group: 4 }", (X,), (2, 8, 5, 5)),
    Case("shuffle-3-no-spatial", "ChannelShuffle layer { group: 3 }", (("N", 6),), (2, 6)),
    Case("shuffle-1", "ChannelShuffle layer { group: 1 }", (X,), (2, 8, 5, 5)),
    # one multiply per output element: 400
    Case(
        "scale-se-factor",
        "Scale layer { bottom: [a, b]  axis: 0 }",
        (X, ("N", 8, 1, 1)),
        (2, 8, 5, 5),
        flops=400,
    ),
    Case(
        "scale-channel-factor",
        "Scale layer { bottom: [a, b]  axis: 1 }",
        (X, (8, 1, 1)),
        (2, 8, 5, 5),
        flops=400,
    ),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.ort
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case, dynamic: bool) -> None:
    run_case(case, dynamic=dynamic, opset=21)


@pytest.mark.ort
def test_onnx_lowerings() -> None:
    # onnxruntime has no CPU kernel for ONNX HardSwish (DESIGN.md §6), nor Swish for SiLU.
    from netspec.compiler import compile_graph

    for text, ops in [
        ("HardSwish layer", ["HardSigmoid", "Mul"]),
        ("SiLU layer", ["Sigmoid", "Mul"]),
        ("Swish layer { beta: 2 }", ["Mul", "Sigmoid", "Mul"]),
        ("ChannelShuffle layer { group: 2 }", ["Reshape", "Transpose", "Reshape"]),
    ]:
        graph = build_graph(Case(text, text, (X,), ()))
        model = compile_graph(bind(graph, batch=BATCH))
        assert [n.op_type for n in model.graph.node] == ops, text


# ---------------------------------------------------------------- the references, independently


GRID = np.array([-4.0, -3.0, -1.5, 0.0, 0.75, 2.9, 3.0, 7.0])


@pytest.mark.unit
def test_hard_sigmoid_follows_torch_and_onnx_conventions() -> None:
    # torch: relu6(x + 3) / 6, written out point by point.
    expected_torch = [0.0, 0.0, 0.25, 0.5, 0.625, 2.95 / 3, 1.0, 1.0]
    np.testing.assert_allclose(reference_of("HardSigmoid", [GRID]), expected_torch, rtol=1e-15)
    # ONNX's defaults α = 0.2, β = 0.5: clip(0.2·x + 0.5, 0, 1).
    expected_onnx = [0.0, 0.0, 0.2, 0.5, 0.65, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(
        reference_of("HardSigmoid", [GRID], alpha=0.2, beta=0.5), expected_onnx, rtol=1e-15, atol=1e-16
    )


@pytest.mark.unit
def test_hard_swish_and_silu_formulas() -> None:
    relu6 = np.minimum(np.maximum(GRID + 3.0, 0.0), 6.0)
    np.testing.assert_allclose(reference_of("HardSwish", [GRID]), GRID * relu6 / 6.0, rtol=1e-15)
    sigmoid = 0.5 * (1.0 + np.tanh(GRID / 2.0))  # σ(x) = (1 + tanh(x/2)) / 2
    np.testing.assert_allclose(reference_of("SiLU", [GRID]), GRID * sigmoid, rtol=1e-14, atol=1e-15)
    sigmoid_2x = 0.5 * (1.0 + np.tanh(GRID))
    np.testing.assert_allclose(
        reference_of("Swish", [GRID], beta=2.0), GRID * sigmoid_2x, rtol=1e-14, atol=1e-15
    )


@pytest.mark.unit
def test_channel_shuffle_permutation() -> None:
    # ShuffleNet: 6 channels in 2 groups [0 1 2 | 3 4 5] interleave to 0 3 1 4 2 5.
    x = np.arange(2 * 6 * 2).reshape(2, 6, 2).astype(np.float64)
    np.testing.assert_array_equal(reference_of("ChannelShuffle", [x], group=2), x[:, [0, 3, 1, 4, 2, 5]])
    # 3 groups [0 1 | 2 3 | 4 5] interleave to 0 2 4 1 3 5.
    np.testing.assert_array_equal(reference_of("ChannelShuffle", [x], group=3), x[:, [0, 2, 4, 1, 3, 5]])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 6, 4, 4]\nChannelShuffle s { group: 4 }",
            "group 4 does not divide the 6 input channels",
        ),
        ("input a: [N]\nChannelShuffle s { group: 1 }", "expects an input with a channel axis"),
        ("input a: [N, 6, 4, 4]\nChannelShuffle s", "ChannelShuffle needs parameter 'group'"),
        ("input a: [N, 6, 4, 4]\nHardSwish s { alpha: 0.2 }", "HardSwish has no parameter 'alpha'"),
        ("input a: [N, 6, 4, 4]\nSiLU s { beta: 2 }", "SiLU has no parameter 'beta'"),
        (
            "input a: [N, 8, 4, 4]\ninput b: [N, 8, 2, 1]\nScale s { bottom: [a, b]  axis: 0 }",
            "needs a second input equal to the input's dims from axis 0 on; got [2, 8, 2, 1]",
        ),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)
