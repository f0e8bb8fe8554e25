"""Per-layer tests of the transformer-era layer types (issue 15): LayerNorm, GELU, Permute,
MatMul, Take, ClassToken, PositionEmbedding, MultiheadAttention, StochasticDepth and LayerScale.
Shapes and hand-computed counts; each configuration compiled to ONNX at opset 21 (ONNX
LayerNormalization and Gelu) and 13 (their decompositions), checked, shape-inferred and run in
onnxruntime against the layer's float64 reference, with static and dynamic batch; the
references against formulas written out here independently; error messages.

Each case is one layer statement named ``layer`` reading inputs ``a``, ``b`` declared with the
shapes given (``N`` is the batch, bound to 2). The harness is tests/test_layers.py's.
"""

from __future__ import annotations

import math

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
T = ("N", 5, 8)  # a token sequence: 80 elements at N = 2

CASES = [
    # 2·C params; 7 FLOPs per element with the affine part (5 without)
    Case("layernorm-last", "LayerNorm layer", (T,), (2, 5, 8), params=16, flops=560),
    Case("layernorm-eps", "LayerNorm layer { eps: 1e-6 }", (T,), (2, 5, 8), params=16, flops=560),
    Case(
        "layernorm-channels",
        "LayerNorm layer { axis: 1  eps: 1e-6 }",
        (X,),
        (2, 8, 5, 5),
        params=16,
        flops=2800,
    ),
    Case("layernorm-plain", "LayerNorm layer { elementwise_affine: false }", (T,), (2, 5, 8), flops=400),
    Case("layernorm-middle", "LayerNorm layer { axis: 1 }", (T,), (2, 5, 8), params=10, flops=560),
    # 5 FLOPs per element exact, 9 tanh-approximate
    Case("gelu", "GELU layer", (X,), (2, 8, 5, 5), flops=2000),
    Case("gelu-tanh", "GELU layer { approximate: tanh }", (X,), (2, 8, 5, 5), flops=3600),
    Case("permute-nhwc", "Permute layer { order: [0, 2, 3, 1] }", (X,), (2, 5, 5, 8)),
    Case("permute-tokens", "Permute layer { order: [0, 2, 1] }", (T,), (2, 8, 5)),
    # MACs = batch·M·K·N = 2·3·4·6·5 = 720
    Case(
        "matmul",
        "MatMul layer { bottom: [a, b] }",
        (("N", 3, 4, 6), ("N", 3, 6, 5)),
        (2, 3, 4, 5),
        macs=720,
        flops=1440,
    ),
    Case(
        "matmul-transpose-b",
        "MatMul layer { bottom: [a, b]  transpose_b: true }",
        (("N", 3, 4, 6), ("N", 3, 5, 6)),
        (2, 3, 4, 5),
        macs=720,
        flops=1440,
    ),
    Case(
        "matmul-broadcast",
        "MatMul layer { bottom: [a, b] }",
        (("N", 3, 4, 6), (6, 5)),
        (2, 3, 4, 5),
        macs=720,
        flops=1440,
    ),
    Case("take-first", "Take layer { axis: 1  index: 0 }", (T,), (2, 8)),
    Case("take-last", "Take layer { axis: -1  index: -1 }", (T,), (2, 5)),
    # tokens·D params
    Case("class-token", "ClassToken layer", (T,), (2, 6, 8), params=8),
    Case("class-tokens-2", "ClassToken layer { tokens: 2 }", (T,), (2, 7, 8), params=16),
    # L·D params, one add per element
    Case("position-embedding", "PositionEmbedding layer", (T,), (2, 5, 8), params=40, flops=80),
    # 4·D² + 4·D = 288; MACs 2·(4·5·64 + 2·25·8) = 3360; FLOPs 6720 + 2·(160 + 40 + 3·2·25) = 7420
    Case(
        "attention",
        "MultiheadAttention layer { num_heads: 2 }",
        (T,),
        (2, 5, 8),
        params=288,
        macs=3360,
        flops=7420,
    ),
    # one head; no bias: 256 params, FLOPs 6720 + 2·(40 + 75) = 6950
    Case(
        "attention-1-head-no-bias",
        "MultiheadAttention layer { num_heads: 1  bias: false }",
        (T,),
        (2, 5, 8),
        params=256,
        macs=3360,
        flops=6950,
    ),
    Case("stochastic-depth", "StochasticDepth layer { p: 0.1 }", (X,), (2, 8, 5, 5)),
    Case("layer-scale-channels", "LayerScale layer", (X,), (2, 8, 5, 5), params=8, flops=400),
    Case("layer-scale-last", "LayerScale layer { axis: -1 }", (T,), (2, 5, 8), params=8, flops=80),
    # with the residual: a multiply and an add per element
    Case(
        "layer-scale-residual",
        "LayerScale layer { bottom: [a, b] }",
        (X, X),
        (2, 8, 5, 5),
        params=8,
        flops=800,
    ),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.ort
@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case, dynamic: bool, opset: int) -> None:
    run_case(case, dynamic=dynamic, opset=opset)


