"""Caffe prototxt files as they are: every syntax form, Caffe's semantics, and the real public
files in tests/data/caffe (origins in SOURCES.md there) against their expected figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_layers import assert_shapes_agree

from netspec.caffe import read_caffe
from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError, SourceFile
from netspec.graph import Graph
from netspec.typed import bind

DATA = Path(__file__).resolve().parent / "data" / "caffe"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def read(text: str, phase: str = "TEST", **input_shapes: tuple[int, ...]) -> Graph:
    return read_caffe(SourceFile("net.prototxt", text), phase, input_shapes)


def wiring(graph: Graph) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return {node.name: (node.inputs, node.outputs) for node in graph.nodes}


def fails(text: str, **kwargs: object) -> NetspecError:
    with pytest.raises(NetspecError) as caught:
        read(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


# ------------------------------------------------------------------------------ real files


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file_counts(name: str) -> None:
    expected = EXPECTED[name]
    graph = load_graph(DATA / f"{name}.prototxt", phase=expected["options"].get("phase", "TEST"))
    analysis = bind(graph, batch=1)
    totals = analysis.counts.totals
    assert (totals.params, totals.buffers, totals.macs) == (
        expected["params"],
        expected["buffers"],
        expected["macs"],
    )
    if expected["output_shape_batch1"] is not None:
        assert [list(analysis.types[t].dims) for t in graph.outputs] == [expected["output_shape_batch1"]]


# Smaller inputs keep the float64 reference quick where the net allows any size.
NUMERIC_INPUTS = {"fcn8s_voc": {"data": (1, 3, 64, 64)}}


@pytest.mark.ort
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file_runs_and_matches_the_reference(name: str) -> None:
    import onnx
    import onnxruntime

    from netspec.compiler import compile_graph
    from netspec.export.onnx import inferred_shapes
    from netspec.reference import run_reference
    from netspec.weights import initialize_weights

    expected = EXPECTED[name]
    graph = load_graph(DATA / f"{name}.prototxt", phase=expected["options"].get("phase", "TEST"))
    shapes = NUMERIC_INPUTS.get(name, {})
    typed = bind(graph, 1, shapes)
    types = typed.types
    weights = initialize_weights(typed, seed=3)
    rng = np.random.default_rng(7)
    for key, value in weights.items():  # BatchNorm statistics away from identity
        if key.endswith(("running_var", "scale_factor")):
            weights[key] = (0.5 + rng.random(value.shape)).astype(np.float32)
        elif key.endswith("running_mean"):
            weights[key] = (0.1 * rng.standard_normal(value.shape)).astype(np.float32)
    model = compile_graph(typed, weights, fold_bn=False)
    onnx.checker.check_model(model, full_check=True)
    assert_shapes_agree(graph, types, inferred_shapes(model))
    feeds = {
        node.outputs[0]: rng.standard_normal(types[node.outputs[0]].dims).astype(np.float32)
        for node in graph.input_nodes
    }
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(graph.outputs, session.run(list(graph.outputs), feeds), strict=True))
    want = run_reference(graph, weights, feeds)
    for tensor in graph.outputs:
        assert got[tensor].shape == types[tensor].dims
        scale = np.abs(want[tensor]).max()
        assert np.abs(got[tensor] - want[tensor]).max() <= 1e-4 * scale + 1e-6


# ------------------------------------------------------------------------------ input forms

LAYERS = """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


@pytest.mark.unit
def test_input_layer() -> None:
    graph = read('layer { name: "in" type: "Input" top: "data" '
                 "input_param { shape: { dim: 10 dim: 3 dim: 8 dim: 8 } } }" + LAYERS)  # fmt: skip
    assert wiring(graph)["in"] == ((), ("data",))
    assert bind(graph, batch=2).types["conv"].dims == (2, 4, 6, 6)


@pytest.mark.unit
def test_top_level_input_with_input_shape_and_input_dim() -> None:
    for header in (
        'input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }',
        'input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8',
    ):
        graph = read(header + LAYERS)
        assert bind(graph).types["conv"].dims == (1, 4, 6, 6)


@pytest.mark.unit
def test_data_layer_shape_from_crop_size_and_label_left_out() -> None:
    graph = read(
        """
layer { name: "data" type: "Data" top: "data" top: "label"
        transform_param { crop_size: 8 } data_param { source: "x" batch_size: 64 } }
"""
        + LAYERS
        + """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "conv" bottom: "label" top: "acc" }
"""
    )
    assert [n.name for n in graph.nodes] == ["data", "conv"]
    assert bind(graph).types["data"].dims == (1, 3, 8, 8)
    assert graph.outputs == ("conv",)


