"""Receptive fields against published values (google-research/receptive_field, the table of
Araujo et al., Distill 2019), hand-derived ones, and a brute-force measurement through the
float64 reference executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netspec.compiler import load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.receptive import ReceptiveField, receptive_fields
from netspec.reference import run_reference
from netspec.typed import bind
from netspec.weights import initialize_weights

ROOT = Path(__file__).resolve().parent.parent
CAFFE = ROOT / "tests" / "data" / "caffe"

pytestmark = pytest.mark.unit


def fields_of(graph: Graph, batch: int = 1) -> dict[str, ReceptiveField | None]:
    return bind(graph, batch=batch).receptive_fields


def field_at(fields: dict[str, ReceptiveField | None], graph: Graph, layer: str) -> ReceptiveField:
    field = fields[graph.node(layer).outputs[0]]
    assert field is not None, layer
    return field


def build(text: str) -> Graph:
    return elaborate(SourceFile("t.net", text))


# google-research/receptive_field, receptive_field/RECEPTIVE_FIELD_TABLE.md (TF-Slim models):
# end-point -> (RF, effective stride, effective padding), and the layer of our spec that
# computes the same map. TF-Slim's vgg_16/vgg_a use 3x3 SAME convolutions (pad 1) and 2x2/2
# VALID pooling, as torchvision's VGG does; torchvision's features.N index the same layers.
VGG16_PUBLISHED = [
    ("features.0", "conv1/conv1_1", 3, 1, 1),
    ("features.4", "pool1", 6, 2, 2),
    ("features.5", "conv2/conv2_1", 10, 2, 4),
    ("features.9", "pool2", 16, 4, 6),
    ("features.10", "conv3/conv3_1", 24, 4, 10),
    ("features.12", "conv3/conv3_2", 32, 4, 14),
    ("features.16", "pool3", 44, 8, 18),
    ("features.17", "conv4/conv4_1", 60, 8, 26),
    ("features.19", "conv4/conv4_2", 76, 8, 34),
    ("features.23", "pool4", 100, 16, 42),
    ("features.24", "conv5/conv5_1", 132, 16, 58),
    ("features.26", "conv5/conv5_2", 164, 16, 74),
    ("features.30", "pool5", 212, 32, 90),
]
VGG11_PUBLISHED = [  # vgg_a (configuration A)
    ("features.0", "conv1/conv1_1", 3, 1, 1),
    ("features.2", "pool1", 4, 2, 1),
    ("features.3", "conv2/conv2_1", 8, 2, 3),
    ("features.5", "pool2", 10, 4, 3),
    ("features.6", "conv3/conv3_1", 18, 4, 7),
    ("features.8", "conv3/conv3_2", 26, 4, 11),
    ("features.10", "pool3", 30, 8, 11),
    ("features.11", "conv4/conv4_1", 46, 8, 19),
    ("features.13", "conv4/conv4_2", 62, 8, 27),
    ("features.15", "pool4", 70, 16, 27),
    ("features.16", "conv5/conv5_1", 102, 16, 43),
    ("features.18", "conv5/conv5_2", 134, 16, 59),
    ("features.20", "pool5", 150, 32, 59),
]
# alexnet_v2 (TF-Slim): conv1 11x11/4 VALID, 3x3/2 VALID pools, conv2 5x5 and conv3-5 3x3 SAME:
# the layers and paddings of Caffe's bvlc_alexnet (zoo/alexnet_caffe.net).
ALEXNET_PUBLISHED = [
    ("conv1", "conv1", 11, 4, 0),
    ("pool1", "pool1", 19, 8, 0),
    ("conv2", "conv2", 51, 8, 16),
    ("conv3", "conv3", 99, 16, 32),
    ("conv4", "conv4", 131, 16, 48),
    ("conv5", "conv5", 163, 16, 64),
    ("pool5", "pool5", 195, 32, 64),
]


@pytest.mark.parametrize(
    "spec, table",
    [
        ("zoo/vgg16.net", VGG16_PUBLISHED),
        ("zoo/vgg11.net", VGG11_PUBLISHED),
        ("zoo/alexnet_caffe.net", ALEXNET_PUBLISHED),
    ],
    ids=["vgg_16", "vgg_a", "alexnet_v2"],
)
def test_single_path_nets_match_the_published_table(
    spec: str, table: list[tuple[str, str, int, int, int]]
) -> None:
    graph = load_graph(ROOT / spec)
    fields = fields_of(graph)
    for layer, endpoint, size, stride, padding in table:
        field = field_at(fields, graph, layer)
        assert (field.size, field.stride, field.padding) == ((size,) * 2, (stride,) * 2, (padding,) * 2), (
            endpoint
        )


@pytest.mark.parametrize(
    "spec, layer, published",
    [
        # resnet_v1_50/block4: 483, 32, 239. Kaiming He's Caffe ResNet-50 strides the first 1x1
        # convolution of res3a/res4a/res5a; TF-Slim strides the 3x3 of each block's last unit.
        # Both add the same 3x3 steps, so the final maps agree (the intermediate blocks do not).
        (CAFFE / "resnet50.prototxt", "res5c_relu", (483, 32, 239)),
        # inception_v3/Mixed_7c: 1311, 32, 618 (the README table's inception_v3 row).
        (CAFFE / "inception_v3.prototxt", "inception_c2_concat", (1311, 32, 618)),
        # inception_v3/Mixed_7c: 1311, 32, 618; torchvision's Inception3 is TF-Slim's network.
        (ROOT / "zoo/inception_v3.net", "Mixed_7c.concat", (1311, 32, 618)),
        # mobilenet_v1/Conv2d_13_pointwise: 315, 32, 126. TF's SAME padding puts a stride-2 3x3's
        # one padding pixel right and bottom; this spec pads 1 on every side (NOTE in its header),
        # which moves the field left by 1 + 2 + 4 + 8 + 16 pixels over the five stride-2 layers.
        (ROOT / "zoo/mobilenet_v1.net", "conv_pw_13_relu", (315, 32, 126 + 1 + 2 + 4 + 8 + 16)),
    ],
    ids=["caffe_resnet50", "caffe_inception_v3", "zoo_inception_v3", "zoo_mobilenet_v1"],
)
def test_multi_path_and_separable_nets_match_the_published_table(
    spec: Path, layer: str, published: tuple[int, int, int]
) -> None:
    graph = load_graph(spec)
    field = field_at(fields_of(graph), graph, layer)
    size, stride, padding = published
    assert (field.size, field.stride, field.padding) == ((size,) * 2, (stride,) * 2, (padding,) * 2)


def test_torchvision_resnet50_and_googlenet_by_hand() -> None:
    # torchvision's ResNet-50 (v1.5) strides the 3x3 of each stage's first block, so its layer4
    # field is smaller than TF-Slim's 483: stem 7/2 and 3/2 pool give 11 at jump 4; each 3x3 adds
    # 2 x jump: layer1 3 x 8 -> 35; layer2 8 + 3 x 16 -> 91 (jump 8); layer3 16 + 5 x 32 -> 267
    # (jump 16); layer4 32 + 2 x 64 -> 427 (jump 32).
    graph = load_graph(ROOT / "zoo/resnet50.net")
    fields = fields_of(graph)
    assert field_at(fields, graph, "layer1.2.relu").size == (35, 35)
    assert field_at(fields, graph, "layer2.3.relu").size == (91, 91)
    assert field_at(fields, graph, "layer3.5.relu").size == (267, 267)
    layer4 = field_at(fields, graph, "layer4.2.relu")
    assert (layer4.size, layer4.stride) == ((427, 427), (32, 32))
    # GoogLeNet: 7/2 -> 7; pool 3/2 -> 11 (jump 4); 1x1, 3x3 -> 19; pool 3/2 -> 27 (jump 8);
    # each Inception's widest path is one 3x3 (+2 x jump): 3a 43, 3b 59; pool 3/2 -> 75 (jump 16);
    # 4a-4e +32 each -> 235; pool 2/2 -> 251 (jump 32); 5a 315, 5b 379.
    graph = load_graph(ROOT / "zoo/googlenet.net")
    fields = fields_of(graph)
    assert field_at(fields, graph, "inception3b.concat").size == (59, 59)
    assert field_at(fields, graph, "inception4e.concat").size == (235, 235)
    last = field_at(fields, graph, "inception5b.concat")
    assert (last.size, last.stride) == ((379, 379), (32, 32))


def test_fcn8s_crops_align_the_score_map_with_the_image() -> None:
    # FCN's Crop offsets (voc-fcn8s, Long et al.) were chosen so that the upsampled score map is
    # pixel-aligned with the input: stride 1 and offset 0 exactly at 'score'.
    graph = load_graph(CAFFE / "fcn8s_voc.prototxt")
    field = field_at(fields_of(graph), graph, "score")
    assert field.stride == (1, 1)
    assert field.offset == (0, 0)


def test_segnet_unpooling_carries_the_encoder_field_through_the_decoder() -> None:
    # Each unpooling halves the stride and keeps the size (an output pixel takes one pooled
    # value); each decoder 3×3 convolution then adds 2 × its stride: pool5's 212/32, then 3
    # convolutions at stride 16, 3 at 8, 3 at 4, 2 at 2 and 2 at 1.
    graph = load_graph(ROOT / "zoo" / "segnet.net")
    fields = fields_of(graph)
    assert field_at(fields, graph, "upsample5").size == (212, 212)
    assert field_at(fields, graph, "upsample5").stride == (16, 16)
    expected = 212 + 3 * 2 * 16 + 3 * 2 * 8 + 3 * 2 * 4 + 2 * 2 * 2 + 2 * 2 * 1
    assert field_at(fields, graph, "conv1_1_D").size == (expected, expected)
    assert field_at(fields, graph, "conv1_1_D").stride == (1, 1)


SMALL_NETS = {
    # dilation 2: a 3x3 kernel spans 5; pad 2 keeps the centre on input pixel 0.
    "dilation": (
        """
        input data: [N, 1, 32, 32]
        Convolution a { num_output: 2  kernel_size: 3  dilation: 2  pad: 2 }
        Convolution b { num_output: 2  kernel_size: 3  stride: 2  pad: 1 }
        Pooling p { pool: AVE  kernel_size: 2  stride: 2 }
        """,
        # a: 5/1, offset 0; b: 5 + 2 = 7/2, offset 0 + (1 - 1) = 0;
        # p: 7 + 1 x 2 = 9/4, offset 0 + (0.5 - 0) x 2 = 1.
        (9, 4, 1),
    ),
    # a transposed convolution undoes a strided one: jump 2 -> 1.
    "deconvolution": (
        """
        input data: [N, 1, 32, 32]
        Convolution a { num_output: 2  kernel_size: 4  stride: 2  pad: 1 }
        Deconvolution b { num_output: 2  kernel_size: 4  stride: 2  pad: 1 }
        """,
        # a: 4/2, offset 3/2 - 1 = 0.5; b: 4 + floor(3/2) x 2 = 6, jump 1,
        # offset 0.5 + (1 - 1.5) x 2 / 2 = 0.
        (6, 1, 0),
    ),
    "upsampling_and_crop": (
        """
        input data: [N, 1, 32, 32]
        Convolution a { num_output: 2  kernel_size: 3  stride: 2 }
        Upsample u { scale: 2 }
        Convolution ref { bottom: data  num_output: 1  kernel_size: 5 }
        Crop c { bottom: [u, ref]  axis: 2  offset: 1 }
        """,
        # a: 3/2, offset 1; u (nearest, x2): 3/1, offset 1 + (0 - 0.5) x 2 / 2 = 0.5;
        # c: output pixel 0 is u's pixel 1: offset 0.5 + 1 = 1.5 (ref, 5 wide, lends only its
        # 28x28 shape).
        (3, 1, 1.5),
    ),
}


@pytest.mark.parametrize("name", sorted(SMALL_NETS))
def test_small_nets_by_hand_and_by_measurement(name: str) -> None:
    text, (size, stride, offset) = SMALL_NETS[name]
    graph = build(text)
    analysis = bind(graph)
    last = graph.nodes[-1].outputs[0]
    field = receptive_fields(analysis)[last]
    assert field is not None
    assert (field.size, field.stride, field.offset) == ((size,) * 2, (stride,) * 2, (offset,) * 2)
    extent, centres = measured_rows(graph, analysis.types[last].dims[2])
    # The recurrence gives the widest field (a transposed layer's fields vary with the output
    # pixel's phase) and the mean position, within half an input pixel of each actual centre.
    assert extent == size
    for row, centre in centres.items():
        assert abs(centre - (offset + row * stride)) <= 0.5, (row, centre)


def measured_rows(graph: Graph, out_height: int) -> tuple[int, dict[int, float]]:
    """Which input rows change each output row, found by perturbing one input row at a time in
    the float64 reference executor; the widest extent among output rows whose field lies inside
    the image, and the centre of each such field."""
    typed = bind(graph)
    types = typed.types
    weights = {k: np.abs(v) + 0.1 for k, v in initialize_weights(typed, seed=1).items()}
    (data,) = (n.outputs[0] for n in graph.input_nodes)
    shape = types[data].dims
    (output,) = graph.outputs
    base = run_reference(graph, weights, {data: np.zeros(shape)})[output]
    touched: dict[int, list[int]] = {}
    for row in range(shape[2]):
        image = np.zeros(shape)
        image[:, :, row, :] = 1.0
        changed = np.abs(run_reference(graph, weights, {data: image})[output] - base).max(axis=(0, 1, 3)) > 0
        for out_row in np.flatnonzero(changed):
            touched.setdefault(int(out_row), []).append(row)
    inside = {
        r: rows for r, rows in touched.items() if rows[0] > 0 and rows[-1] < shape[2] - 1 and r < out_height
    }
    extent = max(rows[-1] - rows[0] + 1 for rows in inside.values())
    return extent, {r: (rows[0] + rows[-1]) / 2 for r, rows in inside.items()}


def test_ceil_and_floor_pooling_differ_in_shape_not_in_field() -> None:
    fields = {}
    for mode in ("CEIL", "FLOOR"):
        pooling = f"Pooling p {{ pool: MAX  kernel_size: 3  stride: 2  round_mode: {mode} }}"
        graph = build(f"input data: [N, 1, 8, 8]\n{pooling}")
        analysis = bind(graph)
        fields[mode] = (analysis.types["p"].dims[2], receptive_fields(analysis)["p"])
    # ceil((8 - 3) / 2) + 1 = 4 rows, floor: 3; both windows are 3 wide, 2 apart, centred at 1.
    assert fields["CEIL"][0] == 4 and fields["FLOOR"][0] == 3
    assert fields["CEIL"][1] == fields["FLOOR"][1]
    field = fields["CEIL"][1]
    assert field is not None and (field.size, field.stride, field.offset) == ((3, 3), (2, 2), (1, 1))


def test_merge_takes_the_widest_path_and_fully_connected_has_none() -> None:
    graph = build(
        """
        input data: [N, 1, 16, 16]
        Convolution a { num_output: 2  kernel_size: 5  pad: 2 }
        Convolution b { bottom: data  num_output: 2  kernel_size: 1 }
        Eltwise s { bottom: [b, a] }
        InnerProduct fc { num_output: 3 }
        """
    )
    fields = fields_of(graph)
    merged = fields["s"]
    assert merged is not None and merged.size == (5, 5) and merged.offset == (0, 0)
    assert fields["fc"] is None


def test_json_numbers_are_exact() -> None:
    graph = build("input data: [N, 1, 16, 16]\nConvolution a { num_output: 1  kernel_size: 2  stride: 2 }")
    field = fields_of(graph)["a"]
    assert field is not None
    assert field.as_dict() == {"size": [2, 2], "stride": [2, 2], "offset": [0.5, 0.5], "padding": [0, 0]}