@pytest.mark.ort
@pytest.mark.parametrize(
    ("text", "shape", "opset", "ops"),
    [
        ("LayerNorm layer", T, 21, ["LayerNormalization"]),
        ("LayerNorm layer { axis: 1 }", X, 21, ["Transpose", "LayerNormalization", "Transpose"]),
        ("GELU layer", X, 21, ["Gelu"]),
        ("GELU layer", X, 13, ["Div", "Erf", "Add", "Mul", "Mul"]),
        ("StochasticDepth layer", X, 21, ["Identity"]),
    ],
)
def test_onnx_lowerings(text: str, shape: tuple, opset: int, ops: list[str]) -> None:
    from netspec.compiler import compile_graph

    graph = build_graph(Case(text, text, (shape,), ()))
    model = compile_graph(bind(graph, batch=BATCH), opset=opset)
    assert [n.op_type for n in model.graph.node] == ops, text


@pytest.mark.ort
def test_attention_is_one_projection_and_two_batched_matmuls() -> None:
    # What makes the layer as fast as torch's export: the projections as Gemms reading torch's
    # [out, in] weights as stored (no constant for onnxruntime to fold at load), the 1/√d scale
    # as a Mul by a scalar on the queries (fused into the MatMul), QKᵀ and AV as batched MatMuls.
    from onnx import numpy_helper

    from netspec.compiler import compile_graph

    graph = build_graph(Case("a", "MultiheadAttention layer { num_heads: 2 }", (T,), ()))
    model = compile_graph(bind(graph, batch=BATCH))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 2 and ops.count("MatMul") == 2 and ops.count("Softmax") == 1
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert [n.input[1] for n in gemms] == ["layer.in_proj_weight", "layer.out_proj.weight"]
    assert all(a.name == "transB" and a.i == 1 for n in gemms for a in n.attribute)
    # Nothing computed from constants alone: onnxruntime has nothing to fold when it loads it.
    constants = {t.name for t in model.graph.initializer}
    assert not [n.op_type for n in model.graph.node if n.input and all(i in constants for i in n.input)]
    scale = next(i for i in model.graph.initializer if i.name == "layer/query_scale")
    assert float(numpy_helper.to_array(scale)) == 0.5  # 1/√(8/2)


# ---------------------------------------------------------------- the references, independently


@pytest.mark.unit
def test_layer_norm_formula() -> None:
    x = np.array([[1.0, 2.0, 3.0, 6.0]])  # mean 3, variance (4 + 1 + 0 + 9)/4 = 3.5
    weights = {"weight": np.array([1.0, 2.0, 1.0, 1.0]), "bias": np.array([0.0, 0.0, 0.0, 1.0])}
    expected = (
        np.array([[-2.0, -1.0, 0.0, 3.0]]) / math.sqrt(3.5 + 1e-5) * weights["weight"] + weights["bias"]
    )
    np.testing.assert_allclose(reference_of("LayerNorm", [x], weights), expected, rtol=1e-14)
    # channels of NCHW: each pixel normalised over C alone
    grid = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2) ** 1.5
    ones = {"weight": np.ones(3), "bias": np.zeros(3)}
    got = reference_of("LayerNorm", [grid], ones, axis=1, eps=1e-6)
    centred = grid - grid.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(
        got, centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-6), rtol=1e-12
    )


@pytest.mark.unit
def test_gelu_formulas() -> None:
    grid = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    # Φ(x) from the complementary error function, written independently of the layer's erf
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in grid])
    np.testing.assert_allclose(reference_of("GELU", [grid]), grid * phi, rtol=1e-14, atol=1e-16)
    # tanh form: within 1e-3 of exact (Hendrycks & Gimpel), equal to its own formula
    tanh = reference_of("GELU", [grid], approximate="tanh")
    np.testing.assert_allclose(tanh, grid * phi, atol=1e-3)
    assert abs(tanh[5] - 0.8411919906) < 1e-9  # torch.nn.functional.gelu(1.0, approximate="tanh")