@pytest.mark.unit
def test_data_layer_without_shape_needs_input_option() -> None:
    text = 'layer { name: "data" type: "Data" top: "data" data_param { source: "x" } }' + LAYERS
    error = fails(text)
    assert "the shape of input 'data' is not in the file" in error.diagnostics[0].message
    assert error.diagnostics[0].hint == "give it on the command line: --input data:1x3x224x224"
    assert bind(read(text, data=(1, 1, 9, 9))).types["conv"].dims == (1, 4, 7, 7)


# ------------------------------------------------------------------------------ semantics


@pytest.mark.unit
def test_phases_select_layers() -> None:
    text = """
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "a" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "b" type: "TanH" bottom: "data" top: "b" include: { phase: TEST } }
layer { name: "c" type: "Sigmoid" bottom: "data" top: "c" exclude { phase: TEST } }
layer { name: "d" type: "AbsVal" bottom: "data" top: "d" include { phase: TEST stage: "deploy" } }
"""
    assert [n.name for n in read(text).nodes] == ["data", "b"]
    assert [n.name for n in read(text, phase="TRAIN").nodes] == ["data", "a", "c"]


@pytest.mark.unit
def test_in_place_layers_make_new_tensor_versions() -> None:
    graph = read(
        """
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
"""
        + LAYERS
        + """
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { kernel_size: 2 } }
"""
    )
    assert wiring(graph)["relu"] == (("conv",), ("relu",))
    assert wiring(graph)["drop"] == (("relu",), ("drop",))
    assert wiring(graph)["pool"] == (("drop",), ("pool",))


@pytest.mark.unit
def test_in_place_tensor_avoids_blob_names() -> None:
    graph = read("""
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }
layer { name: "x" type: "TanH" bottom: "data" top: "relu" }
""")
    assert wiring(graph)["relu"] == (("data",), ("data/relu",))
    assert wiring(graph)["x"] == (("data/relu",), ("relu",))


@pytest.mark.unit
def test_legacy_v1_layers_blobs_lr_and_enum_types() -> None:
    graph = read("""
name: "v1"
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 0 blobs_lr: 0
         weight_decay: 1 convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "fc" type: INNER_PRODUCT bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc" bottom: "label" }
""")
    assert graph.name == "v1"
    assert [n.type for n in graph.nodes] == ["Input", "Convolution", "ReLU", "InnerProduct"]
    totals = bind(graph).counts.totals
    assert totals.params == 4 * 3 * 9 + 4 + 5 * 144 + 5
    assert totals.frozen == 4 * 3 * 9 + 4


@pytest.mark.unit
def test_shared_parameters_count_once_and_lr_mult_zero_is_frozen() -> None:
    graph = read("""
input: "a" input_shape { dim: 1 dim: 6 }
input: "b" input_shape { dim: 1 dim: 6 }
layer { name: "fa" type: "InnerProduct" bottom: "a" top: "fa" param { name: "w" lr_mult: 0 }
        param { name: "bias" } inner_product_param { num_output: 3 } }
layer { name: "fb" type: "InnerProduct" bottom: "b" top: "fb" param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 3 } }
""")
    counts = bind(graph).counts
    assert counts.totals.params == 6 * 3 + 3
    assert counts.totals.frozen == 18
    assert [row.params for row in counts.layers] == [0, 0, 21, 0]


@pytest.mark.unit
def test_text_format_variants() -> None:
    graph = read("""
# comment
name: 'quoted' ;
input: "data", input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
layer { name: 'conv' type: "Convolution" bottom: "data" top: "conv";
  convolution_param: { num_output: 2, kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 stride: 2 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 } }
""")
    assert graph.name == "quoted"
    typed = bind(graph)
    types = typed.types
    assert types["conv"].dims == (1, 2, 5, 5)
    assert graph.node("conv").layer.params.kernel_size == (3, 1)


@pytest.mark.unit
def test_fork_ceil_mode_is_a_warning() -> None:
    graph = read("""
input: "data" input_dim: 1 input_dim: 1 input_dim: 6 input_dim: 6
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false } }
""")
    assert bind(graph).types["pool"].dims == (1, 1, 2, 2)
    (warning,) = graph.warnings
    assert warning.severity == "warning" and "read as round_mode: FLOOR" in warning.message
    assert (warning.span.line, warning.span.column) == (4, 60)


