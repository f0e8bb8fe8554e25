"""BatchNorm folding (compile's default; ``--keep-bn`` keeps the nodes): the folded model
computes what the unfolded one computes, with random non-identity statistics, and has no
BatchNormalization node where it folded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from netspec.compiler import compile_graph, load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.passes.fold_batchnorm import fold_batchnorm
from netspec.reference import run_reference
from netspec.typed import TypedGraph, bind
from netspec.verify import max_relative_error, sample_inputs
from netspec.weights import initialize_weights

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"data": (1, 3, 64, 64)}


def random_statistics(typed: TypedGraph, seed: int) -> dict[str, np.ndarray]:
    """He-initialised weights with every BatchNorm/Scale array drawn at random, far from
    identity: γ and Scale factors in [0.5, 1.5], β, biases and means N(0, 0.5²), variances in
    [0.5, 2], Caffe's scale factor in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    weights = initialize_weights(typed, seed)
    for name, value in weights.items():
        suffix = name.rsplit(".", 1)[-1]
        if suffix in ("running_var", "scale_factor"):
            fresh = rng.uniform(0.5, 2.0, value.shape)
        elif suffix == "running_mean" or (suffix == "bias"):
            fresh = rng.normal(0.0, 0.5, value.shape)
        elif (suffix == "weight" and value.ndim == 1) or suffix == "slope":  # γ, Scale/BN factors
            fresh = rng.uniform(0.5, 1.5, value.shape)
        else:
            continue
        weights[name] = fresh.astype(np.float32)
    return weights


