"""Per-layer tests: shapes and counts against hand-computed values, every configuration compiled
alone to ONNX and run in onnxruntime against the layer's float64 reference, and error messages.

Each case is one layer statement named ``layer`` reading inputs ``a``, ``b``, ``c`` declared with
the shapes given (``N`` is the batch, bound to 2). Counts are worked out by hand in the comments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from netspec.count import count_graph
from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Dim, Graph, TensorType
from netspec.infer import infer_shapes
from netspec.layers import LAYER_TYPES
from netspec.layers.base import RawParam, build_layer
from netspec.layers.pool import pool_output_size
from netspec.reference import run_reference
from netspec.typed import TypedGraph, bind
from netspec.verify import sample_inputs
from netspec.weights import initialize_weights

BATCH = 2
INPUT_NAMES = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Case:
    """One layer configuration with its expected output shape (at N = 2) and counts."""

    id: str
    layer: str
    inputs: tuple[tuple[Dim, ...], ...]
    output: tuple[int, ...]
    params: int = 0
    buffers: int = 0
    macs: int = 0
    flops: int = 0


NCHW = ("N", 3, 4, 4)  # 96 elements at N = 2

CASES = [
    # -- Convolution: params = Cout·Cin/g·kh·kw (+Cout); MACs = N·Cout·Ho·Wo·Cin/g·kh·kw
    # 4·3·9 + 4 = 112; MACs 2·4·6·6·27 = 7776; FLOPs 2·7776 + 2·4·36 = 15840
    Case(
        "conv",
        "Convolution layer { num_output: 4 kernel_size: 3 }",
        (("N", 3, 8, 8),),
        (2, 4, 6, 6),
        params=112,
        macs=7776,
        flops=15840,
    ),
    # 6·2·9 = 108; MACs 2·6·8·8·2·9 = 13824
    Case(
        "conv-grouped",
        "Convolution layer { num_output: 6 kernel_size: 3 pad: 1 group: 2 bias_term: false }",
        (("N", 4, 8, 8),),
        (2, 6, 8, 8),
        params=108,
        macs=13824,
        flops=27648,
    ),
    # depthwise: 4·1·9 + 4 = 40; MACs 2·4·36·9 = 2592; FLOPs 5184 + 288
    Case(
        "conv-depthwise",
        "Convolution layer { num_output: 4 kernel_size: 3 pad: 1 group: 4 }",
        (("N", 4, 6, 6),),
        (2, 4, 6, 6),
        params=40,
        macs=2592,
        flops=5472,
    ),
    # effective kernel 5: Ho = 10 − 5 + 1 = 6; 3·2·9 + 3 = 57; MACs 2·3·36·18 = 3888
    Case(
        "conv-dilated",
        "Convolution layer { num_output: 3 kernel_size: 3 dilation: 2 }",
        (("N", 2, 10, 10),),
        (2, 3, 6, 6),
        params=57,
        macs=3888,
        flops=7992,
    ),
    # Ho = (7 + 2 − 3)//2 + 1 = 4; 2·3·9 + 2 = 56; MACs 2·2·16·27 = 1728; FLOPs 3456 + 64
    Case(
        "conv-strided",
        "Convolution layer { num_output: 2 kernel_size: 3 stride: 2 pad: 1 }",
        (("N", 3, 7, 7),),
        (2, 2, 4, 4),
        params=56,
        macs=1728,
        flops=3520,
    ),
    # Ho = (5 + 0 + 1 − 2)//1 + 1 = 5, Wo = (6 + 1 + 2 − 3)//2 + 1 = 4; 3·2·6 + 3 = 39;
    # MACs 2·3·20·12 = 1440; FLOPs 2880 + 120
    Case(
        "conv-asymmetric",
        "Convolution layer { num_output: 3 kernel_size: [2, 3] stride: [1, 2] pad: [0, 1, 1, 2] }",
        (("N", 2, 5, 6),),
        (2, 3, 5, 4),
        params=39,
        macs=1440,
        flops=3000,
    ),
    # grouped, dilated [2, 1], strided and asymmetrically padded at once: Ho = (9 + 1 + 2 − 5)//2
    # + 1 = 4, Wo = (8 + 0 + 1 − 3)//2 + 1 = 4; 4·3·9 + 4 = 112; MACs 2·4·16·3·9 = 3456;
    # FLOPs 6912 + 128
    Case(
        "conv-grouped-dilated-asymmetric",
        "Convolution layer { num_output: 4 kernel_size: 3 stride: 2 dilation: [2, 1] group: 2 "
        "pad: [1, 0, 2, 1] }",
        (("N", 6, 9, 8),),
        (2, 4, 4, 4),
        params=112,
        macs=3456,
        flops=7040,
    ),
    # -- Pooling: FLOPs = outputs·(k² − 1) for MAX, outputs·k² for AVE
    # ceil((6 + 2 − 3)/2) + 1 = 4, kept since 3·2 = 6 < 6 + 1; 2·2·16 outputs · 8
    Case(
        "pool-max-ceil",
        "Pooling layer { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
        (("N", 2, 6, 6),),
        (2, 2, 4, 4),
        flops=512,
    ),
    Case(
        "pool-max-floor",
        "Pooling layer { pool: MAX kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR }",
        (("N", 2, 6, 6),),
        (2, 2, 3, 3),
        flops=288,
    ),
    # ceil((5 + 2 − 2)/2) + 1 = 4, but 3·2 = 6 >= 5 + 1: the last window starts in the padding
    # and is dropped (Caffe's rule) -> 3
    Case(
        "pool-max-dropped",
        "Pooling layer { pool: MAX kernel_size: 2 stride: 2 pad: 1 }",
        (("N", 2, 5, 5),),
        (2, 2, 3, 3),
        flops=108,
    ),
    # no padding, stride > kernel: ceil(7/3) + 1 = 4 would start a window at 9, past the input
    Case(
        "pool-max-stride-over-kernel",
        "Pooling layer { pool: MAX kernel_size: 2 stride: 3 }",
        (("N", 1, 9, 9),),
        (2, 1, 3, 3),
        flops=54,
    ),
    # H: ceil(4/2) + 1 = 3; W: ceil(7/2) + 1 = 5 (last window overhangs by 1); 30 outputs · 5
    Case(
        "pool-max-rect",
        "Pooling layer { pool: MAX kernel_size: [3, 2] stride: 2 }",
        (("N", 1, 7, 9),),
        (2, 1, 3, 5),
        flops=150,
    ),
    # ceil(3/2) + 1 = 3: the last window covers rows 4..6 of 6, divided by 2·k
    Case(
        "pool-ave-ceil-overhang",
        "Pooling layer { pool: AVE kernel_size: 3 stride: 2 }",
        (("N", 2, 6, 6),),
        (2, 2, 3, 3),
        flops=324,
    ),
    # 4 outputs, the last window starts at padded row 6 of 8: divisor clipped to 2 rows
    Case(
        "pool-ave-ceil-padded-overhang",
        "Pooling layer { pool: AVE kernel_size: 3 stride: 2 pad: 1 }",
        (("N", 2, 6, 6),),
        (2, 2, 4, 4),
        flops=576,
    ),
    Case(
        "pool-ave-dropped",
        "Pooling layer { pool: AVE kernel_size: 2 stride: 2 pad: 1 }",
        (("N", 2, 5, 5),),
        (2, 2, 3, 3),
        flops=144,
    ),
    Case(
        "pool-ave-floor",
        "Pooling layer { pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR }",
        (("N", 2, 6, 6),),
        (2, 2, 3, 3),
        flops=324,
    ),
    # asymmetric padding: H (7 + 0 + 1 − 3)/2 -> ceil 3 + 1 = 4, W (6 + 1 + 0 − 3)/2 + 1 = 3
    Case(
        "pool-ave-asymmetric",
        "Pooling layer { pool: AVE kernel_size: 3 stride: 2 pad: [0, 1, 1, 0] }",
        (("N", 1, 7, 6),),
        (2, 1, 4, 3),
        flops=216,
    ),
    # asymmetric padding with a ceil overhang: H ceil((6 + 1 + 0 − 3)/2) + 1 = 3; W ceil((8 + 2 +
    # 0 − 3)/2) + 1 = 5, kept as 4·2 = 8 < 8 + 2, its window reaching 1 past the padded input;
    # 2·2·15 outputs · 8 (MAX) or · 9 (AVE)
    Case(
        "pool-max-asymmetric-ceil",
        "Pooling layer { pool: MAX kernel_size: 3 stride: 2 pad: [1, 2, 0, 0] }",
        (("N", 2, 6, 8),),
        (2, 2, 3, 5),
        flops=480,
    ),
    Case(
        "pool-ave-asymmetric-ceil",
        "Pooling layer { pool: AVE kernel_size: 3 stride: 2 pad: [1, 2, 0, 0] }",
        (("N", 2, 6, 8),),
        (2, 2, 3, 5),
        flops=540,
    ),
    # global: one window of 5·7 per channel: 6 outputs · 35 (AVE) or 34 (MAX)
    Case(
        "pool-global-ave",
        "Pooling layer { pool: AVE global_pooling: true }",
        (("N", 3, 5, 7),),
        (2, 3, 1, 1),
        flops=210,
    ),
    Case(
        "pool-global-max",
        "Pooling layer { pool: MAX global_pooling: true }",
        (("N", 3, 5, 7),),
        (2, 3, 1, 1),
        flops=204,
    ),
    # -- AdaptiveAvgPool: FLOPs = inputs + outputs (0 when the size is kept)
    Case("adaptive-identity", "AdaptiveAvgPool layer { output_size: 5 }", (("N", 2, 5, 5),), (2, 2, 5, 5)),
    Case(
        "adaptive-divisible",
        "AdaptiveAvgPool layer { output_size: 4 }",
        (("N", 2, 8, 8),),
        (2, 2, 4, 4),
        flops=256 + 64,
    ),
    Case(
        "adaptive-13-to-6",
        "AdaptiveAvgPool layer { output_size: 6 }",
        (("N", 2, 13, 13),),
        (2, 2, 6, 6),
        flops=676 + 144,
    ),
    Case(
        "adaptive-rect",
        "AdaptiveAvgPool layer { output_size: [3, 2] }",
        (("N", 1, 7, 5),),
        (2, 1, 3, 2),
        flops=70 + 12,
    ),
    # -- activations: FLOPs per element 1 (ReLU, TanH, Sigmoid), 2 (leaky), 0 (Dropout), 3 (Softmax)
    Case("relu", "ReLU layer {}", (NCHW,), (2, 3, 4, 4), flops=96),
    Case("relu-leaky", "ReLU layer { negative_slope: 0.1 }", (NCHW,), (2, 3, 4, 4), flops=192),
    Case("tanh", "TanH layer {}", (NCHW,), (2, 3, 4, 4), flops=96),
    Case("sigmoid", "Sigmoid layer {}", (NCHW,), (2, 3, 4, 4), flops=96),
    Case("dropout", "Dropout layer { dropout_ratio: 0.3 }", (NCHW,), (2, 3, 4, 4)),
    Case("softmax", "Softmax layer {}", (("N", 5, 3, 3),), (2, 5, 3, 3), flops=270),
    Case("softmax-last-axis", "Softmax layer { axis: -1 }", (("N", 3, 7),), (2, 3, 7), flops=126),
    Case("softmax-middle-axis", "Softmax layer { axis: 2 }", (("N", 3, 4, 5),), (2, 3, 4, 5), flops=360),
    Case("softmax-2d", "Softmax layer {}", (("N", 10),), (2, 10), flops=60),
    # -- InnerProduct: params = out·in (+out); MACs = rows·in·out
    # in = 48: 480 + 10; MACs 2·48·10 = 960; FLOPs 1920 + 20
    Case("fc", "InnerProduct layer { num_output: 10 }", (NCHW,), (2, 10), params=490, macs=960, flops=1940),
    Case(
        "fc-2d-no-bias",
        "InnerProduct layer { num_output: 5 bias_term: false }",
        (("N", 20),),
        (2, 5),
        params=100,
        macs=200,
        flops=400,
    ),
    # axis 2 of [N, 3, 4, 5]: in = 20, rows = 2·3; 120 + 6; MACs 6·20·6 = 720; FLOPs 1440 + 36
    Case(
        "fc-axis-2",
        "InnerProduct layer { num_output: 6 axis: 2 }",
        (("N", 3, 4, 5),),
        (2, 3, 6),
        params=126,
        macs=720,
        flops=1476,
    ),
    # axis −1 of [N, 3, 7]: in = 7, rows = 6; 28; MACs 6·7·4 = 168
    Case(
        "fc-axis-last",
        "InnerProduct layer { num_output: 4 axis: -1 bias_term: false }",
        (("N", 3, 7),),
        (2, 3, 4),
        params=28,
        macs=168,
        flops=336,
    ),
    # -- BatchNorm: params 2·C (affine), buffers 2·C, FLOPs 2 per element
    Case("batchnorm", "BatchNorm layer {}", (NCHW,), (2, 3, 4, 4), params=6, buffers=6, flops=192),
    Case(
        "batchnorm-no-affine",
        "BatchNorm layer { affine: false eps: 0.001 }",
        (NCHW,),
        (2, 3, 4, 4),
        buffers=6,
        flops=192,
    ),
    Case("batchnorm-2d", "BatchNorm layer {}", (("N", 5),), (2, 5), params=10, buffers=10, flops=20),
    # -- Scale: params C (+C), FLOPs 1 per element (+1 with a bias)
    Case("scale", "Scale layer {}", (NCHW,), (2, 3, 4, 4), params=3, flops=96),
    Case("scale-bias", "Scale layer { bias_term: true }", (NCHW,), (2, 3, 4, 4), params=6, flops=192),
    Case(
        "scale-last-axis",
        "Scale layer { bias_term: true axis: -1 }",
        (("N", 3, 5),),
        (2, 3, 5),
        params=10,
        flops=60,
    ),
    # -- LRN: FLOPs per element = window + 5 (window n across, n² within)
    Case(
        "lrn-across",
        "LRN layer { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 }",
        (("N", 7, 3, 3),),
        (2, 7, 3, 3),
        flops=10 * 126,
    ),
    Case(
        "lrn-across-3",
        "LRN layer { local_size: 3 alpha: 0.0001 beta: 0.75 }",
        (("N", 4, 3, 3),),
        (2, 4, 3, 3),
        flops=8 * 72,
    ),
    Case(
        "lrn-within",
        "LRN layer { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }",
        (("N", 2, 5, 5),),
        (2, 2, 5, 5),
        flops=14 * 100,
    ),
    # n = 1: each value against itself; 24 elements · 6
    Case(
        "lrn-across-1",
        "LRN layer { local_size: 1 alpha: 1 beta: 0.5 }",
        (("N", 3, 2, 2),),
        (2, 3, 2, 2),
        flops=6 * 24,
    ),
    # a window wider than the 3 channels (clipped at both ends); 54 elements · 12
    Case(
        "lrn-across-wider-than-channels",
        "LRN layer { local_size: 7 alpha: 0.3 beta: 0.6 k: 1.5 }",
        (("N", 3, 3, 3),),
        (2, 3, 3, 3),
        flops=12 * 54,
    ),
    # a 5×5 window over a 4×6 plane (zero padding 2); 96 elements · (25 + 5)
    Case(
        "lrn-within-5",
        "LRN layer { local_size: 5 alpha: 2 beta: 0.75 norm_region: WITHIN_CHANNEL }",
        (("N", 2, 4, 6),),
        (2, 2, 4, 6),
        flops=30 * 96,
    ),
    # -- Eltwise: FLOPs = (inputs − 1) per element, +1 per element for each coeff ≠ 1
    Case("eltwise-sum", "Eltwise layer { bottom: [a, b] }", (NCHW, NCHW), (2, 3, 4, 4), flops=96),
    Case(
        "eltwise-sum-coeff",
        "Eltwise layer { bottom: [a, b, c] coeff: [1, -1, 0.5] }",
        (NCHW,) * 3,
        (2, 3, 4, 4),
        flops=4 * 96,
    ),
    Case(
        "eltwise-prod",
        "Eltwise layer { bottom: [a, b, c] operation: PROD }",
        (NCHW,) * 3,
        (2, 3, 4, 4),
        flops=192,
    ),
    Case(
        "eltwise-max", "Eltwise layer { bottom: [a, b] operation: MAX }", (NCHW, NCHW), (2, 3, 4, 4), flops=96
    ),
    # -- Concat, Flatten, Reshape count nothing
    Case("concat", "Concat layer { bottom: [a, b] }", (NCHW, ("N", 5, 4, 4)), (2, 8, 4, 4)),
    Case(
        "concat-last-axis",
        "Concat layer { bottom: [a, b, c] axis: -1 }",
        (("N", 3, 4, 2), ("N", 3, 4, 3), ("N", 3, 4, 1)),
        (2, 3, 4, 6),
    ),
    Case("concat-single", "Concat layer { bottom: [a] }", (NCHW,), (2, 3, 4, 4)),
    Case("concat-batch-axis", "Concat layer { bottom: [a, b] axis: 0 }", ((2, 3), (1, 3)), (3, 3)),
    Case("flatten", "Flatten layer {}", (NCHW,), (2, 48)),
    Case("flatten-axis-2", "Flatten layer { axis: 2 }", (("N", 3, 4, 5),), (2, 3, 20)),
    Case("flatten-middle", "Flatten layer { axis: 1 end_axis: 2 }", (("N", 3, 4, 5),), (2, 12, 5)),
    Case("flatten-all", "Flatten layer { axis: 0 }", ((2, 3, 4),), (24,)),
    Case("reshape", "Reshape layer { shape: [0, -1] }", (NCHW,), (2, 48)),
    Case("reshape-explicit", "Reshape layer { shape: [0, 4, 3, 4] }", (NCHW,), (2, 4, 3, 4)),
    Case("reshape-axis", "Reshape layer { shape: [3, 1] axis: 1 num_axes: 1 }", (("N", 3, 4),), (2, 3, 1, 4)),
    Case("reshape-append-axis", "Reshape layer { shape: [1] axis: -1 num_axes: 0 }", (("N", 3),), (2, 3, 1)),
    Case("reshape-infer-middle", "Reshape layer { shape: [-1, 8] axis: 1 }", (("N", 4, 4),), (2, 2, 8)),
    Case("reshape-static", "Reshape layer { shape: [-1, 0] }", ((2, 3, 4, 4),), (32, 3)),
    # -- StridedSlice (ONNX Slice) counts nothing; sizes are len(range(start, end, step)) after
    # Python's clamping: rows 1 … 4 of 6
    Case(
        "strided-slice", "StridedSlice layer { starts: 1 ends: -1 axes: 2 }", (("N", 3, 6, 5),), (2, 3, 4, 5)
    ),
    # rows 0, 2, 4, 6 of 7 and columns 1, 3, 5 of 6 (ends past the axis: to the end)
    Case(
        "strided-slice-steps",
        "StridedSlice layer { starts: [0, 1] ends: [1000, 1000] axes: [2, 3] steps: [2, 2] }",
        (("N", 3, 7, 6),),
        (2, 3, 4, 3),
    ),
    # the last axis backwards from its last element to before the first (torch's flip)
    Case(
        "strided-slice-backwards",
        "StridedSlice layer { starts: -1 ends: -1000 axes: -1 steps: -1 }",
        (("N", 3, 4, 5),),
        (2, 3, 4, 5),
    ),
    # columns 4 and 2 of 5; a start before the first channel is clamped to 0
    Case(
        "strided-slice-clamped-backwards",
        "StridedSlice layer { starts: [-10, 4] ends: [2, 1] axes: [1, 3] steps: [1, -2] }",
        (("N", 3, 4, 5),),
        (2, 2, 4, 2),
    ),
    # the default axes 0, 1: both batch items, channels 1 and 4 of 6
    Case(
        "strided-slice-default-axes",
        "StridedSlice layer { starts: [0, 1] ends: [2, 5] steps: [1, 3] }",
        ((2, 6, 4),),
        (2, 2, 4),
    ),
]


def spec_text(case: Case) -> str:
    lines = [
        f"input {name}: [{', '.join(map(str, shape))}]"
        for name, shape in zip(INPUT_NAMES[: len(case.inputs)], case.inputs, strict=True)
    ]
    return "\n".join([*lines, case.layer, ""])


def build_graph(case: Case) -> Graph:
    return elaborate(SourceFile(f"{case.id}.net", spec_text(case)))


def case_params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


# ---------------------------------------------------------------- shapes and counts (no ONNX)


def assert_shape_and_counts(case: Any, outputs: tuple[tuple[int, ...], ...]) -> None:
    """The case's layer gives ``outputs`` (at N = BATCH) and the case's params, buffers, MACs
    and FLOPs (every layer test file's Case has those fields)."""
    graph = build_graph(case)
    typed = bind(graph, BATCH)
    types = typed.types
    assert tuple(types[t].dims for t in graph.node("layer").outputs) == outputs
    row = next(r for r in count_graph(typed).layers if r.name == "layer")
    counts = (row.params, row.buffers, row.macs, row.flops)
    assert counts == (case.params, case.buffers, case.macs, case.flops)


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.unit
def test_input_shape_counts_nothing_and_keeps_symbolic_batch() -> None:
    graph = elaborate(SourceFile("input.net", "input data: [N, 3, 8, 8]\nReLU relu {}\n"))
    assert infer_shapes(graph)["data"].dims == ("N", 3, 8, 8)
    typed = bind(graph, 4)
    types = typed.types
    assert types["data"].dims == (4, 3, 8, 8)
    row = count_graph(typed).layers[0]
    assert (row.type, row.params, row.buffers, row.macs, row.flops) == ("Input", 0, 0, 0, 0)


@pytest.mark.unit
def test_symbolic_batch_passes_through_shape_layers() -> None:
    for case in CASES:
        if "N" not in case.inputs[0]:
            continue
        typed = bind(build_graph(case), None)
        types = typed.types
        assert types["layer"].dims[0] == "N", case.id
        assert types["layer"].dims[1:] == case.output[1:], case.id


@pytest.mark.unit
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad", "ceil", "expected"),
    [
        (6, 3, 2, 1, True, 4),  # (6 + 2 − 3)/2 = 2.5 -> 3 + 1
        (6, 3, 2, 1, False, 3),
        (5, 2, 2, 1, True, 3),  # 4 windows, the 4th starts at 6 >= 5 + 1: dropped
        (5, 3, 2, 1, True, 3),  # ceil(2.5) + 1 = 4, 6 >= 6: dropped
        (7, 3, 2, 1, True, 4),  # exact division: no rounding
        (13, 3, 2, 0, True, 6),  # AlexNet pool5
        (55, 3, 2, 0, True, 27),  # AlexNet pool1
        (112, 3, 2, 0, True, 56),  # GoogLeNet pool1/3x3_s2: ceil(109/2) + 1
        (112, 3, 2, 1, False, 56),  # torchvision ResNet maxpool (floor)
        (112, 3, 2, 1, True, 57),  # the same with ceil: ceil(111/2) + 1, 56·2 < 113 so kept
        (9, 2, 3, 0, True, 3),  # a window starting past the input is dropped
    ],
)
def test_pool_output_size(size: int, kernel: int, stride: int, pad: int, ceil: bool, expected: int) -> None:
    assert pool_output_size(size, kernel, stride, pad, pad, ceil) == expected