# ------------------------------------------------------------------------------ errors

HEAD = 'input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        (HEAD + 'layer { name: "x" type: "Convolutoin" bottom: "data" top: "x" }',
         "layer 'x' has type 'Convolutoin', which netspec does not support; "
         "did you mean 'Convolution'?", 2, 25),
        (HEAD + 'layer { name: "x" type: "PSROIPooling" bottom: "data" top: "x" }',
         "layer 'x' has type 'PSROIPooling', which netspec does not support", 2, 25),
        (HEAD + 'layer { name: "x" type: "ReLU" bottom: "dta" top: "x" }',
         "layer 'x' reads blob 'dta', which no earlier layer writes; did you mean 'data'?", 2, 40),
        (HEAD + 'layer { name: "x" type: "ReLU" bottom: "data" top: "y" }\n'
                'layer { name: "z" type: "TanH" bottom: "data" top: "y" }',
         "layer 'z' writes blob 'y', which an earlier layer already wrote", 3, 52),
        (HEAD + 'layer { name: "x" type: "Slice" bottom: "data" top: "a" top: "a" }',
         "layer 'x' names the top 'a' twice; a layer's tops need distinct names", 2, 62),
        (HEAD + 'layer { name: "x" type: "Convolution" bottom: "data" top: "x" '
                "convolution_param { num_output: 2 kernel_size: 3 kernal_w: 2 } }",
         "Convolution has no parameter 'kernal_w'; did you mean 'kernel_w'?", 2, 112),
        (HEAD + 'layer { name: "x" type: "Convolution" bottom: "data" top: "x" '
                "convolution_param { num_output: 2 kernel_h: 3 } }",
         "'kernel_h' needs its partner 'kernel_w'", 2, 97),
        (HEAD + 'layer { name: "x" type: BOGUS bottom: "data" top: "x" }',
         "unknown legacy layer type BOGUS", 2, 25),
        (HEAD + 'layer { name: "x" type: "ReLU" bottom: "data" top: "x" ', "unexpected end of file", 2, 56),
        (HEAD + "layers_typo { }",
         "'layers_typo' is not a field of a Caffe net; did you mean 'layers'?", 2, 1),
        ('input: "data" input_dim: 1 input_dim: 3', "1 input(s) need 4 input_dim values, got 2", 1, 15),
    ],
)  # fmt: skip
def test_caffe_errors(text: str, message: str, line: int, column: int) -> None:
    diagnostic = fails(text).diagnostics[0]
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column)


MISSING_COLON = "fields are written 'key: value'; is the ':' missing?"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        # The text format's own words for its tokens, not .net's (nor the grammar's names).
        ("a: [", "unexpected end of file; expected '-', ']', a name, a number or a string",
         "the '[' at line 1, column 4 is not closed"),
        ("layer { a: 1 2 }", "unexpected number '2'; expected ',', ';', ']', '}' or a name", None),
        # No .net advice for a prototxt: it has no 'else' blocks, quoted names or 'Type name {'.
        ("else { a: 1 b }", "unexpected '}'; expected ':' or '{'", None),
        ("a: `x`", "unexpected character '`'", None),
        ("layer foo { }", "unexpected name 'foo'; expected ':' or '{'", MISSING_COLON),
        ('layer {\n  name "x"\n}', "unexpected string '\"x\"'; expected ':' or '{'", MISSING_COLON),
    ],
)  # fmt: skip
def test_caffe_syntax_errors(text: str, message: str, hint: str | None) -> None:
    diagnostic = fails(text).diagnostics[0]
    assert (diagnostic.message, diagnostic.hint) == (message, hint)


