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
from netspec.infer import infer_shapes
from netspec.receptive import receptive_fields
from netspec.reference import run_reference

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
    Case("pad-last-value", "Pad layer { axis: -1  pad: [0, 2]  value: -1.5 }", (("N", 3, 5),), (2, 3, 7)),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.ort
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case) -> None:
    graph = build_graph(case)
    types = infer_shapes(graph, {"N": BATCH})
    outputs = check_against_reference(graph, random_weights(graph, types, seed=0))
    assert outputs["layer"].shape == case.output


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
    field = receptive_fields(graph, infer_shapes(graph, {"N": 1}))["p"]
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