def run_onnx(model: object, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from netspec.runtime import create_session

    return create_session(model.SerializeToString(), "cpu").run(feeds)  # type: ignore[attr-defined]


def op_types(model: object) -> list[str]:
    return [node.op_type for node in model.graph.node]  # type: ignore[attr-defined]


def folded_and_unfolded(
    graph: Graph, input_shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0
) -> tuple[dict[str, float], list[str], dict[str, np.ndarray]]:
    """Max relative error of the folded model against the unfolded one (both onnxruntime),
    the folded model's op types, and the float64 reference's outputs."""
    from netspec.export.onnx import check_model

    typed = bind(graph, 1, input_shapes)
    weights = random_statistics(typed, seed)
    feeds = sample_inputs(typed, seed)
    unfolded = compile_graph(typed, weights, fold_bn=False)
    folded = compile_graph(typed, weights)
    check_model(folded)
    expected, got = run_onnx(unfolded, feeds), run_onnx(folded, feeds)
    errors = {name: max_relative_error(got[name], expected[name]) for name in graph.outputs}
    return errors, op_types(folded), got


@pytest.mark.ort
def test_torchvision_resnet18_folds_every_batchnorm() -> None:
    graph = load_graph(ROOT / "zoo" / "resnet18.net")
    assert sum(node.type == "BatchNorm" for node in graph.nodes) == 20
    errors, ops, _ = folded_and_unfolded(graph, SMALL)
    assert max(errors.values()) <= 1e-5, errors
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == 20


@pytest.mark.ort
def test_caffe_resnet50_folds_batchnorm_and_scale() -> None:
    # Caffe's chain: Convolution (with bias), in-place BatchNorm with its scale factor, Scale
    # with bias_term.
    # 200×200 is about the smallest input its 7×7 pool5 accepts (7×7 after five halvings).
    shapes = {"data": (1, 3, 200, 200)}
    graph = load_graph(ROOT / "tests" / "data" / "caffe" / "resnet50.prototxt", input_shapes=shapes)
    typed = bind(graph, 1, shapes)
    folded = fold_batchnorm(typed, random_statistics(typed, 1))
    assert len(folded.folds) == 53
    assert {node.type for node in folded.typed.graph.nodes}.isdisjoint({"BatchNorm", "Scale"})
    errors, ops, _ = folded_and_unfolded(graph, shapes, seed=1)
    assert max(errors.values()) <= 1e-5, errors
    assert "BatchNormalization" not in ops


def spec(text: str) -> Graph:
    return elaborate(SourceFile("fold.net", text))


FOLDABLE = {
    "conv-no-bias": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 bias_term: false }
        BatchNorm bn {}
    """,
    "conv-bias-caffe-batchnorm-scale": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 stride: 2 pad: 1 }
        BatchNorm bn { affine: false caffe_scale_factor: true eps: 0.001 }
        Scale scale { bias_term: true }
    """,
    "conv-batchnorm-no-affine": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 }
        BatchNorm bn { affine: false }
    """,
    "conv-scale-without-bias": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 }
        BatchNorm bn { affine: false }
        Scale scale {}
    """,
    "grouped-dilated-conv": """
        input a: [1, 4, 11, 11]
        Convolution conv { num_output: 6 kernel_size: 3 group: 2 dilation: 2 bias_term: false }
        BatchNorm bn {}
    """,
    "depthwise-conv": """
        input a: [1, 4, 8, 8]
        ConvolutionDepthwise conv { num_output: 8 kernel_size: 3 pad: 1 }
        BatchNorm bn {}
    """,
    "grouped-deconvolution": """
        input a: [1, 4, 5, 5]
        Deconvolution conv { num_output: 6 kernel_size: 3 stride: 2 group: 2 }
        BatchNorm bn {}
        Scale scale { bias_term: true }
    """,
    "inner-product": """
        input a: [2, 3, 4, 4]
        InnerProduct fc { num_output: 5 bias_term: false }
        BatchNorm bn {}
    """,
    # SegNet's BN fork layer (slope and bias, statistics already folded in).
    "conv-segnet-bn": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 pad: 1 }
        BN bn {}
    """,
    # Any chain of per-channel affine layers, a Scale alone included.
    "conv-scale-batchnorm-bn": """
        input a: [1, 3, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 bias_term: false }
        Scale scale { bias_term: true }
        BatchNorm bn {}
        BN bn2 {}
    """,
}


@pytest.mark.ort
@pytest.mark.parametrize("name", FOLDABLE)
def test_chain_folds_into_one_layer(name: str) -> None:
    graph = spec(FOLDABLE[name])
    errors, ops, got = folded_and_unfolded(graph, seed=len(name))
    assert max(errors.values()) <= 1e-5, errors
    assert ops in (["Conv"], ["ConvTranspose"], ["Flatten", "Gemm"])
    # The folded model against the float64 reference of the graph as written.
    typed = bind(graph, 1)
    weights = random_statistics(typed, len(name))
    expected = run_reference(graph, weights, sample_inputs(typed, len(name)))
    for output in graph.outputs:
        assert max_relative_error(got[output], expected[output]) <= 1e-5


NOT_FOLDABLE = {
    # The convolution's output is also read by the ReLU: folding would change what it sees.
    "two-consumers": """
        input a: [1, 3, 8, 8]
        Convolution conv { num_output: 4 kernel_size: 3 pad: 1 }
        BatchNorm bn { bottom: conv }
        ReLU relu { bottom: conv }
        Eltwise sum { bottom: [bn, relu] }
    """,
    # The convolution's output is a graph output.
    "conv-output-kept": """
        input a: [1, 3, 8, 8]
        Convolution conv { num_output: 4 kernel_size: 3 }
        BatchNorm bn {}
        output: [conv, bn]
    """,
    # BatchNorm over axis 1 of a [N, T, F] InnerProduct output normalises T, not the features.
    "inner-product-3d": """
        input a: [2, 3, 5]
        InnerProduct fc { num_output: 4 axis: 2 }
        BatchNorm bn {}
    """,
    # A BatchNorm after a pooling layer has no weights to fold into.
    "after-pooling": """
        input a: [1, 3, 8, 8]
        Pooling pool { pool: MAX kernel_size: 2 stride: 2 }
        BatchNorm bn {}
    """,
}


@pytest.mark.ort
@pytest.mark.parametrize("name", NOT_FOLDABLE)
def test_chain_is_left_alone(name: str) -> None:
    graph = spec(NOT_FOLDABLE[name])
    typed = bind(graph, 1)
    assert not fold_batchnorm(typed, random_statistics(typed, 0)).folds
    errors, ops, _ = folded_and_unfolded(graph)
    assert max(errors.values()) <= 1e-5, errors
    assert "BatchNormalization" in ops


@pytest.mark.ort
def test_scale_with_a_second_input_is_not_folded() -> None:
    graph = spec(
        """
        input a: [1, 3, 8, 8]
        input s: [4, 6, 6]
        Convolution conv { bottom: a num_output: 4 kernel_size: 3 }
        BatchNorm bn {}
        Scale scale { bottom: [bn, s] }
        """
    )
    typed = bind(graph, 1)
    folded = fold_batchnorm(typed, random_statistics(typed, 0))
    assert [(f.kept, f.merged) for f in folded.folds] == [("conv", ("bn",))]
    assert [n.type for n in folded.typed.graph.nodes if n.inputs] == ["Convolution", "Scale"]
    errors, _, _ = folded_and_unfolded(graph)
    assert max(errors.values()) <= 1e-5, errors


@pytest.mark.unit
def test_folded_values_by_hand() -> None:
    # 1×1 convolution, one channel: w = 2, bias 1; BatchNorm mean 3, var 4 - eps, γ 5, β 6:
    # y = 5·(2x + 1 − 3)/2 + 6 = 5x + 1, so the folded weight is 5 and the bias 1.
    graph = spec(
        "input a: [1, 1, 2, 2]\nConvolution conv { num_output: 1 kernel_size: 1 }\nBatchNorm bn {}\n"
    )
    typed = bind(graph, 1)
    weights = {
        "conv.weight": np.full((1, 1, 1, 1), 2, np.float32),
        "conv.bias": np.ones(1, np.float32),
        "bn.weight": np.full(1, 5, np.float32),
        "bn.bias": np.full(1, 6, np.float32),
        "bn.running_mean": np.full(1, 3, np.float32),
        "bn.running_var": np.full(1, 4 - 1e-5, np.float32),
    }
    folded = fold_batchnorm(typed, weights)
    np.testing.assert_allclose(folded.weights["conv.weight"].reshape(-1), [5.0], rtol=1e-6)
    np.testing.assert_allclose(folded.weights["conv.bias"], [1.0], rtol=1e-6)
    (node,) = [n for n in folded.typed.graph.nodes if n.inputs]
    assert (node.name, node.outputs) == ("conv", ("bn",))


@pytest.mark.ort
def test_compile_command_folds_and_converts(tmp_path: Path) -> None:
    import onnx

    from netspec.cli import main

    output = tmp_path / "resnet18.onnx"
    spec_path = str(ROOT / "zoo" / "resnet18.net")
    args = ["compile", spec_path, "-o", str(output), "--input", "data:1x3x64x64"]
    assert main([*args, "--dtype", "float16"]) == 0
    model = onnx.load(output)
    assert "BatchNormalization" not in op_types(model)  # folded by default, as exporters do
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert main([*args, "--keep-bn"]) == 0
    assert op_types(onnx.load(output)).count("BatchNormalization") == 20


@pytest.mark.ort
def test_residual_scaling_folds_into_the_branch_convolution() -> None:
    # Inception-ResNet's scaled residual (and stochastic depth's survival factor): the coeff of
    # the branch input moves into the convolution (after its BatchNorm folded), so the sum is a
    # plain Add; the shortcut's factor 1 stays, a factor on a graph input stays too.
    graph = spec(
        """
        input a: [1, 4, 9, 9]
        Convolution conv { num_output: 4 kernel_size: 3 pad: 1 bias_term: false }
        BatchNorm bn {}
        Eltwise sum { bottom: [a, bn]  coeff: [1, 0.17] }
        Eltwise again { bottom: [sum, a]  coeff: [1, 0.5] }
        """
    )
    errors, ops, got = folded_and_unfolded(graph, seed=4)
    assert max(errors.values()) <= 1e-5, errors
    assert ops == ["Conv", "Add", "Mul", "Add"]  # the 0.5 on the graph input cannot fold
    typed = bind(graph, 1)
    weights = random_statistics(typed, 4)
    expected = run_reference(graph, weights, sample_inputs(typed, 4))
    assert max_relative_error(got["again"], expected["again"]) <= 1e-5
