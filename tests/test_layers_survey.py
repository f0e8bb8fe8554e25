"""Per-layer tests of the layer types the survey models brought (issue 16): shapes and exact
counts, each configuration compiled to ONNX, checked and run in onnxruntime against the layer's
float64 reference, and error messages. The harness is tests/test_layers.py's.
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
    check_against_reference,
    compile_error,
    random_weights,
)

from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.reference import run_reference
from netspec.typed import bind

CASES = [
    # -- Pad counts nothing: option A's channel padding, spatial padding, a non-zero value
    Case("pad-channels", "Pad layer { pad: [2, 3] }", (("N", 3, 4, 4),), (2, 8, 4, 4)),
    Case("pad-spatial", "Pad layer { axis: 2  pad: [1, 0, 2, 1] }", (("N", 3, 4, 4),), (2, 3, 5, 7)),
    # -- AVE pooling that divides by the input cells only: 2·3·4·4 windows of 9 adds
    Case(
        "avepool-exclude-pad",
        "Pooling layer { pool: AVE  kernel_size: 3  stride: 1  pad: 1  count_include_pad: false }",
        (("N", 3, 4, 4),),
        (2, 3, 4, 4),
        flops=864,
    ),
    Case(
        "avepool-exclude-pad-ceil",
        "Pooling layer { pool: AVE  kernel_size: 3  stride: 2  pad: 1  count_include_pad: false }",
        (("N", 3, 6, 6),),
        (2, 3, 4, 4),
        flops=864,
    ),
    # -- Proposal: FLOPs = 20 per anchor position (9 anchors · 2·3 positions = 1080); 5 rows kept
    Case(
        "proposal",
        "Proposal layer { bottom: [a, b, c]  post_nms_top_n: 5 }",
        ((1, 18, 2, 3), (1, 36, 2, 3), (1, 3)),
        (5, 5),
        flops=1080,
    ),
    Case(
        "proposal-few-candidates",
        "Proposal layer { bottom: [a, b, c]  ratios: [1]  scales: [4, 8]  pre_nms_top_n: 7"
        "  post_nms_top_n: 12  nms_threshold: 0.5  min_size: 4  feat_stride: 8 }",
        ((1, 4, 3, 3), (1, 8, 3, 3), (1, 3)),
        (12, 5),
        flops=20 * 2 * 9,
    ),
    # -- RCNNDetection: FLOPs = 20 per region and class (6 · 3 · 20 = 360); outputs boxes,
    #    scores, labels
    Case(
        "rcnn-detection",
        "RCNNDetection layer { bottom: [a, b, c, d]  max_detections: 4  top: [boxes, scores, labels] }",
        ((6, 5), (6, 3), (6, 12), (1, 3)),
        (4, 4),
        flops=360,
    ),
    Case(
        "rcnn-detection-many",
        "RCNNDetection layer { bottom: [a, b, c, d]  score_threshold: 0.2  max_detections: 40"
        "  top: [boxes, scores, labels] }",
        ((12, 5), (12, 4), (12, 16), (1, 3)),
        (40, 4),
        flops=20 * 12 * 4,
    ),
    Case("pad-last-value", "Pad layer { axis: -1  pad: [0, 2]  value: -1.5 }", (("N", 3, 5),), (2, 3, 7)),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    detections = case.output[0]
    outputs = (
        ((detections, 4), (detections,), (detections,)) if "RCNNDetection" in case.layer else (case.output,)
    )
    assert_shape_and_counts(case, outputs)


@pytest.mark.ort
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case) -> None:
    graph = build_graph(case)
    typed = bind(graph, BATCH)
    outputs = check_against_reference(graph, random_weights(typed, seed=0))
    first = graph.node("layer").outputs[0]
    assert outputs[first].shape == case.output


@pytest.mark.unit
def test_pad_semantics() -> None:
    # The option-A shortcut: channels padded half before, half after, with zeros.
    graph = elaborate(SourceFile("pad.net", "input a: [1, 2, 1, 1]\nPad p { pad: [1, 2] }"))
    (out,) = run_reference(graph, {}, {"a": np.array([3.0, 4.0]).reshape(1, 2, 1, 1)}).values()
    assert out.ravel().tolist() == [0.0, 3.0, 4.0, 0.0, 0.0]


@pytest.mark.unit
def test_pad_receptive_field() -> None:
    # Output pixel 1 is input pixel 0: the field's centre moves back by the leading padding.
    text = (
        "input a: [N, 3, 8, 8]\n"
        "Convolution c { num_output: 2 kernel_size: 3 }\n"
        "Pad p { axis: 2 pad: [1, 0, 2, 0] }"
    )
    graph = elaborate(SourceFile("rf.net", text))
    field = bind(graph).receptive_fields["p"]
    assert field is not None and (field.size, field.offset) == ((3, 3), (0.0, -1.0))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input a: [N, 3, 4, 4]\nPad p { pad: [1, 2, 3] }", "Pad 'p': pad [1, 2, 3] has an odd length"),
        ("input a: [N, 3, 4, 4]\nPad p { axis: 3  pad: [1, 1, 1, 1] }", "pads 2 axes from axis 3, but"),
        (
            "input a: [N, 3, 4, 4]\nPad p { pad: [-1, 1] }",
            "Pad parameter 'pad': expected a list of values, each a non-negative integer",
        ),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)


@pytest.mark.unit
def test_average_pooling_without_padding_in_the_divisor() -> None:
    # A corner window of 3×3 at pad 1 covers 4 input cells: their mean, not their sum / 9.
    text = "input a: [1, 1, 2, 2]\nPooling p { pool: AVE kernel_size: 3 pad: 1 count_include_pad: false }"
    graph = elaborate(SourceFile("pool.net", text))
    (out,) = run_reference(graph, {}, {"a": np.arange(4.0).reshape(1, 1, 2, 2)}).values()
    assert out.ravel().tolist() == [1.5] * 4


# ---------------------------------------------------------------- hand-built boxes, known answers


def run_both(text: str, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """onnxruntime's and the float64 reference's outputs of a one-image spec."""
    import onnxruntime as ort

    from netspec.compiler import compile_graph

    graph = elaborate(SourceFile("boxes.net", text))
    model = compile_graph(bind(graph, batch=1), {})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds), list(run_reference(graph, {}, feeds).values())


# One 128×128 anchor (ratio 1, scale 8) at three positions 16 px apart on a 1×3 map: A0 =
# [−56, −56, 71, 71] and its shifts. py-faster-rcnn's decoding with zero deltas moves x2 and y2
# one pixel out (centre x1 + w/2, corners centre ± w/2), and the image (200×200) clips x1 and
# y1: A0 = [0, 0, 72, 72], A1 = [0, 0, 88, 72], A2 = [0, 0, 104, 72]. With the +1 extent,
# IoU(A0, A1) = 73/89 = 0.820, IoU(A1, A2) = 89/105 = 0.848, IoU(A0, A2) = 73/105 = 0.695: at
# NMS 0.7 A0 suppresses A1 but not A2.
PROPOSAL = (
    "input probs: [1, 2, 1, 3]\ninput deltas: [1, 4, 1, 3]\ninput im_info: [1, 3]\n"
    "Proposal p { bottom: [probs, deltas, im_info]  ratios: [1]  scales: [8]  post_nms_top_n: 4 }"
)
A0, A1, A2 = [0.0, 0, 0, 72, 72], [0.0, 0, 0, 88, 72], [0.0, 0, 0, 104, 72]


@pytest.mark.ort
@pytest.mark.parametrize(
    ("foreground", "dh", "scale", "expected"),
    [
        # A1 best: it suppresses both neighbours (0.820, 0.848); the rows after it repeat it.
        ((0.8, 0.9, 0.7), 0.0, 1.0, [A1, A1, A1, A1]),
        # A0 best: A1 suppressed (0.820 > 0.7), A2 kept (0.695).
        ((0.9, 0.8, 0.7), 0.0, 1.0, [A0, A2, A0, A0]),
        # A0 and A2 tied: the lower index first, as onnxruntime ranks them.
        ((0.9, 0.1, 0.9), 0.0, 1.0, [A0, A2, A0, A0]),
        # A0 halved in height (dh = log 0.5): [0, 0, 71, 40], 41 px < 16·3 = 48, dropped.
        ((0.9, 0.8, 0.7), float(np.log(0.5)), 3.0, [A1, A1, A1, A1]),
    ],
)
def test_proposals_survive_or_are_suppressed(
    foreground: tuple[float, ...], dh: float, scale: float, expected: list[list[float]]
) -> None:
    probs = np.zeros((1, 2, 1, 3), np.float32)
    probs[0, 1, 0] = foreground
    deltas = np.zeros((1, 4, 1, 3), np.float32)
    deltas[0, 3, 0, 0] = dh
    feeds = {"probs": probs, "deltas": deltas, "im_info": np.array([[200, 200, scale]], np.float32)}
    (onnx_rois,), (reference_rois,) = run_both(PROPOSAL, feeds)
    np.testing.assert_allclose(onnx_rois, expected, atol=1e-4)
    np.testing.assert_allclose(reference_rois, expected, atol=1e-4)


def test_anchors_are_py_faster_rcnns() -> None:
    from netspec.layers.detection import generate_anchors

    anchors = generate_anchors(16, (0.5, 1.0, 2.0), (8.0, 16.0, 32.0))
    assert anchors.tolist() == [
        [-84, -40, 99, 55],
        [-176, -88, 191, 103],
        [-360, -184, 375, 199],
        [-56, -56, 71, 71],
        [-120, -120, 135, 135],
        [-248, -248, 263, 263],
        [-36, -80, 51, 95],
        [-80, -168, 95, 183],
        [-168, -344, 183, 359],
    ]


# Five regions, two classes besides the background, zero deltas (a region [x1, y1, x2, y2]
# decodes to [x1, y1, x2 + 1, y2 + 1], as py-faster-rcnn's bbox_transform_inv does):
#   R0 [10, 10, 19, 19] → [10, 10, 20, 20] and R1 [11, 10, 20, 19] → [11, 10, 21, 20] overlap by
#   IoU 110/132 = 0.833 > 0.3; R2 → [60, 60, 70, 70] is apart; R3 repeats R0; R4 scores below
#   0.05 in both classes.
DETECTION = (
    "input rois: [5, 5]\ninput probs: [5, 3]\ninput deltas: [5, 12]\ninput im_info: [1, 3]\n"
    "RCNNDetection d { bottom: [rois, probs, deltas, im_info]  max_detections: 4"
    "  top: [boxes, scores, labels] }"
)


@pytest.mark.ort
def test_detections_keep_the_best_per_class_and_image() -> None:
    rois = np.array(
        [
            [0, 10, 10, 19, 19],
            [0, 11, 10, 20, 19],
            [0, 60, 60, 69, 69],
            [0, 10, 10, 19, 19],
            [0, 0, 80, 9, 89],
        ],
        np.float32,
    )
    probs = np.array(
        [
            [0.1, 0.6, 0.3],  # R0: class 1 best; class 2 at 0.3
            [0.1, 0.7, 0.2],  # R1: beats R0 in class 1 and suppresses it; class 2 below R0
            [0.2, 0.1, 0.7],  # R2: class 2, alone
            [0.1, 0.6, 0.3],  # R3: R0's twin, tied: suppressed by R1 in class 1, by R0 in class 2
            [0.96, 0.02, 0.02],  # R4: below the score threshold everywhere
        ],
        np.float32,
    )
    feeds = {
        "rois": rois,
        "probs": probs,
        "deltas": np.zeros((5, 12), np.float32),
        "im_info": np.array([[100, 100, 1.0]], np.float32),
    }
    # Found: class 1 keeps R1 (0.7) and R2 (0.1); class 2 keeps R2 (0.7) and R0 (0.3), R1 and R3
    # suppressed by R0. The best 4 by score, ties in class order: R1/1, R2/2, R0/2, R2/1.
    expected_boxes = [
        [11, 10, 21, 20],
        [60, 60, 70, 70],
        [10, 10, 20, 20],
        [60, 60, 70, 70],
    ]
    onnx_out, reference_out = run_both(DETECTION, feeds)
    for boxes, scores, labels in (onnx_out, reference_out):
        np.testing.assert_allclose(boxes, expected_boxes, atol=1e-5)
        np.testing.assert_allclose(scores, [0.7, 0.7, 0.3, 0.1], atol=1e-6)
        assert labels.tolist() == [1, 2, 2, 1]


@pytest.mark.ort
def test_detections_pad_when_few_survive() -> None:
    feeds = {
        "rois": np.array([[0, 10, 10, 19, 19]] * 5, np.float32),
        "probs": np.array([[0.5, 0.45, 0.05]] * 5, np.float32),  # class 2 at the threshold: out
        "deltas": np.zeros((5, 12), np.float32),
        "im_info": np.array([[100, 100, 1.0]], np.float32),
    }
    onnx_out, reference_out = run_both(DETECTION, feeds)
    for boxes, scores, labels in (onnx_out, reference_out):
        # Five identical regions: one detection (the first), then padding.
        np.testing.assert_allclose(boxes[0], [10, 10, 20, 20])
        assert scores.tolist() == pytest.approx([0.45, 0, 0, 0])
        assert labels.tolist() == [1, -1, -1, -1]
        assert not boxes[1:].any()
