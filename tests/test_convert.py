"""netspec convert: Caffe files written back as .net specs. Every shared file must round-trip
(same counts and output shapes, and for the smaller ones the same ONNX outputs for the same
weights), the big ones must fold into templates, and names must stay Caffe's where they can."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from netspec import __version__
from netspec.caffe import read_caffe
from netspec.cli import main
from netspec.convert import Conversion, _mismatch, convert_caffe, convert_graph, render_value, valid_name
from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.layers.base import Enum, Float, Padding, Shape, Spatial, Str
from netspec.typed import bind

DATA = Path(__file__).resolve().parent / "data" / "caffe"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def convert(name: str, templates: bool = True) -> Conversion:
    phase = EXPECTED[name]["options"].get("phase", "TEST")
    return convert_caffe(DATA / f"{name}.prototxt", phase=phase, templates=templates)


def spec_graph(conversion: Conversion) -> Graph:
    return elaborate(SourceFile("converted.net", conversion.text))


def convert_text(text: str, templates: bool = True) -> tuple[Conversion, Graph]:
    conversion = convert_graph(read_caffe(SourceFile("net.prototxt", text)), templates=templates)
    return conversion, spec_graph(conversion)


def lines_of_text(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def lines_of(conversion: Conversion) -> list[str]:
    return lines_of_text(conversion.text)


# ------------------------------------------------------------------------------ the shared files


@pytest.mark.unit
@pytest.mark.parametrize("templates", [True, False], ids=["folded", "flat"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file_round_trips(name: str, templates: bool) -> None:
    conversion = convert(name, templates)
    converted = spec_graph(conversion)
    original = bind(conversion.source, batch=1)
    again = bind(converted, batch=1)
    expected = EXPECTED[name]
    totals = again.counts.totals
    assert (totals.params, totals.buffers, totals.macs) == (
        expected["params"],
        expected["buffers"],
        expected["macs"],
    )
    # Everything else equal too, but the frozen figure: .net cannot freeze arrays (a note says so).
    assert replace(totals, frozen=0) == replace(original.counts.totals, frozen=0)
    shapes = [list(again.types[t].dims) for t in converted.outputs]
    assert shapes == [list(original.types[t].dims) for t in conversion.source.outputs]
    if expected["output_shape_batch1"] is not None:
        assert shapes == [expected["output_shape_batch1"]]
    # Node for node, in order, under the names the conversion reports.
    assert [n.name for n in converted.nodes] == [
        conversion.node_names[n.name] for n in conversion.source.nodes
    ]
    assert [n.type for n in converted.nodes] == [n.type for n in conversion.source.nodes]
    if not templates:
        assert "template" not in conversion.text
        assert len(lines_of(conversion)) == len(conversion.source.nodes) + 1  # name: and the layers


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layers_left_flat_keep_their_caffe_names(name: str) -> None:
    conversion = convert(name)
    for node in conversion.source.nodes:
        written = conversion.node_names[node.name]
        if node.inputs and "." not in written:
            assert written == valid_name(node.name)


# What each big file folds into: template signatures and instance lines that must appear.
FOLDED = {
    "resnet50": [
        "template res_a(num_output, stride) {",
        "template res(num_output) {",
        "  Convolution branch2c { num_output: 4 * num_output  kernel_size: 1  bias_term: false }"
        "  # res2b_branch2c",
        "  Eltwise eltwise { bottom: [in, scale_branch2c] }  # res2b",
        "res_a res2a(64, 1)",
        'for s in ["b", "c", "d"] { res res3{s}(128) }',
        'for s in ["b", "c", "d", "e", "f"] { res res4{s}(256) }',
        "res_a res5a(512, 2)",
    ],
    "densenet121": [
        "template conv_block() {",
        "  Concat concat { bottom: [in, x2] }  # concat_2_1",
        "for i in range(1, 7) { conv_block conv2_{i} }",
        "for i in range(1, 25) { conv_block conv4_{i} }",
    ],
    "inception_v3": [
        "template inception_a(num_output) {",
        "template inception_b(num_output) {",
        "template inception_c(pool_pool) {",
        "inception_a inception_a1(32)",
        "for i in range(2, 4) { inception_b inception_b{i}(160) }",
        "inception_c inception_c1(AVE)",
    ],
    "squeezenet_v1.1": [
        "template fire(num_output) {",
        "  Convolution expand1x1 { num_output: 4 * num_output  kernel_size: 1 }  # fire2/expand1x1",
        "for i in range(2, 4) { fire fire{i}(16) }",
        "for i in range(8, 10) { fire fire{i}(64) }",
    ],
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(FOLDED))
def test_repeated_blocks_fold_into_templates(name: str) -> None:
    conversion = convert(name)
    text = conversion.text
    for line in FOLDED[name]:
        assert line in text.splitlines()
    prototxt_lines = (DATA / f"{name}.prototxt").read_text().count("\n")
    assert text.count("\n") < prototxt_lines / 3
    flat = convert(name, templates=False)
    assert text.count("\n") < flat.text.count("\n") * 0.6


@pytest.mark.unit
def test_resnet50_instances_name_their_layers_after_caffe() -> None:
    conversion = convert("resnet50")
    names = conversion.node_names
    assert names["res2a_branch1"] == "res2a.branch1"
    assert names["bn3c_branch2b"] == "res3c.bn_branch2b"
    assert names["res4f"] == "res4f.eltwise"
    assert names["res5c_relu"] == "res5c.relu"
    assert names["conv1"] == "conv1" and names["fc1000"] == "fc1000"
    assert (
        "# A layer in a template instance is named INSTANCE.LAYER: res2a.branch1 is Caffe's"
        in conversion.text
    )


@pytest.mark.unit
def test_small_linear_nets_stay_flat() -> None:
    for name in ("lenet", "bvlc_alexnet", "vgg19_legacy_v1"):
        assert convert(name).templates == ()
    assert convert("lenet").text == (
        f"# Converted from lenet.prototxt (phase TEST) by netspec {__version__} (netspec convert).\n"
        "# Layer names are Caffe's, made valid .net names where needed.\n"
        'name: "LeNet"\n'
        "input data: [N, 1, 28, 28]\n"
        'Convolution conv1 { num_output: 20  kernel_size: 5  weight_filler: { type: "xavier" }  '
        'bias_filler: { type: "constant" } }\n'
        "Pooling pool1 { kernel_size: 2  stride: 2 }\n"
        'Convolution conv2 { num_output: 50  kernel_size: 5  weight_filler: { type: "xavier" }  '
        'bias_filler: { type: "constant" } }\n'
        "Pooling pool2 { kernel_size: 2  stride: 2 }\n"
        'InnerProduct ip1 { num_output: 500  weight_filler: { type: "xavier" }  '
        'bias_filler: { type: "constant" } }\n'
        "ReLU relu1\n"
        'InnerProduct ip2 { num_output: 10  weight_filler: { type: "xavier" }  '
        'bias_filler: { type: "constant" } }\n'
        "Softmax prob\n"
    )


# ------------------------------------------------------------------------------ same ONNX outputs

# Smaller inputs where the net allows any size (DenseNet ends in global pooling).
ORT_FILES = {
    "lenet": None,
    "cifar10_quick": None,
    "cifar10_full": None,
    "squeezenet_v1.1": None,
    "densenet121": (1, 3, 64, 64),
    "resnet50": None,
}


def _weights_by_node_order(original: Graph, converted: Graph, seed: int) -> tuple[dict, dict, dict, dict]:
    """Random weights for ``original`` and the same arrays, node k to node k, for ``converted``."""
    from netspec.typed import node_arrays
    from netspec.weights import initialize_weights

    typed_a = bind(original, 1)
    types_a = typed_a.types
    typed_b = bind(converted, 1)
    types_b = typed_b.types
    weights_a = initialize_weights(typed_a, seed=seed)
    rng = np.random.default_rng(seed)
    for key, value in weights_a.items():  # BatchNorm statistics away from identity
        if key.endswith(("running_var", "scale_factor")):
            weights_a[key] = (0.5 + rng.random(value.shape)).astype(np.float32)
        elif key.endswith(("running_mean", "bias")):
            weights_a[key] = (0.1 * rng.standard_normal(value.shape)).astype(np.float32)
    weights_b = {}
    for node_a, node_b in zip(original.nodes, converted.nodes, strict=True):
        arrays_a = node_arrays(node_a, [types_a[t] for t in node_a.inputs])
        arrays_b = node_arrays(node_b, [types_b[t] for t in node_b.inputs])
        for array_a, array_b in zip(arrays_a, arrays_b, strict=True):
            assert array_a.spec.shape == array_b.spec.shape
            weights_b[array_b.name] = weights_a[array_a.name]
    return weights_a, weights_b, types_a, types_b


@pytest.mark.ort
@pytest.mark.parametrize("name", sorted(ORT_FILES))
def test_converted_spec_computes_the_same_outputs(name: str) -> None:
    from netspec.compiler import compile_graph
    from netspec.runtime import create_session

    conversion = convert(name)
    original, converted = conversion.source, spec_graph(conversion)
    shape = ORT_FILES[name]
    shapes_a = {original.input_nodes[0].outputs[0]: shape} if shape else None
    shapes_b = {converted.input_nodes[0].outputs[0]: shape} if shape else None
    weights_a, weights_b, _, _ = _weights_by_node_order(original, converted, seed=5)
    results = []
    feeds = None
    for graph, weights, shapes in ((original, weights_a, shapes_a), (converted, weights_b, shapes_b)):
        model = compile_graph(bind(graph, batch=1, input_shapes=shapes), weights)
        session = create_session(model.SerializeToString(), "cpu")
        if feeds is None:
            rng = np.random.default_rng(11)
            feeds = [
                rng.standard_normal(tuple(i.shape), dtype=np.float32) for i in session.session.get_inputs()
            ]
        results.append(list(session.run(dict(zip(session.input_names, feeds, strict=True))).values()))
    assert len(results[0]) == len(results[1]) == len(original.outputs)
    for a, b in zip(*results, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(np.abs(a).max()))


# ------------------------------------------------------------------------------ names and values

FORKED = """
name: "odd"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv/1" type: "Convolution" bottom: "data" top: "conv/1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "relu-1" type: "ReLU" bottom: "conv/1" top: "conv/1" }
layer { name: "conv_1" type: "Convolution" bottom: "data" top: "b"
        convolution_param { num_output: 4 kernel_h: 1 kernel_w: 3 pad_h: 0 pad_w: 1 } }