# ---------------------------------------------------------------- ONNX and onnxruntime


def random_weights(typed: TypedGraph, seed: int) -> dict[str, np.ndarray]:
    """Every stored array with random non-trivial values (variances positive)."""
    rng = np.random.default_rng(seed)
    weights = initialize_weights(typed, seed)
    for name, value in weights.items():
        if name.endswith("running_var"):
            fresh = rng.uniform(0.5, 2.0, value.shape)
        else:
            fresh = rng.standard_normal(value.shape)
        weights[name] = fresh.astype(np.float32)
    return weights


def assert_shapes_agree(
    graph: Graph, types: Mapping[str, TensorType], onnx_shapes: Mapping[str, tuple[Dim, ...]]
) -> None:
    """ONNX's strict shape inference gives netspec's shape for every tensor netspec typed. A
    tensor the model does not have is an identity's output the emitter elided (another name for
    the identity's input): it must have that input's shape."""
    theirs: dict[str, tuple[Dim, ...] | None] = {}
    for node in graph.nodes:
        for tensor in node.outputs:
            alias = theirs.get(node.inputs[0]) if node.inputs else None
            theirs[tensor] = onnx_shapes.get(tensor, alias)
    mismatched = {t: (v.dims, theirs[t]) for t, v in types.items() if theirs[t] != v.dims}
    assert not mismatched, f"netspec vs ONNX shapes: {mismatched}"