@pytest.mark.unit
def test_attention_reference_against_a_per_head_loop() -> None:
    rng = np.random.default_rng(0)
    batch, length, width, heads = 2, 4, 6, 3
    x = rng.standard_normal((batch, length, width))
    weights = {
        "in_proj_weight": rng.standard_normal((3 * width, width)) / 3,
        "in_proj_bias": rng.standard_normal(3 * width),
        "out_proj.weight": rng.standard_normal((width, width)),
        "out_proj.bias": rng.standard_normal(width),
    }
    got = reference_of("MultiheadAttention", [x], weights, num_heads=heads)
    head = width // heads
    w, b = weights["in_proj_weight"], weights["in_proj_bias"]
    expected = np.zeros_like(x)
    for n in range(batch):
        outputs = []
        for h in range(heads):
            rows = slice(h * head, (h + 1) * head)
            q = x[n] @ w[:width][rows].T + b[:width][rows]
            k = x[n] @ w[width : 2 * width][rows].T + b[width : 2 * width][rows]
            v = x[n] @ w[2 * width :][rows].T + b[2 * width :][rows]
            scores = np.array([[q[i] @ k[j] / math.sqrt(head) for j in range(length)] for i in range(length)])
            probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
            outputs.append(probabilities @ v)
        expected[n] = (
            np.concatenate(outputs, axis=1) @ weights["out_proj.weight"].T + weights["out_proj.bias"]
        )
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.unit
def test_class_token_and_position_embedding() -> None:
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    token = np.array([[[9.0, 8.0, 7.0, 6.0]]])
    got = reference_of("ClassToken", [x], {"class_token": token})
    assert got.shape == (2, 4, 4)
    np.testing.assert_array_equal(got[:, 0], [[9, 8, 7, 6]] * 2)
    np.testing.assert_array_equal(got[:, 1:], x)
    embedding = np.ones((1, 3, 4))
    np.testing.assert_array_equal(reference_of("PositionEmbedding", [x], {"pos_embedding": embedding}), x + 1)


@pytest.mark.unit
def test_bare_arrays_sit_beside_the_layer() -> None:
    from netspec.diagnostics import SourceFile
    from netspec.elaborate import elaborate

    text = (
        "input a: [N, 4, 8]\nClassToken cls\nPositionEmbedding encoder.pos\n"
        "MultiheadAttention encoder.attn { num_heads: 2 }\nLayerScale encoder.scale { axis: -1 }\n"
        "LayerScale encoder.scale2 { axis: -1  array: gamma }\n"
    )
    graph = elaborate(SourceFile("names.net", text))
    arrays = bind(graph).expected_arrays
    assert {name: a.spec.shape for name, a in arrays.items()} == {
        "class_token": (1, 1, 8),
        "encoder.pos_embedding": (1, 5, 8),
        "encoder.attn.in_proj_weight": (24, 8),
        "encoder.attn.in_proj_bias": (24,),
        "encoder.attn.out_proj.weight": (8, 8),
        "encoder.attn.out_proj.bias": (8,),
        "encoder.layer_scale": (8,),
        "encoder.gamma": (8,),
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 5, 8]\nPermute p { order: [0, 2] }",
            "order [0, 2] is not a permutation of the 3 axes",
        ),
        (
            "input a: [N, 5, 8]\nMultiheadAttention m { num_heads: 3 }",
            "num_heads 3 does not divide the width 8",
        ),
        (
            "input a: [N, 8, 4, 4]\nMultiheadAttention m { num_heads: 2 }",
            "expects a token sequence [N, L, D]",
        ),
        (
            "input a: [N, 4, 6]\ninput b: [N, 5, 3]\nMatMul m { bottom: [a, b] }",
            "the first's last axis is 6, the second's the second-to-last axis 5",
        ),
        ("input a: [N, 5, 8]\nTake t { axis: 1  index: 5 }", "index 5 is out of range for axis 1"),
        ("input a: [N, 5, 8]\nTake t { axis: 0 }", "cannot index the batch axis"),
        ("input a: [N, 5, 8]\nGELU g { approximate: erf }", "expected one of none, tanh, got 'erf'"),
        (
            "input a: [N, 8, 5, 5]\ninput b: [N, 8, 5, 4]\nLayerScale l { bottom: [a, b] }",
            "needs a residual of the input's shape [2, 8, 5, 5], got [2, 8, 5, 4]",
        ),
        ("input a: [N, 5, 8]\nLayerNorm l { axis: 3 }", "axis 3 is out of range for the 3-D input"),
        ("input a: [N, 5, 8]\nLayerNorm l { epsilon: 1e-6 }", "LayerNorm has no parameter 'epsilon'"),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)


@pytest.mark.unit
def test_a_bare_array_may_not_take_a_tensor_name() -> None:
    from netspec.diagnostics import NetspecError, SourceFile
    from netspec.elaborate import elaborate

    graph = elaborate(SourceFile("bad.net", "input a: [N, 5, 8]\nLayerScale layer_scale { axis: -1 }\n"))
    with pytest.raises(NetspecError) as caught:
        bind(graph)
    assert "layer 'layer_scale' stores its array as 'layer_scale', which is also a tensor's name" in str(
        caught.value
    )