layer { name: "in" type: "Eltwise" bottom: "conv/1" bottom: "b" top: "sum" }
layer { name: "slice" type: "Slice" bottom: "sum" top: "s1" top: "s2" slice_param { slice_point: 1 } }
layer { name: "pool" type: "Pooling" bottom: "s2" top: "pool"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR } }
layer { name: "lrn" type: "LRN" bottom: "s1" top: "lrn" lrn_param { alpha: 0.0001 beta: 0.75 } }
"""


@pytest.mark.unit
def test_names_are_made_valid_and_references_follow_them() -> None:
    conversion, converted = convert_text(FORKED)
    assert lines_of(conversion) == [
        'name: "odd"',
        "input data: [N, 3, 8, 8]",
        "Convolution conv_1_2 { num_output: 4  kernel_size: 3  pad: 1  bias_term: false }  # conv/1",
        "ReLU relu_1  # relu-1",
        "Convolution conv_1 { bottom: data  num_output: 4  kernel_size: [1, 3]  pad: [0, 1] }",
        "Eltwise in_ { bottom: [relu_1, conv_1] }  # in",
        "Slice slice { top: [s1, s2]  slice_point: [1] }",
        "Pooling pool { bottom: s2  pool: AVE  kernel_size: 2  stride: 2  round_mode: FLOOR }",
        "LRN lrn { bottom: s1  alpha: 0.0001 }",
    ]
    assert conversion.node_names == {
        "data": "data",
        "conv/1": "conv_1_2",
        "relu-1": "relu_1",
        "conv_1": "conv_1",
        "in": "in_",
        "slice": "slice",
        "pool": "pool",
        "lrn": "lrn",
    }
    assert _mismatch(conversion.source, conversion.text) is None
    assert [n.layer.params for n in converted.nodes] == [n.layer.params for n in conversion.source.nodes]


ARRAYS = """
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "a" type: "Convolution" bottom: "data" top: "a"
        param { name: "w" } param { name: "b" }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "b" type: "Convolution" bottom: "a" top: "b"
        param { name: "w" } param { name: "b" }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "b" top: "up" param { lr_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 4 stride: 2 bias_term: false } }