def check_against_reference(
    graph: Graph, weights: Mapping[str, np.ndarray], *, dynamic: bool = False, opset: int = 21
) -> dict[str, np.ndarray]:
    """Compile ``graph``, check the model and that ONNX's shapes equal netspec's for every tensor,
    run it in onnxruntime on random inputs and compare each output with the float64 reference."""
    import onnxruntime as ort

    from netspec.compiler import compile_graph
    from netspec.export.onnx import check_model, inferred_shapes

    types = infer_shapes(graph, {} if dynamic else {"N": BATCH})
    model = compile_graph(bind(graph, batch=None if dynamic else BATCH), weights, opset=opset, fold_bn=False)
    check_model(model)
    assert_shapes_agree(graph, types, inferred_shapes(model))

    # Standard normal inputs, or what a layer asks for (valid boxes for RoI pooling).
    feeds = sample_inputs(bind(graph, BATCH), seed=7)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outputs = dict(zip(graph.outputs, session.run(list(graph.outputs), feeds), strict=True))
    expected = run_reference(graph, weights, feeds)
    for name, got in outputs.items():
        assert got.shape == types[name].bind({"N": BATCH}).dims == expected[name].shape, name
        scale = max(float(np.abs(expected[name]).max()), 1.0)
        np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-6 * scale, err_msg=name)
    return outputs


