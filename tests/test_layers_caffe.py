"""Per-layer tests of the Caffe layer types (issue 3) and the Caffe options of older types:
shapes and exact counts, each configuration compiled to ONNX, checked, shape-inferred and run in
onnxruntime against the layer's float64 reference, the Caffe blob order of stored arrays, and
error messages.

Each case is one or more statements whose layer under test is named ``layer``, reading inputs
``a``, ``b``, ``c`` declared with the shapes given (``N`` is the batch, bound to 2). Counts are
worked out by hand in the comments. The harness is tests/test_layers.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest
from test_layers import (  # the shared harness; it reads a case's id, layer and inputs
    BATCH,
    assert_shape_and_counts,
    build_graph,
    case_params,
    check_against_reference,
    compile_error,
    random_weights,
)

from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Dim, Graph, TensorType
from netspec.infer import infer_shapes
from netspec.reference import run_reference
from netspec.typed import bind
from netspec.weights import initialize_weights


@dataclass(frozen=True)
class Case:
    """A configuration with the shapes of the layer's outputs (at N = 2) and its counts.

    ``fill`` sets stored arrays, by their local name, to a constant instead of random values.
    """

    id: str
    layer: str
    inputs: tuple[tuple[Dim, ...], ...]
    outputs: tuple[tuple[int, ...], ...]
    params: int = 0
    buffers: int = 0
    macs: int = 0
    flops: int = 0
    fill: tuple[tuple[str, float], ...] = ()


NCHW = ("N", 3, 4, 4)  # 96 elements at N = 2
OUT = (2, 3, 4, 4)

CASES = [
    # -- Deconvolution: Ho = s(H − 1) + d(k − 1) + 1 − p0 − p1; params = Cin·(Cout/g)·kh·kw (+Cout);
    # MACs = N·Cin·H·W·(Cout/g)·kh·kw; FLOPs = 2·MACs (+ N·Cout·Ho·Wo with a bias)
    # Ho = 2·3 + 3 = 9; 3·2·9 + 2 = 56; MACs 2·3·16·2·9 = 1728; FLOPs 3456 + 2·2·81
    Case(
        "deconv",
        "Deconvolution layer { num_output: 2 kernel_size: 3 stride: 2 }",
        (("N", 3, 4, 4),),
        ((2, 2, 9, 9),),
        params=56,
        macs=1728,
        flops=3780,
    ),
    # Ho = 2·4 + 4 − 2 = 10; 4·3·16 = 192; MACs 2·4·25·3·16 = 9600
    Case(
        "deconv-pad-group",
        "Deconvolution layer { num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2 bias_term: false }",
        (("N", 4, 5, 5),),
        ((2, 6, 10, 10),),
        params=192,
        macs=9600,
        flops=19200,
    ),
    # Ho = 1·2 + 2·2 + 1 − 0 − 1 = 6, Wo = 2·3 + 2·1 + 1 − 1 − 0 = 8; 2·3·6 + 3 = 39;
    # MACs 2·2·12·3·6 = 864; FLOPs 1728 + 2·3·48
    Case(
        "deconv-dilated-asymmetric",
        "Deconvolution layer { num_output: 3 kernel_size: [3, 2] stride: [1, 2] dilation: 2 "
        "pad: [0, 1, 1, 0] }",
        (("N", 2, 3, 4),),
        ((2, 3, 6, 8),),
        params=39,
        macs=864,
        flops=2016,
    ),
    # FCN's upsampling: one group per channel, no bias; Ho = 2·4 + 4 = 12; 3·1·16 = 48;
    # MACs 2·3·25·16 = 2400
    Case(
        "deconv-fcn",
        "Deconvolution layer { num_output: 3 kernel_size: 4 stride: 2 group: 3 bias_term: false }",
        (("N", 3, 5, 5),),
        ((2, 3, 12, 12),),
        params=48,
        macs=2400,
        flops=4800,
    ),
    # -- depthwise fork types: group = input channels; params Cout·kh·kw (+Cout)
    # 4·9 + 4 = 40; MACs 2·4·36·9 = 2592; FLOPs 5184 + 288
    Case(
        "conv-depthwise-fork",
        "ConvolutionDepthwise layer { num_output: 4 kernel_size: 3 pad: 1 }",
        (("N", 4, 6, 6),),
        ((2, 4, 6, 6),),
        params=40,
        macs=2592,
        flops=5472,
    ),
    # channel multiplier 2: Ho = (5 − 3)//2 + 1 = 2; 6·9 = 54; MACs 2·6·4·9 = 432
    Case(
        "depthwise-conv-multiplier",
        "DepthwiseConvolution layer { num_output: 6 kernel_size: 3 stride: 2 group: 3 bias_term: false }",
        (("N", 3, 5, 5),),
        ((2, 6, 2, 2),),
        params=54,
        macs=432,
        flops=864,
    ),
    # -- Crop, Slice and Split count nothing
    Case(
        "crop",
        "Crop layer { bottom: [a, b] offset: 1 }",
        (("N", 3, 8, 8), ("N", 5, 5, 6)),
        ((2, 3, 5, 6),),
    ),
    Case(
        "crop-per-axis",
        "Crop layer { bottom: [a, b] axis: 1 offset: [1, 2, 0] }",
        (("N", 4, 6, 7), ("N", 2, 3, 7)),
        ((2, 2, 3, 7),),
    ),
    Case("crop-nothing", "Crop layer { bottom: [a, b] }", (NCHW, ("N", 1, 4, 4)), (OUT,)),
    Case(
        "crop-last-axis",
        "Crop layer { bottom: [a, b] axis: -1 offset: 3 }",
        (("N", 2, 4, 9), ("N", 2, 4, 5)),
        ((2, 2, 4, 5),),
    ),
    Case("split", "Split layer { top: [x1, x2, x3] }", (NCHW,), (OUT,) * 3),
    Case("split-single", "Split layer {}", (NCHW,), (OUT,)),
    Case(
        "slice-points",
        "Slice layer { slice_point: [1, 3] }",
        (("N", 5, 2, 2),),
        ((2, 1, 2, 2), (2, 2, 2, 2), (2, 2, 2, 2)),
    ),
    Case("slice-equal", "Slice layer { axis: 2 top: [p, q] }", (("N", 2, 6, 3),), ((2, 2, 3, 3),) * 2),
    Case(
        "slice-last-axis", "Slice layer { axis: -1 slice_point: 4 }", (("N", 3, 7),), ((2, 3, 4), (2, 3, 3))
    ),
    Case("slice-dim", "Slice layer { slice_dim: 1 slice_point: 2 }", (("N", 3, 2),), ((2, 2, 2), (2, 1, 2))),
    Case("slice-single", "Slice layer {}", (NCHW,), (OUT,)),
    # -- activations: FLOPs per element as each docstring states
    Case("prelu", "PReLU layer {}", (NCHW,), (OUT,), params=3, flops=192),
    Case("prelu-shared", "PReLU layer { channel_shared: true }", (NCHW,), (OUT,), params=1, flops=192),
    Case("prelu-2d", "PReLU layer {}", (("N", 5),), ((2, 5),), params=5, flops=20),
    Case("elu", "ELU layer { alpha: 0.5 }", (NCHW,), (OUT,), flops=288),
    Case("absval", "AbsVal layer {}", (NCHW,), (OUT,), flops=96),
    Case("bnll", "BNLL layer {}", (NCHW,), (OUT,), flops=288),
    Case("relu6", "Power pre { scale: 5 }\nReLU6 layer {}", (NCHW,), (OUT,), flops=192),
    # Power: one FLOP per element for each non-trivial multiply, add and power
    Case("power", "Power layer { power: 2 scale: 0.5 shift: 1 }", (NCHW,), (OUT,), flops=288),
    Case("power-root", "Power layer { power: 0.5 shift: 6 }", (NCHW,), (OUT,), flops=192),
    Case("power-identity", "Power layer {}", (NCHW,), (OUT,)),
    Case("power-reciprocal", "Power layer { power: -1 shift: 6 }", (NCHW,), (OUT,), flops=192),
    # Exp: the exponential, plus the inner scale·ln(base) ≠ 1 and the outer base^shift ≠ 1
    Case("exp", "Exp layer {}", (NCHW,), (OUT,), flops=96),
    Case("exp-base-2", "Exp layer { base: 2 scale: 0.5 shift: 1 }", (NCHW,), (OUT,), flops=288),
    Case("exp-shift", "Exp layer { shift: -1 }", (NCHW,), (OUT,), flops=192),
    # Log: the logarithm, plus the multiply, the add and the change of base where needed
    Case("log", "Log layer { shift: 6 }", (NCHW,), (OUT,), flops=192),
    Case("log-base-10", "Log layer { base: 10 scale: 0.5 shift: 5 }", (NCHW,), (OUT,), flops=384),
    # -- ArgMax: FLOPs = input elements; outputs are float indices (and values)
    Case("argmax", "ArgMax layer {}", (NCHW,), ((2, 1, 1, 1),), flops=96),
    Case(
        "argmax-top3-values",
        "ArgMax layer { top_k: 3 out_max_val: true }",
        (NCHW,),
        ((2, 2, 3, 1),),
        flops=96,
    ),
    Case("argmax-2d", "ArgMax layer { top_k: 2 }", (("N", 10),), ((2, 1, 2),), flops=20),
    Case("argmax-axis", "ArgMax layer { axis: 1 }", (("N", 5, 3, 3),), ((2, 1, 3, 3),), flops=90),
    Case(
        "argmax-axis-values",
        "ArgMax layer { axis: 1 top_k: 2 out_max_val: true }",
        (("N", 5, 3, 3),),
        ((2, 2, 3, 3),),
        flops=90,
    ),
    Case("argmax-last-axis", "ArgMax layer { axis: -1 top_k: 3 }", (("N", 3, 7),), ((2, 3, 3),), flops=42),
    # -- Scale and Bias: params = the learned operand's size; FLOPs 1 per element (+1 bias)
    Case("scale-input", "Scale layer { bottom: [a, b] }", (NCHW, (3, 4)), (OUT,), flops=96),
    Case("scale-input-axis-0", "Scale layer { bottom: [a, b] axis: 0 }", (NCHW, ("N", 3)), (OUT,), flops=96),
    Case(
        "scale-input-bias",
        "Scale layer { bottom: [a, b] bias_term: true }",
        (NCHW, (3, 4)),
        (OUT,),
        params=12,
        flops=192,
    ),
    Case("scale-num-axes-2", "Scale layer { num_axes: 2 }", (NCHW,), (OUT,), params=12, flops=96),
    Case("scale-scalar", "Scale layer { num_axes: 0 }", (NCHW,), (OUT,), params=1, flops=96),
    Case(
        "scale-rest",
        "Scale layer { axis: 2 num_axes: -1 bias_term: true }",
        (NCHW,),
        (OUT,),
        params=32,
        flops=192,
    ),
    Case("bias", "Bias layer {}", (NCHW,), (OUT,), params=3, flops=96),
    Case("bias-input", "Bias layer { bottom: [a, b] axis: 0 }", (NCHW, NCHW), (OUT,), flops=96),
    Case("bias-spatial", "Bias layer { axis: 2 num_axes: 2 }", (NCHW,), (OUT,), params=16, flops=96),
    # -- Caffe BatchNorm: buffers 2·C + 1 (the scale factor); statistics divided by the factor
    Case(
        "batchnorm-caffe",
        "BatchNorm layer { affine: false caffe_scale_factor: true use_global_stats: true "
        "moving_average_fraction: 0.9 eps: 0.001 }",
        (NCHW,),
        (OUT,),
        buffers=7,
        flops=192,
        fill=(("scale_factor", 2.5),),
    ),
    Case(
        "batchnorm-caffe-zero-factor",
        "BatchNorm layer { affine: false caffe_scale_factor: true }",
        (NCHW,),
        (OUT,),
        buffers=7,
        flops=192,
        fill=(("scale_factor", 0.0),),
    ),
    Case(
        "batchnorm-caffe-2d",
        "BatchNorm layer { affine: false caffe_scale_factor: true }",
        (("N", 5),),
        ((2, 5),),
        buffers=11,
        flops=20,
        fill=(("scale_factor", 0.25),),
    ),
    # -- SegNet's BN: params 2·C, FLOPs 2 per element
    Case("bn-segnet", "BN layer { bn_mode: INFERENCE }", (NCHW,), (OUT,), params=6, flops=192),
    # -- Axpy: FLOPs 2 per element
    Case(
        "axpy",
        "Axpy layer { bottom: [a, b, c] }",
        (("N", 3, 1, 1), NCHW, NCHW),
        (OUT,),
        flops=192,
    ),
    Case("axpy-2d-factor", "Axpy layer { bottom: [a, b, c] }", (("N", 3), NCHW, NCHW), (OUT,), flops=192),
    # -- MAX Pooling with Caffe's argmax mask: FLOPs as without it (2·2·Ho·Wo·(k² − 1))
    Case(
        "pool-mask",
        "Pooling layer { pool: MAX kernel_size: 3 stride: 2 top: [p, m] }",
        (("N", 2, 7, 7),),
        ((2, 2, 3, 3),) * 2,
        flops=288,
    ),
    Case(
        "pool-mask-padded-ceil",
        "Pooling layer { pool: MAX kernel_size: 3 stride: 2 pad: 1 top: [p, m] }",
        (("N", 2, 6, 6),),
        ((2, 2, 4, 4),) * 2,
        flops=512,
    ),
    Case(
        "pool-mask-global",
        "Pooling layer { pool: MAX global_pooling: true top: [p, m] }",
        (("N", 3, 5, 7),),
        ((2, 3, 1, 1),) * 2,
        flops=204,
    ),
    # -- Upsample: counts nothing. SegNet's pattern: pool with a mask, unpool with it.
    Case(
        "upsample-segnet",
        "Pooling pool { pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample layer { bottom: [pooled, mask] }",
        (("N", 2, 6, 8),),
        ((2, 2, 6, 8),),
    ),
    # odd sizes: ceil pooling gives 4 × 5, upsample_h/w restore 7 × 9
    Case(
        "upsample-odd",
        "Pooling pool { pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample layer { bottom: [pooled, mask] upsample_h: 7 upsample_w: 9 }",
        (("N", 2, 7, 9),),
        ((2, 2, 7, 9),),
    ),
    Case(
        "upsample-pad-out",
        "Pooling pool { pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample layer { bottom: [pooled, mask] pad_out_h: true pad_out_w: true }",
        (("N", 2, 7, 7),),
        ((2, 2, 7, 7),),
    ),
    Case(
        "upsample-scale-hw",
        "Pooling pool { pool: MAX kernel_size: [2, 3] stride: [2, 3] top: [pooled, mask] }\n"
        "Upsample layer { bottom: [pooled, mask] scale_h: 2 scale_w: 3 }",
        (("N", 1, 4, 6),),
        ((2, 1, 4, 6),),
    ),
    # overlapping windows may pick one maximum twice: both writes carry the same value
    Case(
        "upsample-overlapping",
        "Pooling pool { pool: MAX kernel_size: 3 stride: 2 top: [pooled, mask] }\n"
        "ReLU relu { bottom: pooled }\n"
        "Upsample layer { bottom: [relu, mask] upsample_h: 7 upsample_w: 7 }",
        (("N", 2, 7, 7),),
        ((2, 2, 7, 7),),
    ),
    Case("upsample-nearest", "Upsample layer {}", (("N", 2, 3, 4),), ((2, 2, 6, 8),)),
    Case(
        "upsample-nearest-hw", "Upsample layer { scale_h: 2 scale_w: 3 }", (("N", 2, 3, 4),), ((2, 2, 6, 12),)
    ),
]


def case_weights(case: Case, graph: Graph) -> dict[str, np.ndarray]:
    weights = random_weights(bind(graph, BATCH), seed=len(case.id))
    for suffix, value in case.fill:
        name = f"layer.{suffix}"
        weights[name] = np.full_like(weights[name], value)
    return weights


# ---------------------------------------------------------------- shapes and counts (no ONNX)


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, case.outputs)


@pytest.mark.unit
def test_symbolic_batch_passes_through() -> None:
    for case in CASES:
        if "N" not in case.inputs[0]:
            continue
        typed = bind(build_graph(case), None)
        types = typed.types
        for tensor, expected in zip(build_graph(case).node("layer").outputs, case.outputs, strict=True):
            assert types[tensor].dims == ("N", *expected[1:]), case.id


@pytest.mark.unit
def test_default_output_names_and_top() -> None:
    graph = elaborate(
        SourceFile(
            "tops.net",
            "input a: [N, 4, 4, 4]\nSlice s { slice_point: [1, 3] }\n"
            "Pooling p { bottom: a pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n",
        )
    )
    assert graph.node("s").outputs == ("s.0", "s.1", "s.2")
    assert graph.node("p").outputs == ("pooled", "mask")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("layer", "inputs", "expected"),
    [
        # (name, shape, learnable) in Caffe's blob order: the caffemodel loader maps blob i to i
        (
            "Deconvolution layer { num_output: 6 kernel_size: 3 group: 2 }",
            (("N", 4, 5, 5),),
            [("weight", (4, 3, 3, 3), True), ("bias", (6,), True)],
        ),
        (
            "ConvolutionDepthwise layer { num_output: 4 kernel_size: 3 }",
            (("N", 4, 5, 5),),
            [("weight", (4, 1, 3, 3), True), ("bias", (4,), True)],
        ),
        (
            "BatchNorm layer { affine: false caffe_scale_factor: true }",
            (NCHW,),
            [("running_mean", (3,), False), ("running_var", (3,), False), ("scale_factor", (1,), False)],
        ),
        ("Scale layer { bias_term: true }", (NCHW,), [("weight", (3,), True), ("bias", (3,), True)]),
        ("Scale layer { bottom: [a, b] bias_term: true }", (NCHW, (3,)), [("bias", (3,), True)]),
        ("Bias layer { num_axes: 2 }", (NCHW,), [("bias", (3, 4), True)]),
        ("BN layer {}", (NCHW,), [("slope", (1, 3, 1, 1), True), ("bias", (1, 3, 1, 1), True)]),
        ("PReLU layer {}", (NCHW,), [("weight", (3,), True)]),
    ],
)
def test_stored_arrays_in_caffe_blob_order(
    layer: str, inputs: tuple[tuple[Dim, ...], ...], expected: list[tuple[str, tuple[int, ...], bool]]
) -> None:
    graph = build_graph(Case("blobs", layer, inputs, ()))
    typed = bind(graph, BATCH)
    types = typed.types
    node = graph.node("layer")
    specs = node.layer.parameters([types[t] for t in node.inputs])
    assert [(s.name, s.shape, s.learnable) for s in specs] == expected


@pytest.mark.unit
def test_initial_values() -> None:
    graph = build_graph(
        Case("init", "PReLU layer {}\nBatchNorm bn { affine: false caffe_scale_factor: true }", (NCHW,), ())
    )
    weights = initialize_weights(bind(graph, BATCH))
    np.testing.assert_array_equal(weights["layer.weight"], np.full(3, 0.25, np.float32))
    np.testing.assert_array_equal(weights["bn.scale_factor"], np.ones(1, np.float32))


@pytest.mark.unit
def test_receptive_fields() -> None:
    text = (
        "input a: [N, 3, 16, 16]\n"
        "input b: [N, 3, 10, 10]\n"
        "Convolution conv { bottom: a num_output: 3 kernel_size: 3 }\n"
        "Crop crop { bottom: [conv, b] axis: 2 offset: [2, 1] }\n"
        "Pooling pool { bottom: conv pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample up { bottom: [pooled, mask] }\n"
        "Deconvolution deconv { bottom: conv num_output: 3 kernel_size: 2 stride: 2 }\n"
    )
    graph = elaborate(SourceFile("rf.net", text))
    fields = bind(graph).receptive_fields
    # The crop shifts the first output pixel by the offset: centre 1 + (2, 1).
    assert fields["crop"] is not None
    assert (fields["crop"].size, fields["crop"].offset) == ((3, 3), (3.0, 2.0))
    assert fields["mask"] == fields["pooled"]
    # Transposed windows (netspec.receptive): pooled is 4/2 at 1.5; unpooling x2 gives 4/1 at
    # 1.5 − 0.5 = 1; the 2/2 deconvolution of conv (3/1 at 1) gives 3/0.5 at 1 − 0.25 = 0.75.
    up, deconv = fields["up"], fields["deconv"]
    assert up is not None and (up.size, up.stride, up.offset) == ((4, 4), (1, 1), (1, 1))
    assert deconv is not None
    assert (deconv.size, deconv.stride, deconv.offset) == ((3, 3), (0.5, 0.5), (0.75, 0.75))


# ---------------------------------------------------------------- ONNX and onnxruntime


# Each case at opset 21, with a dynamic batch (where its first input has one) and at opset 13.
ONNX_RUNS = [
    pytest.param(case, dynamic, opset, id=f"{case.id}-{mode}")
    for mode, dynamic, opset in (("opset21", False, 21), ("dynamic", True, 21), ("opset13", False, 13))
    for case in CASES
    if not dynamic or "N" in case.inputs[0]
]


@pytest.mark.ort
@pytest.mark.parametrize(("case", "dynamic", "opset"), ONNX_RUNS)
def test_onnx_matches_reference(case: Case, dynamic: bool, opset: int) -> None:
    graph = build_graph(case)
    outputs = check_against_reference(graph, case_weights(case, graph), dynamic=dynamic, opset=opset)
    for tensor, expected in zip(graph.node("layer").outputs, case.outputs, strict=True):
        if tensor in outputs:
            assert outputs[tensor].shape == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad", "dilation", "group"),
    [(9, 3, 2, 1, 1, 1), (8, 4, 2, 1, 1, 2), (7, 3, 1, 0, 2, 1), (10, 2, 2, 0, 1, 4)],
)
def test_deconvolution_is_the_adjoint_of_convolution(
    size: int, kernel: int, stride: int, pad: int, dilation: int, group: int
) -> None:
    """Caffe's Deconvolution is its Convolution's backward pass: with the same weight array,
    <conv(x), y> = <x, deconv(y)> for all x, y (an oracle independent of both references)."""
    settings = f"kernel_size: {kernel} stride: {stride} pad: {pad} dilation: {dilation} group: {group}"
    conv_text = (
        f"input a: [1, 4, {size}, {size}]\n"
        f"Convolution layer {{ num_output: 8 {settings} bias_term: false }}\n"
    )
    conv = build_graph(Case("conv", conv_text, (), ()))
    out = infer_shapes(conv)["layer"].dims
    deconv_text = (
        f"input a: [1, 8, {out[2]}, {out[3]}]\n"
        f"Deconvolution layer {{ num_output: 4 {settings} bias_term: false }}\n"
    )
    deconv = build_graph(Case("deconv", deconv_text, (), ()))
    assert infer_shapes(deconv)["layer"].dims == (1, 4, size, size)
    rng = np.random.default_rng(size)
    weight = rng.standard_normal((8, 4 // group, kernel, kernel))
    x, y = rng.standard_normal((1, 4, size, size)), rng.standard_normal(out)
    forward = run_reference(conv, {"layer.weight": weight}, {"a": x})["layer"]
    backward = run_reference(deconv, {"layer.weight": weight}, {"a": y})["layer"]
    assert np.vdot(forward, y) == pytest.approx(np.vdot(x, backward), rel=1e-12)


def reference_outputs(text: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    graph = elaborate(SourceFile("semantics.net", text))
    weights = initialize_weights(bind(graph, BATCH))
    return run_reference(graph, weights, inputs, keep="all")


@pytest.mark.unit
def test_pool_mask_and_unpooling_semantics() -> None:
    """Caffe's semantics written out by hand: the mask is h·W + w of each window's maximum, and
    unpooling puts every maximum back where it was, zeros elsewhere."""
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 8))
    values = reference_outputs(
        "input a: [N, 3, 6, 8]\n"
        "Pooling pool { pool: MAX kernel_size: 2 stride: 2 top: [pooled, mask] }\n"
        "Upsample up { bottom: [pooled, mask] }\n",
        {"a": x},
    )
    windows = x.reshape(2, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4)
    first = windows.argmax(axis=-1)
    rows = 2 * np.arange(3)[:, None] + first // 2
    cols = 2 * np.arange(4)[None, :] + first % 2
    np.testing.assert_array_equal(values["mask"], rows * 8 + cols)
    is_max = x == values["pooled"].repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(values["up"], np.where(is_max, x, 0.0))


@pytest.mark.unit
def test_argmax_semantics() -> None:
    x = np.array([[[0.1, 0.9, 0.3], [0.7, 0.2, 0.8]]])  # [1, 2, 3]
    flat = reference_outputs("input a: [1, 2, 3]\nArgMax m { top_k: 2 out_max_val: true }\n", {"a": x})
    np.testing.assert_array_equal(flat["m"], [[[1, 5], [0.9, 0.8]]])
    along = reference_outputs("input a: [1, 2, 3]\nArgMax m { axis: 2 }\n", {"a": x})
    np.testing.assert_array_equal(along["m"], [[[1], [2]]])


@pytest.mark.unit
def test_caffe_batchnorm_divides_statistics_by_the_factor() -> None:
    graph = build_graph(Case("bn", "BatchNorm layer { affine: false caffe_scale_factor: true }", (NCHW,), ()))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    mean, var = np.array([2.0, -4.0, 6.0]), np.array([8.0, 4.0, 2.0])
    for factor, expected_mean, expected_var in [(2.0, mean / 2, var / 2), (0.0, 0 * mean, 0 * var)]:
        weights = {
            "layer.running_mean": mean,
            "layer.running_var": var,
            "layer.scale_factor": np.array([factor]),
        }
        y = run_reference(graph, weights, {"a": x})["layer"]
        expected = (x - expected_mean[:, None, None]) / np.sqrt(expected_var[:, None, None] + 1e-5)
        np.testing.assert_allclose(y, expected)


# ---------------------------------------------------------------- parameter and shape errors

NCHW_INPUT = "input a: [N, 3, 4, 4]\n"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 3, 4, 4]\nDeconvolution d { num_output: 4 kernel_size: 2 group: 2 }",
            "Deconvolution 'd': group 2 does not divide the 3 input channels",
        ),
        (
            "input a: [N, 4, 4, 4]\nDeconvolution d { num_output: 3 kernel_size: 2 group: 2 }",
            "Deconvolution 'd': group 2 does not divide num_output 3",
        ),
        (
            "input a: [N, 3, 4, 4]\nDeconvolution d { num_output: 3 kernel_size: 2 pad: 3 }",
            "Deconvolution 'd' produces a non-positive size",
        ),
        (
            "input a: [N, 4, 4, 4]\nConvolutionDepthwise d { num_output: 6 kernel_size: 3 }",
            "ConvolutionDepthwise 'd': num_output 6 is not a multiple of the 4 input channels",
        ),
        (
            "input a: [N, 4, 4, 4]\nDepthwiseConvolution d { num_output: 4 kernel_size: 3 group: 2 }",
            "DepthwiseConvolution 'd': group 2 differs from the 4 input channels",
        ),
        (
            "input a: [N, 3, 8, 8]\ninput b: [N, 3, 4, 4]\nCrop c { bottom: [a, b] offset: [1, 2, 3] }",
            "Crop 'c': has 3 offset values for the 2 cropped axes 2 to 3; give one, or one per axis",
        ),
        (
            "input a: [N, 3, 8, 8]\ninput b: [N, 3, 4, 4]\nCrop c { bottom: [a, b] offset: 5 }",
            "Crop 'c': cannot crop axis 2 to 4 at offset 5: the first input [2, 3, 8, 8] has 8 there",
        ),
        (
            "input a: [N, 3, 8, 8]\ninput b: [N, 4, 4]\nCrop c { bottom: [a, b] }",
            "Crop 'c': needs inputs of one rank, got 4-D [2, 3, 8, 8] and 3-D [2, 4, 4]",
        ),
        ("input a: [N, 3, 8, 8]\nCrop c { }", "Crop takes exactly 2 inputs, got 1"),
        (
            NCHW_INPUT + "Slice s { slice_point: [2, 1] }",
            "Slice 's': slice_point [2, 1] must be increasing",
        ),
        (
            NCHW_INPUT + "Slice s { slice_point: [1, 3] }",
            "Slice 's': slice_point [1, 3] must lie inside axis 1 of size 3 of [2, 3, 4, 4]",
        ),
        (
            NCHW_INPUT + "Slice s { top: [x, y] }",
            "Slice 's': cannot cut axis 1 of size 3 into 2 equal parts",
        ),
        (
            NCHW_INPUT + "Slice s { slice_point: 1 top: [x, y, z] }",
            "Slice 's': produces exactly 2 outputs, but 3 are named",
        ),
        (
            NCHW_INPUT + "Pooling p { pool: AVE kernel_size: 2 top: [x, y] }",
            "Pooling 'p': produces exactly 1 output, but 2 are named",
        ),
        (
            NCHW_INPUT + "Pooling p { pool: MAX kernel_size: 2 top: [x, y, z] }",
            "Pooling 'p': produces 1 to 2 outputs, but 3 are named",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput m: [N, 3, 4, 5]\nUpsample u { bottom: [a, m] }",
            "Upsample 'u': needs a mask of the input's shape [2, 3, 4, 4], got [2, 3, 4, 5]",
        ),
        (NCHW_INPUT + "Upsample u { scale_h: 2 }", "Upsample 'u': scale_h needs scale_w as well"),
        (NCHW_INPUT + "Upsample u { upsample_w: 8 }", "Upsample 'u': upsample_w needs upsample_h as well"),
        (
            NCHW_INPUT + "Upsample u { scale: 3 pad_out_h: true }",
            "Upsample 'u': pad_out_h needs a scale of 2 on that axis, got 3",
        ),
        (
            NCHW_INPUT + "Upsample u { upsample_h: 8 upsample_w: 8 }",
            "Upsample 'u': upsample_h/upsample_w and pad_out_h/pad_out_w need the mask input",
        ),
        (NCHW_INPUT + "Exp e { base: -2 }", "Exp 'e': base must be a positive number, or -1 for e; got -2"),
        (
            NCHW_INPUT + "Log l { base: 1 }",
            "Log 'l': base must be a positive number other than 1, or -1 for e; got 1",
        ),
        (
            NCHW_INPUT + "ArgMax m { top_k: 49 }",
            "ArgMax 'm': top_k 49 exceeds the 48 values of each image's values in [2, 3, 4, 4]",
        ),
        (
            NCHW_INPUT + "ArgMax m { axis: 1 top_k: 4 }",
            "ArgMax 'm': top_k 4 exceeds the 3 values of axis 1 in [2, 3, 4, 4]",
        ),
        (
            NCHW_INPUT + "ArgMax m { axis: 4 }",
            "ArgMax 'm': axis 4 is out of range for the 4-D input [2, 3, 4, 4] (valid: -4 to 3)",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput b: [4]\nScale s { bottom: [a, b] }",
            "Scale 's': needs a second input equal to the input's dims from axis 1 on; "
            "got [4] for the input [2, 3, 4, 4]",
        ),
        (
            "input a: [N, 3, 4, 4]\ninput b: [3, 4, 4, 1]\nBias s { bottom: [a, b] }",
            "Bias 's': needs a second input equal to the input's dims from axis 1 on",
        ),
        (
            NCHW_INPUT + "Scale s { axis: 2 num_axes: 3 }",
            "Scale 's': axis 2 with num_axes 3 goes past the last axis of the 4-D input [2, 3, 4, 4]",
        ),
        (
            NCHW_INPUT + "Bias s { num_axes: -2 }",
            "Bias parameter 'num_axes': expected an integer >= -1, got integer -2",
        ),
        (
            NCHW_INPUT + "BatchNorm bn { caffe_scale_factor: true }",
            "BatchNorm 'bn': caffe_scale_factor stores Caffe's BatchNorm, which has no affine part; "
            "set affine: false",
        ),
        (
            NCHW_INPUT + "BN bn { bn_mode: TEST }",
            "BN parameter 'bn_mode': expected one of LEARN, INFERENCE, got 'TEST'",
        ),
        (
            "input a: [N, 3, 1, 1]\ninput b: [N, 3, 4, 4]\ninput c: [N, 3, 4, 5]\n"
            "Axpy x { bottom: [a, b, c] }",
            "Axpy 'x': needs its 2nd and 3rd inputs (x and y in a·x + y) of one shape",
        ),
        (
            "input a: [N, 4, 1, 1]\ninput b: [N, 3, 4, 4]\nAxpy x { bottom: [a, b, b] }",
            "Axpy 'x': needs a first input of one factor per image and channel, [2, 3] or [2, 3, 1, 1]",
        ),
        (
            "input a: [N]\nPReLU p {}",
            "PReLU 'p': expects an input with a channel axis (N, C, ...), got 1-D [2]",
        ),
        (NCHW_INPUT + "PSROIPooling r {}", "unknown layer type or template 'PSROIPooling'"),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)


@pytest.mark.unit
def test_upsample_reference_refuses_a_mask_outside_the_output() -> None:
    graph = elaborate(
        SourceFile(
            "mask.net", "input a: [1, 1, 2, 2]\ninput m: [1, 1, 2, 2]\nUpsample u { bottom: [a, m] }\n"
        )
    )
    inputs = {"a": np.ones((1, 1, 2, 2)), "m": np.full((1, 1, 2, 2), 16.0)}
    with pytest.raises(ValueError, match="mask index 16 is outside the 4x4 output"):
        run_reference(graph, {}, inputs)


@pytest.mark.unit
def test_types_are_float32() -> None:
    graph = build_graph(Case("dtype", "ArgMax layer { top_k: 2 }", (NCHW,), ()))
    assert infer_shapes(graph, {"N": BATCH})["layer"] == TensorType((2, 1, 2, 1), "float32")