"""


@pytest.mark.unit
def test_frozen_and_shared_arrays_are_kept() -> None:
    conversion, converted = convert_text(ARRAYS)
    param_lines = [line for line in conversion.text.splitlines() if "param: {" in line]
    assert len(param_lines) == 3
    assert sum('param: { name: "w" }  param: { name: "b" }' in line for line in param_lines) == 2
    assert sum("param: { lr_mult: 0 }" in line for line in param_lines) == 1
    original = bind(conversion.source).counts.totals
    again = bind(converted).counts.totals
    # The shared 3x3 conv counts once and the frozen deconvolution is frozen, in both.
    assert original.frozen == 3 * 3 * 4 * 4
    assert (again.params, again.frozen, again.buffers, again.macs) == (
        original.params,
        original.frozen,
        original.buffers,
        original.macs,
    )
    assert [a.name for a in converted.nodes if a.array_names] == [
        n.name for n in conversion.source.nodes if n.array_names
    ]


REPEATED = """
input: "data"
input_shape { dim: 1 dim: 8 dim: 16 dim: 16 }
""" + "".join(
    f"""
layer {{ name: "blk{i}/a" type: "Convolution" bottom: "{prev}" top: "blk{i}/a"
        convolution_param {{ num_output: {width} kernel_size: 1 }} }}