def run_case(case: Case, *, dynamic: bool, opset: int) -> None:
    graph = build_graph(case)
    weights = random_weights(bind(graph, BATCH), seed=len(case.id))
    outputs = check_against_reference(graph, weights, dynamic=dynamic, opset=opset)
    assert outputs["layer"].shape == case.output


def reference_of(
    type_name: str, inputs: list[np.ndarray], weights: Mapping[str, np.ndarray] | None = None, **params: Any
) -> np.ndarray:
    """The float64 reference output of a layer built with ``params``."""
    # Spec lists are tuples; Python lists here read as them.
    raw = {key: RawParam(tuple(value) if isinstance(value, list) else value) for key, value in params.items()}
    return build_layer(LAYER_TYPES[type_name], raw, None).reference(inputs, weights or {})[0]


@pytest.mark.ort
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case) -> None:
    run_case(case, dynamic=False, opset=21)


@pytest.mark.ort
@pytest.mark.parametrize("case", case_params([c for c in CASES if "N" in c.inputs[0]]))
def test_onnx_with_dynamic_batch(case: Case) -> None:
    run_case(case, dynamic=True, opset=21)


@pytest.mark.ort
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_at_minimum_opset(case: Case) -> None:
    run_case(case, dynamic=False, opset=13)


@pytest.mark.ort
def test_pooling_sweep_matches_reference() -> None:
    """Every small pooling configuration, MAX and AVE, ceil and floor, in one model."""
    configs = [
        (size, kernel, stride, pad, pool, mode)
        for size in range(3, 12)
        for kernel, stride, pad in [
            (2, 2, 0),
            (2, 2, 1),
            (3, 2, 0),
            (3, 2, 1),
            (3, 3, 1),
            (3, 2, 2),
            (4, 3, 2),
            (5, 3, 2),
            (2, 3, 0),
            (3, 1, 1),
        ]
        for pool in ("MAX", "AVE")
        for mode in ("CEIL", "FLOOR")
        if kernel <= size + 2 * pad
    ]
    lines = []
    for index, (size, kernel, stride, pad, pool, mode) in enumerate(configs):
        lines.append(f"input x{index}: [2, 2, {size}, {size + 1}]")
        lines.append(
            f"Pooling p{index} {{ bottom: x{index} pool: {pool} kernel_size: {kernel} "
            f"stride: {stride} pad: {pad} round_mode: {mode} }}"
        )
    graph = elaborate(SourceFile("sweep.net", "\n".join(lines)))
    check_against_reference(graph, {})


