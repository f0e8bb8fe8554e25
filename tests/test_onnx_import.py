"""The ONNX front end (netspec/onnx_import.py): torch exports, hand-built models and netspec's own
output of the zoo read into the Graph; report, check, convert and bad input.

tests/data/onnx/ holds small torch exports made by tools/export_torch_onnx.py (regenerate with
``/work/torchvenv/bin/python tools/export_torch_onnx.py`` in a venv with torch and onnxscript).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from netspec.cli import main  # noqa: E402
from netspec.compiler import compile_graph, load_graph  # noqa: E402
from netspec.diagnostics import NetspecError, SourceFile  # noqa: E402
from netspec.elaborate import elaborate, load_spec  # noqa: E402
from netspec.onnx_import import (  # noqa: E402
    convert_onnx,
    emitted_layer_name,
    import_model,
    read_onnx,
    scope_name,
)
from netspec.report import report_data  # noqa: E402
from netspec.typed import bind  # noqa: E402
from netspec.zoo import zoo_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "onnx"
TORCH_EXPORTS = sorted(p.name for p in DATA.glob("*.onnx"))
ZOO = sorted(p.stem for p in zoo_folder().glob("*.net"))
OPSET = 17


def run_ort(model: bytes | str, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def make_model(nodes, inputs, outputs, initializers=(), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hand_built", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def tensor(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


# ------------------------------------------------------------------------------ names


@pytest.mark.unit
@pytest.mark.parametrize(
    ("node_name", "scope"),
    [
        ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
        ("/layer1/layer1.0/downsample/downsample.0/Conv", "layer1.0.downsample.0"),
        ("/features/features.1/block/block.0/block.0.0/Conv", "features.1.block.0.0"),
        ("/fc/Gemm", "fc"),
        ("/Flatten", ""),
        (
            "/features/features.denseblock1/features.denseblock1.denselayer1/Concat",
            "features.denseblock1.denselayer1",
        ),
    ],
)
def test_torch_node_names_become_scopes(node_name: str, scope: str) -> None:
    assert scope_name(node_name) == scope


@pytest.mark.unit
@pytest.mark.parametrize(
    ("node_name", "op_type", "layer"),
    [
        ("layer2.0.shortcut", "Pad", "layer2.0.shortcut"),
        ("features.1.0.scale/Add_2", "Add", "features.1.0.scale"),
        ("trunk_output.block1.block1-0.add", "Add", "trunk_output.block1.block1-0.add"),
        # A quoted layer name may hold '/': only the emitter's own /{op}_{k} goes.
        ("branch/left/Mul_3", "Mul", "branch/left"),
        ("branch/Add_2", "Mul", "branch/Add_2"),
    ],
)
def test_netspec_node_names_give_back_their_layers(node_name: str, op_type: str, layer: str) -> None:
    node = helper.make_node(op_type, ["x", "y"], ["z"], name=node_name)
    assert emitted_layer_name(node) == layer


@pytest.mark.unit
def test_netspec_marks_global_average_pooling_apart_from_adaptive_pooling() -> None:
    """Both lower to one GlobalAveragePool; only Pooling's doc_string names its layer type, so
    each reads back as itself (and an unmarked GlobalAveragePool, torch's, as AdaptiveAvgPool)."""
    text = (
        "input data: [N, 4, 6, 6]\n"
        "Pooling gap { pool: AVE  global_pooling: true }\n"
        "AdaptiveAvgPool adaptive { bottom: data  output_size: 1 }\n"
    )
    graph = elaborate(SourceFile("pools.net", text))
    model = compile_graph(bind(graph, batch=1), fold_bn=False)
    assert [(n.op_type, n.doc_string) for n in model.graph.node] == [
        ("GlobalAveragePool", "pools.net:2:1 Pooling"),
        ("GlobalAveragePool", "pools.net:3:1"),
    ]
    assert {n.name: n.type for n in import_model(model).graph.nodes} == {
        "data": "Input",
        "gap": "Pooling",
        "adaptive": "AdaptiveAvgPool",
    }


@pytest.mark.unit
@pytest.mark.parametrize("align_corners", [False, True])
def test_netspec_affine_grid_reads_its_corners_back_from_a_large_base_grid(align_corners: bool) -> None:
    """A base grid of over SMALL_CONSTANT values is not read with the file; the emission's is
    compared with the file's to tell align_corners all the same."""
    corners = "true" if align_corners else "false"
    text = f"input theta: [N, 2, 3]\nAffineGrid grid {{ output_size: [40, 40]  align_corners: {corners} }}\n"
    graph = elaborate(SourceFile("grid.net", text))
    model = compile_graph(bind(graph, batch=1), fold_bn=False)
    (grid,) = [n for n in import_model(model).graph.nodes if n.name == "grid"]
    assert grid.type == "AffineGrid"
    assert grid.layer.params.align_corners is align_corners


# ------------------------------------------------------------------------------ torch exports


@pytest.mark.ort
@pytest.mark.parametrize("name", TORCH_EXPORTS)
def test_torch_export_converts_and_round_trips(name: str, tmp_path: Path) -> None:
    """netspec convert's spec with its safetensors gives the original model's outputs."""
    path = DATA / name
    converted = convert_onnx(path)
    graph = elaborate(SourceFile("converted.net", converted.conversion.text))
    model = compile_graph(bind(graph, batch=1), converted.weights)
    x = (
        np.random.default_rng(0)
        .standard_normal(graph.nodes[0].layer.params.shape[1:])
        .astype(np.float32)[None]
    )
    expected = run_ort(str(path), x)
    assert relative_error(expected, run_ort(model.SerializeToString(), x)) <= 1e-5
    # Same counts as reading the ONNX file for analysis.
    direct, spec = bind(read_onnx(path)).counts.totals, bind(graph).counts.totals
    assert (direct.params, direct.macs, direct.flops) == (spec.params, spec.macs, spec.flops)


@pytest.mark.ort
@pytest.mark.parametrize("name", [n for n in TORCH_EXPORTS if "resnet" in n])
def test_torch_resnet_export_is_a_short_spec_with_torch_names(name: str) -> None:
    conversion = convert_onnx(DATA / name).conversion
    assert conversion.templates
    assert conversion.text.count("\n") < 45
    graph = elaborate(SourceFile("converted.net", conversion.text))
    names = {node.name for node in graph.nodes}
    assert {"conv1", "layer1.0.conv1", "layer1.0.conv2", "fc"} <= names


@pytest.mark.unit
@pytest.mark.parametrize("name", [n for n in TORCH_EXPORTS if "dynbatch" in n])
def test_dynamic_batch_export_folds_its_shape_chains(name: str) -> None:
    """Shape → Gather → Unsqueeze → Concat → Reshape disappears; the batch stays symbolic."""
    graph = read_onnx(DATA / name)
    assert not [n for n in graph.nodes if n.type == "OnnxOp"]
    assert graph.nodes[0].layer.params.shape[0] == "N"
    one, eight = bind(graph, batch=1).counts.totals, bind(graph, batch=8).counts.totals
    assert eight.macs == 8 * one.macs


@pytest.mark.unit
def test_report_depth_folds_an_onnx_model_by_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["report", str(DATA / "resnet_basic_torchscript17.onnx"), "--depth", "1", "--format", "json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    names = [layer["name"] for layer in data["layers"]]
    assert names == ["conv1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


# ------------------------------------------------------------------------------ the zoo


def _comparable(data: dict) -> dict:
    """The figures the ONNX round trip keeps, layer by layer."""
    layers = {
        layer["name"]: (
            layer["type"],
            layer["output_shapes"],
            layer["params"],
            layer["buffers"],
            layer["macs"],
            layer["flops"],
            layer["receptive_field"],
        )
        for layer in data["layers"]
        # NOTE: netspec's emission drops Dropout (an Identity onnxruntime removes): no node is
        # left to read back.
        if layer["type"] != "Dropout"
    }
    totals = {k: data["totals"][k] for k in ("params", "buffers", "macs", "flops")}
    return {"totals": totals, "outputs": [o["shape"] for o in data["outputs"]], "layers": layers}


# Layers that are identities at inference: the emitter writes no node for them.
ELIDED = ("AdaptiveAvgPool", "Dropout", "Split")


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("spec", ZOO)
def test_zoo_model_reads_back_from_its_own_onnx(spec: str) -> None:
    """netspec's own ONNX (BatchNorm kept) gives the spec's params, buffers, MACs, FLOPs, output
    shapes and receptive fields, layer by layer."""
    graph = load_spec(zoo_folder() / f"{spec}.net")
    model = compile_graph(bind(graph, batch=1), fold_bn=False)
    imported = import_model(model, f"{spec}.onnx").graph
    expected = _comparable(report_data(bind(graph)).to_dict())
    got = _comparable(report_data(bind(imported)).to_dict())
    assert got["totals"] == expected["totals"]
    assert got["outputs"] == expected["outputs"]
    # VGG's AdaptiveAvgPool at 224, Dropout, a one-output Split: netspec emits no node for them.
    identity = {
        name for name, row in expected["layers"].items() if name not in got["layers"] and row[0] in ELIDED
    }
    assert {n: r for n, r in expected["layers"].items() if n not in identity} == got["layers"]


# Small specs with the transformer layers netspec lowers to several nodes, in the forms the zoo
# does not reach: projections without biases, maps padded to the window, a shift that the window
# covers, an odd map before patch merging.
TRANSFORMER_SPECS = {
    "tiny_vit": """
input data: [N, 3, 8, 8]
Convolution conv_proj { num_output: 8  kernel_size: 4  stride: 4 }
Flatten patches { axis: 2 }
Permute tokens { order: [0, 2, 1] }
ClassToken prepend { tokens: 2 }
PositionEmbedding encoder.embed
MultiheadAttention encoder.attention { num_heads: 2 }
MultiheadAttention encoder.plain { num_heads: 4  bias: false }
Take class_output { axis: 1  index: 0 }
InnerProduct head { num_output: 3 }
""",
    "tiny_swin": """
input data: [N, 3, 36, 36]
Convolution patch { num_output: 8  kernel_size: 4  stride: 4 }
Permute channels_last { order: [0, 2, 3, 1] }
ShiftedWindowAttention shifted.attn { num_heads: 2  window_size: 4  shift_size: 2 }
ShiftedWindowAttention plain.attn { num_heads: 2  window_size: 3  qkv_bias: false  proj_bias: false }
PatchMerge merge
ShiftedWindowAttention whole.attn { num_heads: 4  window_size: 5  shift_size: 2 }
Permute channels_first { order: [0, 3, 1, 2] }
AdaptiveAvgPool pool { output_size: 1 }
InnerProduct head { num_output: 3 }
""",
}
# Other layers netspec lowers to runs of ONNX nodes, small: unshared filters over an
# asymmetric padding, VLAD pooling with and without normalised descriptors.
OWN_LOWERING_SPECS = {
    **TRANSFORMER_SPECS,
    "tiny_deepface": """
input data: [N, 3, 12, 12]
Convolution conv { num_output: 4  kernel_size: 3 }
LocallyConnected local { num_output: 5  kernel_size: 3  stride: 2  pad: 1 }
LocallyConnected plain { num_output: 3  kernel_size: [2, 3]  pad: [0, 1, 1, 0]  bias_term: false }
InnerProduct head { num_output: 3 }
""",
    "tiny_netvlad": """
input data: [N, 4, 5, 6]
Convolution conv { num_output: 6  kernel_size: 1 }
NetVLAD vlad { num_clusters: 3 }
NetVLAD plain { bottom: conv  num_clusters: 2  normalize_input: false }
Concat both { bottom: [vlad, plain] }
""",
}


@pytest.mark.ort
@pytest.mark.parametrize("batch", [1, None], ids=["batch1", "dynamic"])
@pytest.mark.parametrize("name", sorted(OWN_LOWERING_SPECS))
def test_transformer_lowerings_read_back_as_their_layers(
    name: str, batch: int | None, tmp_path: Path
) -> None:
    """netspec's own ONNX of ClassToken, PositionEmbedding, MultiheadAttention, window attention
    and patch merging (and of the other OWN_LOWERING_SPECS) reads back as those layers, row for
    row, and converts to a spec whose model computes what the file does."""
    graph = elaborate(SourceFile(f"{name}.net", OWN_LOWERING_SPECS[name]))
    model = compile_graph(bind(graph, batch=batch), fold_bn=False)
    imported = import_model(model, f"{name}.onnx").graph
    assert [n.type for n in imported.nodes] == [n.type for n in graph.nodes]
    expected = _comparable(report_data(bind(graph)).to_dict())
    assert _comparable(report_data(bind(imported)).to_dict()) == expected
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    converted = convert_onnx(path)
    spec = elaborate(SourceFile("converted.net", converted.conversion.text))
    x = np.random.default_rng(0).standard_normal(graph.nodes[0].layer.params.shape[1:]).astype(np.float32)
    rebuilt = compile_graph(bind(spec, batch=1), converted.weights)
    assert relative_error(run_ort(str(path), x[None]), run_ort(rebuilt.SerializeToString(), x[None])) <= 1e-5


# A two-stage detector with the box layers' parameters away from their defaults: two anchor
# ratios by two scales on a smaller base and stride, NMS thresholds that float32 does not hold
# exactly.
TINY_DETECTOR = """
input im_info: [1, 3]
input data: [N, 3, 32, 48]
Convolution conv { num_output: 8  kernel_size: 3  stride: 8  pad: 1 }
Convolution rpn_cls_score { num_output: 8  kernel_size: 1 }
Reshape rpn_cls_score_reshape { shape: [0, 2, -1, 0] }
Softmax rpn_cls_prob
Reshape rpn_cls_prob_reshape { shape: [0, 8, -1, 0] }
Convolution rpn_bbox_pred { bottom: conv  num_output: 16  kernel_size: 1 }
Proposal proposal { bottom: [rpn_cls_prob_reshape, rpn_bbox_pred, im_info]  feat_stride: 8  base_size: 8
                    ratios: [1, 2]  scales: [4, 8]  pre_nms_top_n: 50  post_nms_top_n: 20
                    nms_threshold: 0.6  min_size: 4 }
ROIPooling pool { bottom: [conv, proposal]  pooled_h: 2  pooled_w: 2  spatial_scale: 1 / 8 }
InnerProduct cls_score { num_output: 3 }
Softmax cls_prob
InnerProduct bbox_pred { bottom: pool  num_output: 12 }
RCNNDetection detection { bottom: [proposal, cls_prob, bbox_pred, im_info]  score_threshold: 0.1
                          nms_threshold: 0.45  max_detections: 7  top: [boxes, scores, labels] }
"""


def test_detection_layers_read_back_with_their_parameters() -> None:
    """Proposal and RCNNDetection read back from netspec's own ONNX with the parameters they
    were written with (anchors, NMS, sizes), their inputs in their order, row for row."""
    graph = elaborate(SourceFile("tiny_detector.net", TINY_DETECTOR))
    model = compile_graph(bind(graph, batch=1), fold_bn=False)
    imported = import_model(model, "tiny_detector.onnx").graph
    assert [n.type for n in imported.nodes] == [n.type for n in graph.nodes]
    for name in ("proposal", "detection"):
        ((own,), (read,)) = ([n for n in g.nodes if n.name == name] for g in (graph, imported))
        assert read.layer.params == own.layer.params
    assert _comparable(report_data(bind(imported)).to_dict()) == _comparable(
        report_data(bind(graph)).to_dict()
    )


# ------------------------------------------------------------------------------ hand-built models


def _conv_bn_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/stem/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["n"], name="/stem/bn/BN"),
        helper.make_node("Clip", ["n", "lo", "hi"], ["r"], name="/stem/act/Clip"),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="/Reshape"),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["y"], name="/head/Gemm", transB=1),
    ]
    initializers = [
        init("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        init("b", rng.standard_normal(4).astype(np.float32)),
        init("g", rng.random(4).astype(np.float32) + 0.5),
        init("beta", rng.standard_normal(4).astype(np.float32)),
        init("m", rng.standard_normal(4).astype(np.float32)),
        init("v", rng.random(4).astype(np.float32) + 0.5),
        init("lo", np.array(0, np.float32)),
        init("hi", np.array(6, np.float32)),
        init("zero", np.array(0, np.int64)),
        init("axes", np.array([0], np.int64)),
        init("minus1", np.array([-1], np.int64)),
        init("fw", rng.standard_normal((5, 4 * 8 * 8)).astype(np.float32)),
        init("fb", rng.standard_normal(5).astype(np.float32)),
    ]
    return make_model(nodes, [tensor("x", ["batch", 3, 8, 8])], [tensor("y", ["batch", 5])], initializers)


@pytest.mark.ort
def test_hand_built_model_maps_onto_layers_and_converts(tmp_path: Path) -> None:
    path = tmp_path / "hand.onnx"
    onnx.save(_conv_bn_model(), path)
    graph = read_onnx(path)
    assert [(n.name, n.type) for n in graph.nodes] == [
        ("x", "Input"),
        ("stem.conv", "Convolution"),
        ("stem.bn", "BatchNorm"),
        ("stem.act", "ReLU6"),
        ("head", "InnerProduct"),
    ]
    totals = bind(graph, batch=2).counts.totals
    assert totals.macs == 2 * (4 * 8 * 8 * 3 * 3 * 3 + 5 * 256)
    assert totals.params == 4 * 27 + 4 + 8 + 5 * 256 + 5 and totals.buffers == 8
    out = tmp_path / "hand.net"
    assert main(["convert", str(path), "-o", str(out)]) == 0
    assert (tmp_path / "hand.safetensors").exists()
    compiled = tmp_path / "again.onnx"
    assert (
        main(["compile", str(out), "--weights", str(tmp_path / "hand.safetensors"), "-o", str(compiled)]) == 0
    )
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert relative_error(run_ort(str(path), x), run_ort(str(compiled), x)) <= 1e-5


@pytest.mark.ort
def test_unknown_operator_counts_zero_and_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv"),
        helper.make_node("Erf", ["c"], ["e"], name="/gelu/Erf"),
        helper.make_node("Erf", ["e"], ["e2"], name="/gelu2/Erf"),
        helper.make_node("Relu", ["e2"], ["y"], name="/relu/Relu"),
    ]
    w = init("w", np.ones((2, 1, 3, 3), np.float32))
    path = tmp_path / "erf.onnx"
    onnx.save(make_model(nodes, [tensor("x", [1, 1, 6, 6])], [tensor("y", [1, 2, 4, 4])], [w]), path)
    assert main(["report", str(path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "Erf ×2" in captured.err
    data = json.loads(captured.out)
    assert data["totals"]["macs"] == 2 * 16 * 9
    assert any("not counted" in line and "Erf ×2" for line in data["conventions"])
    assert [layer["macs"] for layer in data["layers"] if layer["type"] == "OnnxOp"] == [0, 0]
    assert main(["convert", str(path), "-o", str(tmp_path / "erf.net")]) == 1
    assert "Erf" in capsys.readouterr().err
    assert not (tmp_path / "erf.net").exists() and not (tmp_path / "erf.safetensors").exists()


# ------------------------------------------------------------------------------ bad input


def _loop_model() -> onnx.ModelProto:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
    )
    nodes = [
        helper.make_node("Loop", ["", ""], [], name="the_loop", body=body),
        helper.make_node("Relu", ["x"], ["y"]),
    ]
    return make_model(nodes, [tensor("x", [1, 3])], [tensor("y", [1, 3])])


def _cycle_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
    ]
    return make_model(nodes, [tensor("x", [1, 3])], [tensor("b", [1, 3])])


def _uninferable_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_by_input")]
    inputs = [tensor("x", [1, 3, 4, 4]), helper.make_tensor_value_info("shape", TensorProto.INT64, [2])]
    return make_model(nodes, inputs, [tensor("y", None)])  # type: ignore[arg-type]


def _mismatched_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="bad_add")]
    return make_model(nodes, [tensor("x", [1, 3]), tensor("z", [1, 4])], [tensor("y", [1, 3])])