layer {{ name: "blk{i}/b" type: "Convolution" bottom: "{prev}" top: "blk{i}/b"
        convolution_param {{ num_output: {2 * width} kernel_size: 3 pad: 1 }} }}
layer {{ name: "blk{i}/relu" type: "ReLU" bottom: "blk{i}/b" top: "blk{i}/b" }}
layer {{ name: "blk{i}/cat" type: "Concat" bottom: "blk{i}/a" bottom: "blk{i}/b" top: "blk{i}/cat" }}
"""
    for i, prev, width in [(1, "data", 4), (2, "blk1/cat", 4), (3, "blk2/cat", 8)]
)


@pytest.mark.unit
def test_a_repeated_block_becomes_a_template_with_its_widths_as_parameters() -> None:
    conversion, converted = convert_text(REPEATED)
    assert lines_of(conversion) == [
        'name: "net"',
        "input data: [N, 8, 16, 16]",
        "template blk(num_output) {",
        "  Convolution a { num_output: num_output  kernel_size: 1 }  # blk1/a",
        "  Convolution b { bottom: in  num_output: 2 * num_output  kernel_size: 3  pad: 1 }  # blk1/b",
        "  ReLU relu  # blk1/relu",
        "  Concat cat { bottom: [a, relu] }  # blk1/cat",
        "}",
        "for i in range(1, 3) { blk blk{i}(4) }",
        "blk blk3(8)",
    ]
    assert [n.name for n in converted.nodes][-4:] == ["blk3.a", "blk3.b", "blk3.relu", "blk3.cat"]
    flat, _ = convert_text(REPEATED, templates=False)
    assert "template" not in flat.text and "Concat blk3_cat { bottom: [blk3_a, blk3_relu] }" in flat.text


@pytest.mark.unit
def test_an_instance_reading_an_earlier_tensor_names_it_and_stays_out_of_the_loop() -> None:
    unused = "input: 'unused'\ninput_shape { dim: 1 dim: 1 dim: 2 dim: 2 }\n"
    text = REPEATED.replace("dim: 16 }\n", "dim: 16 }\n" + unused, 1)
    text = text.replace("num_output: 8 kernel_size: 1", "num_output: 4 kernel_size: 1")
    text = text.replace("num_output: 16 kernel_size: 3", "num_output: 8 kernel_size: 3")
    conversion, _ = convert_text(text)
    assert lines_of(conversion)[1:3] == ["input data: [N, 8, 16, 16]", "input unused: [N, 1, 2, 2]"]
    assert lines_of(conversion)[-2:] == [
        "blk blk1 { bottom: data }",
        "for i in range(2, 4) { blk blk{i} }",
    ]


@pytest.mark.unit
def test_the_check_catches_a_spec_that_differs() -> None:
    conversion = convert("lenet")
    assert _mismatch(conversion.source, conversion.text) is None
    changed = conversion.text.replace("num_output: 50", "num_output: 51")
    assert _mismatch(conversion.source, changed) == "layer conv2 differs from conv2"
    rewired = conversion.text.replace("InnerProduct ip2 {", "InnerProduct ip2 { bottom: ip1 ")
    assert "reads ['ip1']" in str(_mismatch(conversion.source, rewired))


@pytest.mark.unit
def test_a_folding_that_fails_its_check_falls_back_to_the_flat_form(monkeypatch: pytest.MonkeyPatch) -> None:
    import netspec.convert

    def broken(body: list[object]) -> list[str]:  # every instance loses its arguments
        return [line if isinstance(line, str) else f"{line.template.name} {line.name}" for line in body]

    monkeypatch.setattr(netspec.convert, "_with_loops", broken)
    conversion = convert("squeezenet_v1.1")
    assert conversion.templates == ()
    assert not any(line.startswith("template") for line in conversion.text.splitlines())
    assert "# note: folding repeated blocks gave a different graph" in conversion.text
    assert "Convolution fire2_squeeze1x1 { num_output: 16  kernel_size: 1 }" in conversion.text


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("conv1", "conv1"),
        ("conv1/3x3_reduce", "conv1_3x3_reduce"),
        ("conv4-1024", "conv4_1024"),
        ("1x1", "_1x1"),
        ("layer1.0.conv1", "layer1.0.conv1"),
        ("a..b", "a._.b"),
        ("input", "input_"),
        ("", "_"),
    ],
)
def test_valid_name(text: str, name: str) -> None:
    assert valid_name(text) == name


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        ((3, 3), Spatial(), "3"),
        ((1, 7), Spatial(), "[1, 7]"),
        ((1, 1, 1, 1), Padding(), "1"),
        ((0, 3, 0, 3), Padding(), "[0, 3]"),
        ((0, 1, 1, 0), Padding(), "[0, 1, 1, 0]"),
        (1e-05, Float(), "1e-05"),
        (0.1, Float(), "0.1"),
        (-0.5, Float(), "-0.5"),
        ("MAX", Enum(("MAX", "AVE")), "MAX"),
        ('say "hi"\\', Str(), '"say \\"hi\\"\\\\"'),
        (("N", 3, 224, 224), Shape(), "[N, 3, 224, 224]"),
        (True, None, "true"),
    ],
)
def test_render_value(value: object, kind: object, text: str) -> None:
    assert render_value(value, kind) == text  # type: ignore[arg-type]


@pytest.mark.unit
def test_values_without_a_spelling_are_errors() -> None:
    with pytest.raises(NetspecError, match=r"has no \.net spelling"):
        render_value(float("inf"), Float())


@pytest.mark.unit
def test_only_caffe_files_are_converted(tmp_path: Path) -> None:
    spec = tmp_path / "a.net"
    spec.write_text("input data: [N, 3, 8, 8]\nReLU relu\n")
    with pytest.raises(NetspecError, match=r"reads Caffe \.prototxt files"):
        convert_caffe(spec)


# ------------------------------------------------------------------------------ command line


@pytest.mark.unit
def test_cli_convert_writes_a_spec_that_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.net"
    assert main(["convert", str(DATA / "lenet.prototxt"), "-o", str(output)]) == 0
    assert "wrote" in capsys.readouterr().err
    assert output.read_text() == convert("lenet").text
    assert main(["check", str(output)]) == 0
    assert "ok (8 layers, 431,080 params, 2,293,000 MACs)" in capsys.readouterr().out


@pytest.mark.unit
def test_cli_convert_default_output_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["convert", str(DATA / "squeezenet_v1.1.prototxt"), "--no-templates"]) == 0
    written = (tmp_path / "squeezenet_v1.1.net").read_text()
    assert "template" not in written and "Convolution fire2_squeeze1x1" in written
    assert main(["convert", str(DATA / "netscope_nin_legacy_v1.prototxt"), "--phase", "TRAIN"]) == 0
    assert "(phase TRAIN)" in (tmp_path / "netscope_nin_legacy_v1.net").read_text()
    capsys.readouterr()


DATA_LAYER = """
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.mark.unit
def test_cli_convert_takes_input_shapes_and_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "train.prototxt"
    model.write_text(DATA_LAYER)
    output = tmp_path / "train.net"
    assert main(["convert", str(model), "-o", str(output), "--phase", "TRAIN"]) == 1
    assert "--input data:1x3x224x224" in capsys.readouterr().err
    assert not output.exists()
    arguments = ["convert", str(model), "-o", str(output), "--phase", "TRAIN", "--input", "data:1x1x28x28"]
    assert main(arguments) == 0
    assert lines_of_text(output.read_text()) == [
        'name: "train"',
        "input data: [N, 1, 28, 28]",
        "InnerProduct ip { num_output: 10 }",
    ]


@pytest.mark.unit
def test_cli_convert_error_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "bad.prototxt"
    model.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
                     'layer { name: "x" type: "Frobnicate" bottom: "data" top: "x" }\n')  # fmt: skip
    output = tmp_path / "bad.net"
    assert main(["convert", str(model), "-o", str(output)]) == 1
    assert "Frobnicate" in capsys.readouterr().err
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [model]
    spec = tmp_path / "a.net"
    spec.write_text("input data: [N, 3, 8, 8]\nReLU relu\n")
    assert main(["convert", str(spec), "-o", str(output)]) == 1
    assert not output.exists()