# ---------------------------------------------------------------- parameter and shape errors


def compile_error(text: str) -> str:
    with pytest.raises(NetspecError) as caught:
        infer_shapes(elaborate(SourceFile("bad.net", text)), {"N": BATCH})
    return str(caught.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 3, 4, 4]\ninput b: [N, 4, 4, 4]\nEltwise add { bottom: [a, b] }",
            "Eltwise 'add': needs inputs of one shape (inputs [2, 3, 4, 4], [2, 4, 4, 4])",
        ),
        ("input a: [N, 3, 4, 4]\nEltwise add { bottom: [a] }", "takes at least 2 inputs, got 1"),
        (
            "input a: [N, 3, 4, 4]\ninput b: [N, 3, 4, 4]\nEltwise add { bottom: [a, b] coeff: [1, 2, 3] }",
            "Eltwise 'add': has 3 coeff values for 2 inputs; give one per input",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput b: [N, 3, 4, 4]\n"
            "Eltwise m { bottom: [a, b] operation: MAX coeff: [1, 2] }",
            "Eltwise 'm': coeff applies to SUM only, not MAX",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput b: [N, 4, 5, 4]\nConcat cat { bottom: [a, b] }",
            "Concat 'cat': needs inputs that agree on every axis except the concatenation axis 1 "
            "(inputs [2, 3, 4, 4], [2, 4, 5, 4])",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput b: [N, 3, 4]\nConcat cat { bottom: [a, b] }",
            "Concat 'cat': needs inputs of one rank (inputs [2, 3, 4, 4], [2, 3, 4])",
        ),
        (
            "input a: [N, 3, 4, 4]\nConcat cat { bottom: [a] axis: 4 }",
            "Concat 'cat': axis 4 is out of range for the 4-D input [2, 3, 4, 4] (valid: -4 to 3)",
        ),
        (
            "input a: [N, 3, 8, 8]\nConvolution c { num_output: 4 kernel_size: 3 group: 2 }",
            "Convolution 'c': group 2 does not divide the 3 input channels",
        ),
        (
            "input a: [N, 4, 8, 8]\nConvolution c { num_output: 3 kernel_size: 3 group: 2 }",
            "Convolution 'c': group 2 does not divide num_output 3",
        ),
        (
            "input a: [N, 3, 2, 2]\nConvolution c { num_output: 4 kernel_size: 3 }",
            "Convolution 'c' produces a non-positive size: input [2, 3, 2, 2] gives output [2, 4, 0, 0]",
        ),
        ("input a: [N, 3, 4, 4]\nInnerProduct fc {}", "InnerProduct needs parameter 'num_output'"),
        (
            "input a: [N, 3, 4, 4]\nInnerProduct fc { num_output: 0 }",
            "InnerProduct parameter 'num_output': expected a positive integer, got integer 0",
        ),
        (
            "input a: [N, 3, 4, 4]\nInnerProduct fc { num_output: 3 axis: 0 }",
            "InnerProduct 'fc': axis 0 would fold the batch axis of [2, 3, 4, 4] into the features",
        ),
        (
            "input a: [N, 3, 4, 4]\nBatchNorm bn { eps: 0 }",
            "BatchNorm parameter 'eps': expected a number > 0.0, got integer 0",
        ),
        ("input a: [N]\nBatchNorm bn {}", "BatchNorm 'bn': expects an input with a channel axis (N, C, ...)"),
        ("input a: [N, 3, 4, 4]\nLRN n { local_size: 4 }", "LRN 'n': local_size must be odd, got 4"),
        ("input a: [N, 3, 4]\nLRN n {}", "LRN 'n': expects a 4-D input (N, C, H, W), got 3-D"),
        (
            "input a: [N, 3, 4, 4]\nLRN n { norm_region: ACROSS }",
            "LRN parameter 'norm_region': expected one of ACROSS_CHANNELS, WITHIN_CHANNEL, got 'ACROSS'",
        ),
        (
            "input a: [N, 3, 4, 4]\nScale s { axis: 4 }",
            "Scale 's': axis 4 is out of range for the 4-D input [2, 3, 4, 4]",
        ),
        (
            "input a: [N, 3, 4, 4]\nDropout d { dropout_ratio: 1 }",
            "Dropout 'd': dropout_ratio must be below 1",
        ),
        (
            "input a: [N, 3, 4, 4]\nSoftmax s { axis: -5 }",
            "Softmax 's': axis -5 is out of range for the 4-D input [2, 3, 4, 4] (valid: -4 to 3)",
        ),
        (
            "input a: [N, 3, 4, 4]\nFlatten f { axis: 2 end_axis: 1 }",
            "Flatten 'f': end_axis 1 comes before axis 2 for the 4-D input [2, 3, 4, 4]",
        ),
        (
            "input a: [N, 3, 4, 4]\nReshape r { shape: [0, 5, -1] }",
            "Reshape 'r': cannot reshape [2, 3, 4, 4] with shape [0, 5, -1]: the 48 elements of the "
            "replaced axes do not divide into parts of 5",
        ),
        (
            "input a: [N, 3, 4, 4]\nReshape r { shape: [0, 7, 7] }",
            "Reshape 'r': cannot reshape [2, 3, 4, 4] with shape [0, 7, 7]: the replaced axes hold 48 "
            "elements, the new shape 49",
        ),
        (
            "input a: [N, 3, 4, 4]\nReshape r { shape: [-1, -1] }",
            "Reshape 'r': shape [-1, -1] has more than one -1; only one dimension can be inferred",
        ),
        (
            "input a: [N, 3]\nReshape r { shape: [0, 0, 0] }",
            "Reshape 'r': shape [0, 0, 0] copies input axis 2 (a 0 at position 2), but the input [2, 3] "
            "has only 2 axes",
        ),
        (
            "input a: [N, 3, 4, 4]\nStridedSlice s { starts: [0, 1] ends: 2 axes: [2, 3] }",
            "StridedSlice 's': has 1 ends values for 2 starts; give one per sliced axis",
        ),
        (
            "input a: [N, 3, 4, 4]\nStridedSlice s { starts: 0 ends: 2 axes: 2 steps: 0 }",
            "StridedSlice 's': steps [0] has a 0; a step moves at least one element",
        ),
        (
            "input a: [N, 3, 4, 4]\nStridedSlice s { starts: [0, 1] ends: [2, 3] axes: [2, -2] }",
            "StridedSlice 's': axes [2, -2] name axis 2 twice",
        ),
        (
            "input a: [N, 3, 4, 4]\nStridedSlice s { starts: 3 ends: 1 axes: 2 }",
            "StridedSlice 's': takes nothing from axis 2 of [2, 3, 4, 4] (start 3, end 1, step 1)",
        ),
        (
            "input a: [N, 3, 4, 4]\nStridedSlice s { starts: 0 ends: 1 axes: 4 }",
            "StridedSlice 's': axes 4 is out of range for the 4-D input [2, 3, 4, 4]",
        ),
        (
            "input a: [N, 3, 4, 4]\nPooling p { kernel_size: 2 pad: 2 }",
            "Pooling 'p': padding [2, 2, 2, 2] must be smaller than the kernel [2, 2]",
        ),
        (
            "input a: [N, 3, 4, 4]\nPooling p { pool: AVE }",
            "Pooling 'p': needs kernel_size (or global_pooling: true)",
        ),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)