def _bad_attribute_model() -> onnx.ModelProto:
    nodes = [helper.make_node("LRN", ["x"], ["y"], name="even_lrn", size=2)]
    return make_model(nodes, [tensor("x", [1, 3, 4, 4])], [tensor("y", [1, 3, 4, 4])])


BAD = {
    "not_onnx": (lambda path: path.write_text("name: 'a spec'\n"), "not a readable ONNX model"),
    "truncated": (lambda path: path.write_bytes(_conv_bn_model().SerializeToString()[:300]), "ONNX model"),
    "loop": (lambda path: onnx.save(_loop_model(), path), "'the_loop' (Loop) is control flow"),
    "cycle": (
        lambda path: onnx.save(_cycle_model(), path),
        "the graph has a cycle: 'first' (Add) -> 'second' (Relu) -> 'first' (Add)",
    ),
    "uninferable": (lambda path: onnx.save(_uninferable_model(), path), "'reshape_by_input'"),
    "mismatched": (lambda path: onnx.save(_mismatched_model(), path), "bad_add"),
    "bad_attribute": (
        lambda path: onnx.save(_bad_attribute_model(), path),
        "node 'even_lrn' (LRN): LRN: local_size must be odd, got 2",
    ),
}


@pytest.mark.unit
@pytest.mark.parametrize("command", ["report", "check", "convert"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write, expected = BAD[case]
    path = tmp_path / f"{case}.onnx"
    write(path)
    arguments = [command, str(path)] + (["-o", str(tmp_path / "out.net")] if command == "convert" else [])
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "out.net").exists() and not (tmp_path / "out.safetensors").exists()


@pytest.mark.unit
def test_analysis_does_not_read_external_weights(tmp_path: Path) -> None:
    """A model with its weights in an external file reports without them (even if they are gone)."""
    path = tmp_path / "external.onnx"
    onnx.save(
        _conv_bn_model(),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="external.bin",
        size_threshold=64,
    )
    (tmp_path / "external.bin").unlink()
    assert bind(load_graph(path)).counts.totals.macs == 4 * 8 * 8 * 27 + 5 * 256
    with pytest.raises(NetspecError):
        convert_onnx(path)


@pytest.mark.unit
def test_nodes_out_of_file_order_are_read_in_the_nearest_topological_order() -> None:
    nodes = [
        helper.make_node("Relu", ["a"], ["y"], name="/late/Relu"),
        helper.make_node("Sigmoid", ["x"], ["a"], name="/early/Sigmoid"),
        helper.make_node("Tanh", ["x"], ["t"], name="/side/Tanh"),
    ]
    model = make_model(nodes, [tensor("x", [1, 3])], [tensor("y", [1, 3]), tensor("t", [1, 3])])
    graph = import_model(model).graph
    assert [(n.name, n.type) for n in graph.nodes] == [
        ("x", "Input"),
        ("early", "Sigmoid"),
        ("late", "ReLU"),
        ("side", "TanH"),
    ]


@pytest.mark.unit
def test_a_file_in_order_is_read_without_importing_networkx() -> None:
    """networkx orders only a file that is out of order; exporters write theirs in order."""
    code = (
        "import sys\n"
        "from netspec.onnx_import import read_onnx\n"
        "read_onnx(sys.argv[1])\n"
        "print('networkx' in sys.modules)"
    )
    path = DATA / "resnet_basic_torchscript17.onnx"
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ------------------------------------------------------------------------------ one operator each

RNG = np.random.default_rng(7)
X = [1, 4, 6, 6]


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# (case, nodes reading "x" [1, 4, 6, 6] and writing "y", initializers, the layer types read)
OPERATORS = [
    ("leaky_relu", [helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.2)], [], ["ReLU"]),
    ("prelu", [helper.make_node("PRelu", ["x", "s"], ["y"])], [init("s", _f32(4, 1, 1))], ["PReLU"]),
    ("elu", [helper.make_node("Elu", ["x"], ["y"], alpha=0.7)], [], ["ELU"]),
    ("hard_sigmoid", [helper.make_node("HardSigmoid", ["x"], ["y"])], [], ["HardSigmoid"]),
    ("hard_swish", [helper.make_node("HardSwish", ["x"], ["y"])], [], ["HardSwish"]),
    ("tanh", [helper.make_node("Tanh", ["x"], ["y"])], [], ["TanH"]),
    ("softplus", [helper.make_node("Softplus", ["x"], ["y"])], [], ["BNLL"]),
    ("softmax", [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [], ["Softmax"]),
    (
        "silu",
        [helper.make_node("Sigmoid", ["x"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])],
        [],
        ["SiLU"],
    ),
    (
        "per_channel_affine",
        [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Sub", ["m", "b"], ["y"])],
        [init("a", _f32(4, 1, 1)), init("b", _f32(1, 4, 1, 1))],
        ["Scale", "Bias"],
    ),
    (
        "scalars",
        [helper.make_node("Div", ["x", "d"], ["q"]), helper.make_node("Add", ["q", "c"], ["y"])],
        [init("d", np.array(4.0, np.float32)), init("c", np.array([0.5], np.float32))],
        ["Power", "Power"],
    ),
    (
        "squeeze_excitation",
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Sigmoid", ["p"], ["g"]),
            helper.make_node("Mul", ["x", "g"], ["y"]),
        ],
        [],
        ["AdaptiveAvgPool", "Sigmoid", "Scale"],
    ),
    (
        "split_concat_max",
        [
            helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1),
            helper.make_node("Max", ["a", "b"], ["m"]),
            helper.make_node("Concat", ["m", "a", "b"], ["y"], axis=1),
        ],
        [init("sizes", np.array([2, 2], np.int64))],
        ["Slice", "Eltwise", "Concat"],
    ),
    (
        "deconvolution",
        [
            helper.make_node(
                "ConvTranspose",
                ["x", "w", "b"],
                ["y"],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                output_padding=[1, 1],
            )
        ],
        [init("w", _f32(4, 3, 3, 3)), init("b", _f32(3))],
        ["Deconvolution"],
    ),
    (
        "pooling",
        [
            helper.make_node(
                "AveragePool",
                ["x"],
                ["a"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            ),
            helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2], strides=[1, 1], ceil_mode=1),
        ],
        [],
        ["Pooling", "Pooling"],
    ),
    (
        "zero_pad_into_convolution",
        [
            helper.make_node("Pad", ["x", "pads"], ["p"]),
            helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2]),
        ],
        [init("pads", np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64)), init("w", _f32(3, 4, 3, 3))],
        ["Convolution"],
    ),
    ("lrn", [helper.make_node("LRN", ["x"], ["y"], size=3, alpha=1e-3, beta=0.75, bias=2.0)], [], ["LRN"]),
    (
        "resize",
        [
            helper.make_node(
                "Resize", ["x", "", "sc"], ["r"], mode="linear", coordinate_transformation_mode="half_pixel"
            ),
            helper.make_node(
                "Resize",
                ["r", "", "sc"],
                ["y"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            ),
        ],
        [init("sc", np.array([1, 1, 2, 2], np.float32))],
        ["Resize", "Resize"],
    ),
    (
        "reduce_mean_and_matmul",
        [
            helper.make_node("ReduceMean", ["x"], ["p"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["p", "w"], ["y"]),
        ],
        [init("w", _f32(4, 3))],
        ["AdaptiveAvgPool", "InnerProduct"],  # the Flatten folds into the InnerProduct
    ),
    (
        "unsqueeze_squeeze",
        [
            helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
            helper.make_node("Squeeze", ["u", "ax"], ["y"]),
        ],
        [init("ax", np.array([2], np.int64))],
        ["Reshape", "Reshape"],
    ),
    (
        "reshape_with_the_batch_as_minus_one",
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [init("shape", np.array([-1, 4, 36], np.int64))],
        ["Reshape"],
    ),
    (
        "layer_norm",
        [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1, epsilon=1e-6)],
        [init("s", _f32(6)), init("b", _f32(6))],
        ["LayerNorm"],
    ),
    (
        "layer_norm_over_channels",  # torch's export of ConvNeXt's LayerNorm2d
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("LayerNormalization", ["t", "s", "b"], ["n"], axis=-1),
            helper.make_node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2]),
        ],
        [init("s", _f32(4)), init("b", _f32(4))],
        ["LayerNorm"],
    ),
    ("gelu", [helper.make_node("Gelu", ["x"], ["y"])], [], ["GELU"]),
    ("gelu_tanh", [helper.make_node("Gelu", ["x"], ["y"], approximate="tanh")], [], ["GELU"]),
    (
        "gelu_erf",  # torch's export of GELU below opset 20
        [
            helper.make_node("Div", ["x", "root2"], ["d"]),
            helper.make_node("Erf", ["d"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["a"]),
            helper.make_node("Mul", ["x", "a"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["y"]),
        ],
        [
            init("root2", np.array(np.sqrt(2.0), np.float32)),
            init("one", np.array(1.0, np.float32)),
            init("half", np.array(0.5, np.float32)),
        ],
        ["GELU"],
    ),
    (
        "gelu_erf_halved_first",
        [
            helper.make_node("Mul", ["x", "half"], ["h"]),
            helper.make_node("Mul", ["x", "inv_root2"], ["d"]),
            helper.make_node("Erf", ["d"], ["e"]),
            helper.make_node("Add", ["one", "e"], ["a"]),
            helper.make_node("Mul", ["a", "h"], ["y"]),
        ],
        [
            init("inv_root2", np.array(1 / np.sqrt(2.0), np.float32)),
            init("one", np.array(1.0, np.float32)),
            init("half", np.array(0.5, np.float32)),
        ],
        ["GELU"],
    ),
    ("transpose", [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [], ["Permute"]),
    (
        "channel_shuffle",
        [
            helper.make_node("Reshape", ["x", "grid"], ["g"]),
            helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t", "back"], ["y"]),
        ],
        [init("grid", np.array([1, 2, 2, 6, 6], np.int64)), init("back", np.array([1, 4, 6, 6], np.int64))],
        ["ChannelShuffle"],
    ),
    (
        "linear_over_the_last_axis",  # torch's nn.Linear on a 4-D input
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        [init("w", _f32(6, 5)), init("b", _f32(5))],
        ["InnerProduct"],
    ),
    (
        "linear_by_a_transposed_weight",  # netspec's own InnerProduct at the last axis
        [
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            helper.make_node("MatMul", ["x", "wt"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["y"]),
        ],
        [init("w", _f32(5, 6)), init("b", _f32(5))],
        ["InnerProduct"],
    ),
    (
        "max_unpool",  # SegNet's encoder pooling and decoder unpooling
        [
            helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Relu", ["p"], ["r"]),
            helper.make_node("MaxUnpool", ["r", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        [],
        ["Pooling", "ReLU", "Upsample"],
    ),
    (
        "max_unpool_to_a_given_size",
        [
            helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[3, 3], strides=[2, 2]),
            helper.make_node("MaxUnpool", ["p", "i", "size"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
        ],
        [init("size", np.array([1, 4, 6, 6], np.int64))],
        ["Pooling", "Upsample"],
    ),
    (
        "gemm_by_a_transposed_weight",
        [
            helper.make_node("Flatten", ["x"], ["f"]),
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            helper.make_node("Gemm", ["f", "wt", "b"], ["y"]),
        ],
        [init("w", _f32(5, 144)), init("b", _f32(5))],
        ["InnerProduct"],  # the Flatten folds into the InnerProduct
    ),
    ("matmul_of_activations", [helper.make_node("MatMul", ["x", "x"], ["y"])], [], ["MatMul"]),
    (
        "slice_to_the_end",  # torch's x[:, :, 1:]: the end is INT64's largest
        [helper.make_node("Slice", ["x", "one", "last", "two", "one"], ["y"])],
        [
            init("one", np.array([1], np.int64)),
            init("last", np.array([np.iinfo(np.int64).max], np.int64)),
            init("two", np.array([2], np.int64)),
        ],
        ["StridedSlice"],
    ),
    (
        "slice_strided_and_backwards",  # x[:, ::2, :, ::-2] and no axes before opset 10's form
        [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
        [
            init("starts", np.array([0, -1], np.int64)),
            init("ends", np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)),
            init("axes", np.array([1, -1], np.int64)),
            init("steps", np.array([2, -2], np.int64)),
        ],
        ["StridedSlice"],
    ),
    (
        "matmul_by_transposed",  # attention's Q·Kᵀ
        [
            helper.make_node("Relu", ["x"], ["k"]),
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["x", "kt"], ["y"]),
        ],
        [],
        ["ReLU", "MatMul"],
    ),
]
# Cases whose operator needs a later opset than OPSET.
OPERATOR_OPSETS = {"gelu": 20, "gelu_tanh": 20}
# (params, MACs, FLOPs) of the cases with layers new to the ONNX reader, from the layers' formulas
# (X has 4·6·6 = 144 elements).
ELEMENTS = 4 * 6 * 6
OPERATOR_COUNTS = {
    "layer_norm": (2 * 6, 0, 7 * ELEMENTS),
    "layer_norm_over_channels": (2 * 4, 0, 7 * ELEMENTS),
    "gelu": (0, 0, 5 * ELEMENTS),
    "gelu_tanh": (0, 0, 9 * ELEMENTS),
    "gelu_erf": (0, 0, 5 * ELEMENTS),
    "gelu_erf_halved_first": (0, 0, 5 * ELEMENTS),
    "transpose": (0, 0, 0),
    "gemm_by_a_transposed_weight": (144 * 5 + 5, 144 * 5, 2 * 144 * 5 + 5),
    "max_unpool": (0, 0, 4 * 3 * 3 * (2 * 2 - 1) + 4 * 3 * 3),  # the max's comparisons, the ReLU
    "max_unpool_to_a_given_size": (0, 0, 4 * 2 * 2 * (3 * 3 - 1)),
    "linear_over_the_last_axis": (6 * 5 + 5, 4 * 6 * 6 * 5, 2 * 4 * 6 * 6 * 5 + 4 * 6 * 5),
    "linear_by_a_transposed_weight": (6 * 5 + 5, 4 * 6 * 6 * 5, 2 * 4 * 6 * 6 * 5 + 4 * 6 * 5),
    "matmul_of_activations": (0, 4 * 6 * 6 * 6, 2 * 4 * 6 * 6 * 6),
    "slice_to_the_end": (0, 0, 0),
    "slice_strided_and_backwards": (0, 0, 0),
    "matmul_by_transposed": (0, 4 * 6 * 6 * 6, ELEMENTS + 2 * 4 * 6 * 6 * 6),
}


@pytest.mark.ort
@pytest.mark.parametrize(("case", "nodes", "initializers", "types"), OPERATORS, ids=[c[0] for c in OPERATORS])
def test_operator_reads_as_layers_and_round_trips(
    case: str, nodes: list, initializers: list, types: list[str], tmp_path: Path
) -> None:
    model = make_model(
        nodes,
        [tensor("x", X)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
        opset=OPERATOR_OPSETS.get(case, OPSET),
    )
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, path)
    graph = read_onnx(path)
    assert [n.type for n in graph.nodes[1:]] == types
    direct = bind(graph).counts.totals
    if case in OPERATOR_COUNTS:
        assert (direct.params, direct.macs, direct.flops) == OPERATOR_COUNTS[case]
    converted = convert_onnx(path)
    spec = elaborate(SourceFile("converted.net", converted.conversion.text))
    totals = bind(spec).counts.totals
    assert (totals.params, totals.macs, totals.flops) == (direct.params, direct.macs, direct.flops)
    compiled = compile_graph(bind(spec, batch=1), converted.weights)
    x = np.random.default_rng(3).standard_normal(X).astype(np.float32)
    assert relative_error(run_ort(str(path), x), run_ort(compiled.SerializeToString(), x)) <= 1e-5


@pytest.mark.unit
def test_slice_bounds_are_clamped_to_the_axis() -> None:
    """INT64's extremes (torch's "to the end") have no .net spelling: the reader writes the
    axis' own bounds, which slice the same."""
    nodes = [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])]
    big = np.iinfo(np.int64)
    bounds = [
        init("starts", np.array([big.min, -1], np.int64)),
        init("ends", np.array([big.max, big.min], np.int64)),
        init("axes", np.array([2, 3], np.int64)),
        init("steps", np.array([1, -1], np.int64)),
    ]
    graph = import_model(make_model(nodes, [tensor("x", X)], [tensor("y", X)], bounds)).graph
    params = graph.nodes[1].layer.params
    assert (params.starts, params.ends, params.axes, params.steps) == ((-7, -1), (6, -7), (2, 3), (1, -1))


@pytest.mark.unit
def test_slice_by_computed_bounds_stays_an_onnx_operator() -> None:
    nodes = [helper.make_node("Slice", ["x", "zero", "ends", "axes"], ["y"])]
    constants = [init("zero", np.array([0], np.int64)), init("axes", np.array([2], np.int64))]
    inputs = [tensor("x", X), helper.make_tensor_value_info("ends", TensorProto.INT64, [1])]
    graph = import_model(make_model(nodes, inputs, [tensor("y", [1, 4, 3, 6])], constants)).graph
    assert [n.type for n in graph.nodes] == ["Input", "Input", "OnnxOp"]


# Crops netspec writes as one Slice (the axes it cuts), read back with the same parameters.
CROPS = [
    ("input a: [N, 3, 8, 8]\ninput b: [N, 5, 5, 6]\n", "Crop c { bottom: [a, b]  offset: 1 }"),
    (
        "input a: [N, 4, 6, 7]\ninput b: [N, 2, 3, 7]\n",
        "Crop c { bottom: [a, b]  axis: 1  offset: [1, 2, 0] }",
    ),
    ("input a: [N, 2, 4, 9]\ninput b: [N, 2, 4, 5]\n", "Crop c { bottom: [a, b]  axis: 3  offset: 3 }"),
    ("input a: [N, 3, 8, 8]\ninput b: [N, 3, 6, 6]\n", "Crop c { bottom: [a, b] }"),
]


def _layers(graph) -> list[tuple]:
    return [(n.name, n.type, n.layer.params, n.inputs) for n in graph.nodes]


@pytest.mark.unit
@pytest.mark.parametrize(("inputs", "crop"), CROPS)
def test_netspec_crop_reads_back_as_crop(inputs: str, crop: str, tmp_path: Path) -> None:
    """Read and converted back to a spec, netspec's ONNX of a Crop gives the spec's graph."""
    graph = elaborate(SourceFile("crop.net", inputs + "ReLU r { bottom: a }\n" + crop.replace("[a,", "[r,")))
    model = compile_graph(bind(graph, batch=1))
    assert _layers(import_model(model).graph) == _layers(graph)
    onnx.save(model, tmp_path / "crop.onnx")
    converted = elaborate(SourceFile("converted.net", convert_onnx(tmp_path / "crop.onnx").conversion.text))
    assert _layers(converted) == _layers(graph)
    # The same Slice in a file netspec did not write is a StridedSlice: nothing there says its
    # bounds follow another tensor.
    model.producer_name = "exporter"
    assert import_model(model).graph.nodes[-1].type == "StridedSlice"


@pytest.mark.unit
def test_netspec_strided_slice_reads_and_converts_back_as_itself(tmp_path: Path) -> None:
    text = (
        "input a: [N, 3, 8, 8]\n"
        "StridedSlice s { starts: [1, -1] ends: [7, -9] axes: [2, 3] steps: [2, -1] }\n"
    )
    graph = elaborate(SourceFile("slice.net", text))
    model = compile_graph(bind(graph, batch=1))
    assert _layers(import_model(model).graph) == _layers(graph)
    onnx.save(model, tmp_path / "slice.onnx")
    converted = convert_onnx(tmp_path / "slice.onnx").conversion.text
    assert _layers(elaborate(SourceFile("converted.net", converted))) == _layers(graph)


def _roi_align_model(form: str) -> onnx.ModelProto:
    """RoiAlign of boxes and batch indices cut from one [R, 5] tensor of RoIs: by Gather as
    torchvision's export does it, by Slice as netspec's own."""
    if form == "gather":
        cut = [
            helper.make_node("Gather", ["rois", "box_columns"], ["boxes"], axis=1),
            helper.make_node("Gather", ["rois", "zero"], ["column"], axis=1),
            helper.make_node("Cast", ["column"], ["indices"], to=TensorProto.INT64),
        ]
        constants = [
            init("box_columns", np.array([1, 2, 3, 4], np.int64)),
            init("zero", np.array(0, np.int64)),
        ]
    else:
        cut = [
            helper.make_node("Slice", ["rois", "one", "five", "axis"], ["boxes"]),
            helper.make_node("Slice", ["rois", "zero", "one", "axis"], ["column"]),
            helper.make_node("Cast", ["column"], ["cast"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["cast", "flat"], ["indices"]),
        ]
        constants = [
            init(name, np.array([value], np.int64))
            for name, value in (("zero", 0), ("one", 1), ("five", 5), ("axis", 1), ("flat", 3))
        ]
    align = helper.make_node(
        "RoiAlign",
        ["x", "boxes", "indices"],
        ["y"],
        output_height=3,
        output_width=2,
        sampling_ratio=2,
        spatial_scale=0.5,
        coordinate_transformation_mode="half_pixel",
    )
    return make_model(
        [*cut, align],
        [tensor("x", [2, 4, 6, 6]), tensor("rois", [3, 5])],
        [tensor("y", [3, 4, 3, 2])],
        constants,
    )


@pytest.mark.ort
@pytest.mark.parametrize("form", ["gather", "slice"])
def test_roi_align_reads_as_one_layer_and_round_trips(form: str, tmp_path: Path) -> None:
    import onnxruntime

    path = tmp_path / f"roi_align_{form}.onnx"
    onnx.save(_roi_align_model(form), path)
    graph = read_onnx(path)
    assert [n.type for n in graph.nodes] == ["Input", "Input", "ROIAlign"]
    params = graph.nodes[2].layer.params
    assert (params.pooled_h, params.pooled_w, params.sampling_ratio, params.aligned) == (3, 2, 2, True)
    direct = bind(graph).counts.totals
    assert (direct.params, direct.macs, direct.flops) == (0, 0, 3 * 4 * 3 * 2 * 8 * 2 * 2)
    converted = convert_onnx(path)
    spec = elaborate(SourceFile("converted.net", converted.conversion.text))
    compiled = compile_graph(bind(spec, batch=2), converted.weights)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    corners = np.sort(rng.uniform(0, 12, (3, 2, 2)), axis=1).reshape(3, 4)
    rois = np.concatenate([[[0], [1], [1]], corners], axis=1).astype(np.float32)
    outputs = []
    for model in (str(path), compiled.SerializeToString()):
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        outputs.append(session.run(None, dict(zip(names, (x, rois), strict=True)))[0])
    assert relative_error(outputs[0], outputs[1]) <= 1e-5


@pytest.mark.unit
def test_symbolic_image_size_needs_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv", pads=[1, 1, 1, 1])]
    w = init("w", np.ones((2, 3, 3, 3), np.float32))
    path = tmp_path / "dynamic.onnx"
    model = make_model(nodes, [tensor("x", ["n", 3, "h", "w"])], [tensor("y", ["n", 2, "h", "w"])], [w])
    onnx.save(model, path)
    assert main(["report", str(path)]) == 1
    assert "--input x:" in capsys.readouterr().err
    assert main(["report", str(path), "--input", "x:1x3x10x12", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outputs"][0]["shape"] == [1, 2, 10, 12]
    assert data["totals"]["macs"] == 2 * 10 * 12 * 27
    out = tmp_path / "fixed.net"
    assert main(["convert", str(path), "--input", "x:1x3x10x12", "-o", str(out)]) == 0
    assert "input x: [N, 3, 10, 12]" in out.read_text()