@pytest.mark.unit
def test_cli_reads_prototxt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    assert main(["check", str(DATA / "lenet.prototxt")]) == 0
    assert "ok (8 layers, 431,080 params, 2,293,000 MACs)" in capsys.readouterr().out
    assert (
        main(
            ["report", str(DATA / "netscope_nin_legacy_v1.prototxt"), "--phase", "TRAIN", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["params"] == 7_595_176


# ------------------------------------------------------------------------------ caffemodel weights


def _caffe_blobs(graph: Graph, seed: int = 5) -> dict[str, list[np.ndarray]]:
    """Random blobs for every weighted layer, in Caffe's shapes and order."""

    rng = np.random.default_rng(seed)
    typed = bind(graph, 1)
    return {
        node.name: [rng.standard_normal(a.spec.shape).astype(np.float32) * 0.1 for a in arrays]
        for node, arrays in typed.arrays.items()
    }


@pytest.mark.ort
@pytest.mark.parametrize("legacy", [False, True])
def test_caffemodel_weights_drive_the_compiled_model(tmp_path: Path, legacy: bool) -> None:
    import onnxruntime

    from netspec.caffemodel import write_caffemodel
    from netspec.cli import main
    from netspec.reference import run_reference
    from netspec.weightfile import load_weights

    graph = load_graph(DATA / "lenet.prototxt")
    blobs = _caffe_blobs(graph)
    blobs["loss_head_not_in_deploy"] = [np.ones((2, 2), np.float32)]  # extra layers are fine
    weights_file = tmp_path / "lenet.caffemodel"
    write_caffemodel(weights_file, blobs, legacy=legacy)
    model_file = tmp_path / "lenet.onnx"
    assert (
        main(["compile", str(DATA / "lenet.prototxt"), "--weights", str(weights_file), "-o", str(model_file)])
        == 0
    )

    weights = load_weights(str(weights_file), bind(graph, 1))
    assert np.array_equal(weights["conv1.weight"], blobs["conv1"][0])
    assert np.array_equal(weights["ip2.bias"], blobs["ip2"][1].reshape(-1))
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    (got,) = session.run(["prob"], {"data": x})
    want = run_reference(graph, weights, {"data": x})["prob"]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.unit
def test_caffe_batchnorm_scale_factor_blob_is_loaded(tmp_path: Path) -> None:
    from netspec.caffemodel import write_caffemodel
    from netspec.weightfile import load_weights

    graph = read(HEAD + 'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }')
    mean, var, factor = np.arange(3.0), np.ones(3), np.array([2.0])
    path = tmp_path / "bn.caffemodel"
    write_caffemodel(path, {"bn": [mean, var, factor]})
    weights = load_weights(str(path), bind(graph, 1))
    assert sorted(weights) == ["bn.running_mean", "bn.running_var", "bn.scale_factor"]
    assert weights["bn.scale_factor"].tolist() == [2.0]


@pytest.mark.unit
def test_caffemodel_that_does_not_fit_names_the_problems(tmp_path: Path) -> None:
    from netspec.caffemodel import write_caffemodel
    from netspec.weightfile import load_weights

    graph = load_graph(DATA / "lenet.prototxt")
    typed = bind(graph, 1)
    blobs = _caffe_blobs(graph)
    del blobs["ip1"]
    blobs["conv2"][0] = blobs["conv2"][0][:10]
    path = tmp_path / "bad.caffemodel"
    write_caffemodel(path, blobs)
    with pytest.raises(NetspecError) as caught:
        load_weights(str(path), typed)
    message = caught.value.diagnostics[0].message
    assert "missing 2 array(s): ip1.weight [500, 800]; ip1.bias [500]" in message
    assert "shapes that do not fit: conv2.weight: file [10, 20, 5, 5], net [50, 20, 5, 5]" in message

    blobs = _caffe_blobs(graph)
    blobs["conv1"] = blobs["conv1"][:1]
    write_caffemodel(path, blobs)
    with pytest.raises(NetspecError) as caught:
        load_weights(str(path), typed)
    assert "layer 'conv1' has 1 blobs; the Convolution in the net stores 2 (weight, bias)" in str(
        caught.value
    )


@pytest.mark.unit
def test_npz_weights_by_name(tmp_path: Path) -> None:
    from netspec.weightfile import load_weights

    graph = load_graph(DATA / "cifar10_quick.prototxt")
    typed = bind(graph, 1)
    blobs = _caffe_blobs(graph)
    arrays = {
        f"{layer}.{suffix}": values[i]
        for layer, values in blobs.items()
        for i, suffix in enumerate(("weight", "bias"))
    }
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    assert load_weights(str(path), typed)["ip2.bias"].shape == (10,)
    np.savez(path, **arrays, stray=np.zeros(1))
    with pytest.raises(NetspecError) as caught:
        load_weights(str(path), typed)
    assert "arrays the net does not have: stray" in caught.value.diagnostics[0].message