@pytest.mark.unit
def test_symbolic_batch_cannot_be_flattened_away() -> None:
    text = "input a: [N, 3, 4]\nFlatten f { axis: 0 }"
    with pytest.raises(NetspecError, match=r"needs a fixed size on axis 0, got 'N'"):
        infer_shapes(elaborate(SourceFile("bad.net", text)))


@pytest.mark.unit
def test_strided_slice_receptive_field() -> None:
    """Output pixel i of a slice with start s and step k is input pixel s + i·k: the field is
    one pixel, k apart, at s; a reversed axis has no window."""
    text = (
        "input a: [N, 3, 9, 9]\n"
        "StridedSlice cut { bottom: a starts: [1, 2] ends: [1000, -1] axes: [2, 3] steps: [2, 3] }\n"
        "StridedSlice flip { bottom: a starts: -1 ends: -1000 axes: 3 steps: -1 }\n"
        "StridedSlice channels { bottom: a starts: 1 ends: 3 axes: 1 }\n"
    )
    fields = bind(elaborate(SourceFile("rf.net", text))).receptive_fields
    cut = fields["cut"]
    assert cut is not None and (cut.size, cut.stride, cut.offset) == ((1, 1), (2, 3), (1, 2))
    assert fields["flip"] is None
    assert fields["channels"] == fields["a"]
