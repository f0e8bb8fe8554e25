"""``--dtype float16``: float16 weights, inputs, outputs and activations, float32 kept where the
export/float16 module says, a model that passes the checker and strict shape inference, outputs
within float16 tolerance of float32, and report figures in float16 bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_layers import assert_shapes_agree

from netspec.compiler import compile_graph, load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.typed import bind
from netspec.verify import TOLERANCES, max_relative_error, sample_inputs, small_input_shapes

ROOT = Path(__file__).resolve().parent.parent
FLOAT16_TOLERANCE = TOLERANCES["float16"]  # a whole model (see netspec.verify)
# One layer: a few float16 unit roundoffs (4.9e-4); the layer cases measure up to 6.2e-4.
FLOAT16_LAYER_TOLERANCE = 2e-3

# One model per family at a small input (LeNet and NIN at their own); alexnet_caffe has LRN and a
# Softmax (computed in float32), NIN global pooling, googlenet and densenet concatenations.
MODELS = ["lenet5.net", "alexnet_caffe.net", "nin.net", "googlenet.net", "resnet18.net", "densenet121.net"]


def element_type(name: str) -> int:
    from onnx import TensorProto

    return getattr(TensorProto, name)


def run(model: object, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from netspec.runtime import create_session

    return create_session(model.SerializeToString(), "cpu").run(feeds)  # type: ignore[attr-defined]


@pytest.mark.ort
@pytest.mark.parametrize("spec", MODELS)
def test_zoo_model_in_float16_matches_float32(spec: str) -> None:
    from netspec.export.onnx import check_model, inferred_shapes

    graph = load_graph(ROOT / "zoo" / spec)
    shapes = small_input_shapes(graph)
    typed = bind(graph, 1, shapes)
    types = typed.types
    # BatchNorm kept, so that every tensor netspec typed is in the model.
    half = compile_graph(typed.with_dtype("float16"), fold_bn=False)
    check_model(half)
    assert_shapes_agree(graph, types, inferred_shapes(half))

    FLOAT16 = element_type("FLOAT16")
    assert {i.type.tensor_type.elem_type for i in half.graph.input} == {FLOAT16}
    assert {o.type.tensor_type.elem_type for o in half.graph.output} == {FLOAT16}
    assert {t.data_type for t in half.graph.initializer if len(t.dims) > 1} == {FLOAT16}

    feeds = sample_inputs(typed, seed=3)
    expected = run(compile_graph(bind(graph, input_shapes=shapes), fold_bn=False), feeds)
    got = run(half, feeds)
    for name in graph.outputs:
        assert got[name].dtype == np.float16
        assert np.isfinite(got[name]).all()
        assert max_relative_error(got[name], expected[name]) <= FLOAT16_TOLERANCE, name


def spec(text: str) -> Graph:
    return elaborate(SourceFile("dtype.net", text))


@pytest.mark.ort
def test_float32_ops_read_float32_and_their_tensors_stay_float16() -> None:
    graph = spec(
        "input a: [1, 8, 5, 5]\n"
        "LRN lrn { local_size: 5 alpha: 0.5 beta: 0.75 }\n"
        "Convolution conv { num_output: 6 kernel_size: 3 }\n"
        "Softmax prob {}\n"
    )
    model = compile_graph(bind(graph, dtype="float16"))
    from netspec.export.onnx import check_model

    check_model(model)
    nodes = {node.name: node for node in model.graph.node}
    # LRN reads its input cast to float32 and writes lrn/float32, cast back to the float16 "lrn".
    assert list(nodes["lrn"].input) == ["a/as_float32"]
    assert list(nodes["lrn"].output) == ["lrn/float32"]
    assert list(nodes["lrn/cast_float16"].output) == ["lrn"]
    assert list(nodes["prob"].output) == ["prob/float32"]
    infos = {i.name: i.type.tensor_type.elem_type for i in [*model.graph.value_info, *model.graph.output]}
    assert infos["lrn"] == infos["prob"] == infos["conv"] == element_type("FLOAT16")

    # LRN squares its input: values of a few hundred overflow float16 (65504) inside a
    # float16 LRN, not in this one.
    typed = bind(graph, 1)
    feeds = {"a": (300 * sample_inputs(typed, 0)["a"]).astype(np.float32)}
    expected = run(compile_graph(bind(graph)), feeds)["prob"]
    got = run(model, feeds)["prob"]
    assert np.isfinite(got).all()
    assert max_relative_error(got, expected) <= FLOAT16_LAYER_TOLERANCE


@pytest.mark.ort
def test_index_outputs_stay_float32() -> None:
    # float16 holds integers exactly only up to 2048: max-pooling masks (Caffe's flat indices
    # into each H·W plane, here up to 64·64) and ArgMax indices stay float32 and exact.
    graph = spec(
        "input a: [2, 3, 64, 64]\n"
        "Pooling pool { pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample up { bottom: [pooled, mask] }\n"
        "ArgMax arg { bottom: a axis: 1 }\n"
        "output: [up, mask, arg]\n"
    )
    model = compile_graph(bind(graph, batch=2, dtype="float16"))
    from netspec.export.onnx import check_model

    check_model(model)
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {
        "up": element_type("FLOAT16"),
        "mask": element_type("FLOAT"),
        "arg": element_type("FLOAT"),
    }
    typed = bind(graph, 2)
    # Inputs already float16 values: both models see the same numbers (and the same ties).
    feeds = {k: v.astype(np.float16).astype(np.float32) for k, v in sample_inputs(typed, 0).items()}
    expected = run(compile_graph(bind(graph, batch=2)), feeds)
    got = run(model, feeds)
    np.testing.assert_array_equal(got["mask"], expected["mask"])
    assert got["mask"].max() > 2048
    np.testing.assert_array_equal(got["arg"], expected["arg"])
    assert max_relative_error(got["up"], expected["up"]) <= FLOAT16_LAYER_TOLERANCE


@pytest.mark.ort
def test_float16_halves_the_model_file() -> None:
    graph = load_graph(ROOT / "zoo" / "resnet18.net")
    full = len(compile_graph(bind(graph)).SerializeToString())
    half = len(compile_graph(bind(graph, dtype="float16")).SerializeToString())
    # 11.7M parameters: 46.8 MB of float32 weights, 23.4 MB in float16; the graph itself is small.
    assert 0.49 < half / full < 0.52


@pytest.mark.unit
def test_report_counts_bytes_in_the_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    totals = {}
    for dtype in ("float32", "float16"):
        assert main(["report", str(ROOT / "zoo" / "resnet18.net"), "--format", "json", "--dtype", dtype]) == 0
        totals[dtype] = json.loads(capsys.readouterr().out)["totals"]
    # ResNet-18: 11,689,512 params + 9,600 buffers, 4 bytes each in float32, 2 in float16.
    assert totals["float32"]["weight_bytes"] == (11_689_512 + 9_600) * 4
    assert totals["float16"]["weight_bytes"] == (11_689_512 + 9_600) * 2
    for key in ("activation_bytes", "peak_activation_bytes"):
        assert totals["float16"][key] * 2 == totals["float32"][key]
    assert totals["float16"]["params"] == totals["float32"]["params"]


@pytest.mark.unit
def test_unsupported_dtype_is_refused() -> None:
    graph = spec("input a: [1, 3]\nReLU r {}\n")
    with pytest.raises(ValueError, match="bfloat16"):
        compile_graph(bind(graph, dtype="bfloat16"))


def layer_cases() -> list[object]:
    """Every per-layer case of tests/test_layers*.py."""
    import importlib

    cases = []
    for path in sorted(Path(__file__).resolve().parent.glob("test_layers*.py")):
        module = importlib.import_module(path.stem)
        cases += [pytest.param(case, id=f"{path.stem}:{case.id}") for case in getattr(module, "CASES", [])]
    return cases


@pytest.mark.ort
@pytest.mark.parametrize("case", layer_cases())
def test_every_layer_case_in_float16(case: object) -> None:
    # Each configuration compiles in float16 under the checker and strict shape inference, and
    # onnxruntime's float16 result is within float16 tolerance of its float32 one (inputs already
    # float16 values, so both see the same numbers).
    from test_layers import BATCH, build_graph, random_weights

    from netspec.export.onnx import check_model

    graph = build_graph(case)
    typed = bind(graph, BATCH)
    weights = random_weights(typed, seed=1)
    for name in weights:
        if name.endswith("scale_factor"):  # Caffe's BatchNorm divides by it: keep it positive
            weights[name] = np.abs(weights[name]) + 0.5
    half = compile_graph(typed.with_dtype("float16"), weights)
    check_model(half)
    feeds = {k: v.astype(np.float16).astype(np.float32) for k, v in sample_inputs(typed, 0).items()}
    expected = run(compile_graph(typed, weights), feeds)
    got = run(half, feeds)
    for name, value in expected.items():
        assert max_relative_error(got[name], value) <= FLOAT16_LAYER_TOLERANCE, name
