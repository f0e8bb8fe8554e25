"""Per-layer tests of the dense-prediction and special layers (issue 7): AffineGrid, GridSample,
ROIPooling, ROIAlign, Resize (netspec/layers/spatial.py), LocallyConnected (local.py), NetVLAD
(vlad.py) and Deconvolution's output_padding.

Shapes and hand-computed counts; each configuration compiled to ONNX, checked, shape-inferred
and run in onnxruntime against the layer's float64 reference (1e-5 relative) with static and
dynamic batch, on inputs from netspec.verify.sample_inputs (valid random boxes for the RoI
layers); the references themselves against values worked out here independently (published
torch conventions, hand examples, other layers); error messages.

Each case is one layer named ``layer`` reading inputs ``a``, ``b``; ``N`` is bound to 2. The
harness is tests/test_layers.py's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_layers import (  # the shared harness and its Case
    Case,
    assert_shape_and_counts,
    build_graph,
    case_params,
    compile_error,
    reference_of,
    run_case,
)

from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.infer import infer_shapes
from netspec.typed import bind
from netspec.verify import relative_errors, sample_inputs

THETA = ("N", 2, 3)
X = ("N", 3, 6, 5)
GRID = ("N", 4, 7, 2)
FEATURES = ("N", 4, 12, 10)
ROIS = (9, 5)

CASES = [
    # Ho = ⌊(7 + 2 − 3)/2⌋ + 1 = 4, Wo = ⌊(6 + 2 − 2)/2⌋ + 1 = 4; patch 3·3·2 = 18;
    # params 16·18·4 + 4·16 = 1216; MACs 2·4·16·18 = 2304; FLOPs 2·2304 + 2·4·16 = 4736
    Case(
        "local",
        "LocallyConnected layer { num_output: 4  kernel_size: [3, 2]  stride: 2  pad: 1 }",
        (("N", 3, 7, 6),),
        (2, 4, 4, 4),
        params=1216,
        macs=2304,
        flops=4736,
    ),
    # Ho = 3; patch 2·9 = 18; params 9·18·3 = 486; MACs 2·3·9·18 = 972
    Case(
        "local-no-bias",
        "LocallyConnected layer { num_output: 3  kernel_size: 3  bias_term: false }",
        (("N", 2, 5, 5),),
        (2, 3, 3, 3),
        params=486,
        macs=972,
        flops=1944,
    ),
    # params 5·6 + 5 + 5·6 = 65; MACs 2·(2·6·12)·5 = 1440; FLOPs 2·1440 + 4·24·5 (bias, softmax)
    # + 2·60 (centroids) + 3·144 (input normalisation) + 6·60 (two normalisations) = 4272
    Case(
        "netvlad",
        "NetVLAD layer { num_clusters: 5 }",
        (("N", 6, 3, 4),),
        (2, 30),
        params=65,
        macs=1440,
        flops=4272,
    ),
    Case(
        "netvlad-raw-input",
        "NetVLAD layer { num_clusters: 5  normalize_input: false }",
        (("N", 6, 3, 4),),
        (2, 30),
        params=65,
        macs=1440,
        flops=4272 - 432,
    ),
    # the grid [2, 5, 7, 2]: MACs 140·3 = 420 (θ's 2×3 per point); FLOPs 840 (+ 12 adds)
    Case(
        "affine-grid", "AffineGrid layer { output_size: [5, 7] }", (THETA,), (2, 5, 7, 2), macs=420, flops=840
    ),
    Case(
        "affine-grid-corners",
        "AffineGrid layer { output_size: [5, 7]  align_corners: true }",
        (THETA,),
        (2, 5, 7, 2),
        macs=420,
        flops=840,
    ),
    Case(
        "affine-grid-relative",
        "AffineGrid layer { output_size: [5, 7]  relative_to_identity: true }",
        (THETA,),
        (2, 5, 7, 2),
        macs=420,
        flops=852,
    ),
    # 7 FLOPs per bilinear output element: 7·(2·3·4·7) = 1176
    Case("grid-sample", "GridSample layer { bottom: [a, b] }", (X, GRID), (2, 3, 4, 7), flops=1176),
    Case(
        "grid-sample-corners-border",
        "GridSample layer { bottom: [a, b]  align_corners: true  padding_mode: BORDER }",
        (X, GRID),
        (2, 3, 4, 7),
        flops=1176,
    ),
    Case(
        "grid-sample-nearest", "GridSample layer { bottom: [a, b]  mode: NEAREST }", (X, GRID), (2, 3, 4, 7)
    ),
    # [9, 4, 3, 2] = 216 outputs, each counted over a ⌈12/3⌉·⌈10/2⌉ = 20 bin: 4320
    Case(
        "roi-pool",
        "ROIPooling layer { bottom: [a, b]  pooled_h: 3  pooled_w: 2  spatial_scale: 0.25 }",
        (FEATURES, ROIS),
        (9, 4, 3, 2),
        flops=4320,
    ),
    Case(
        "roi-pool-scale-1",
        "ROIPooling layer { bottom: [a, b]  pooled_h: 2  pooled_w: 2 }",
        (("N", 3, 6, 6), (4, 5)),
        (4, 3, 2, 2),
        flops=48 * 9,
    ),
    # 216 outputs · 8 FLOPs per sample · 4 samples (adaptive counted as 2×2) = 6912
    Case(
        "roi-align",
        "ROIAlign layer { bottom: [a, b]  pooled_h: 3  pooled_w: 2  spatial_scale: 0.25 }",
        (FEATURES, ROIS),
        (9, 4, 3, 2),
        flops=6912,
    ),
    # 3×3 samples: 216·8·9 = 15552
    Case(
        "roi-align-unaligned",
        "ROIAlign layer { bottom: [a, b]  pooled_h: 3  pooled_w: 2  spatial_scale: 0.25  "
        "sampling_ratio: 3  aligned: false }",
        (FEATURES, ROIS),
        (9, 4, 3, 2),
        flops=15552,
    ),
    Case("resize-nearest", "Resize layer { scale: 2 }", (X,), (2, 3, 12, 10)),
    Case("resize-nearest-size", "Resize layer { size: [7, 9] }", (X,), (2, 3, 7, 9)),
    Case("resize-nearest-down", "Resize layer { size: [4, 3] }", (X,), (2, 3, 4, 3)),
    # 7 per output element: 7·(2·3·12·15) = 7560
    Case(
        "resize-bilinear", "Resize layer { scale: [2, 3]  mode: BILINEAR }", (X,), (2, 3, 12, 15), flops=7560
    ),
    Case(
        "resize-bilinear-corners",
        "Resize layer { size: [7, 9]  mode: BILINEAR  align_corners: true }",
        (X,),
        (2, 3, 7, 9),
        flops=2646,
    ),
    Case(
        "resize-bilinear-down", "Resize layer { size: [4, 1]  mode: BILINEAR }", (X,), (2, 3, 4, 1), flops=168
    ),
    # Ho = 2·4 + 2 + 1 − 2 + 1 = 10, Wo = 2·3 + 3 − 2 + 1 = 8; params 4·6·9 + 6 = 222;
    # MACs 2·4·20·6·9 = 8640; FLOPs 2·8640 + 2·6·80 = 18240
    Case(
        "deconv-output-padding",
        "Deconvolution layer { num_output: 6  kernel_size: 3  stride: 2  pad: 1  output_padding: 1 }",
        (("N", 4, 5, 4),),
        (2, 6, 10, 8),
        params=222,
        macs=8640,
        flops=18240,
    ),
    # groups 2: params 4·3·3·2 = 72; Ho = 2·4 + 3 − 2 + 1 = 10, Wo = 3·3 + 2 + 2 = 13;
    # MACs 2·4·20·3·6 = 2880
    Case(
        "deconv-output-padding-grouped",
        "Deconvolution layer { num_output: 6  kernel_size: [3, 2]  stride: [2, 3]  pad: [1, 0]  "
        "output_padding: [1, 2]  group: 2  bias_term: false }",
        (("N", 4, 5, 4),),
        (2, 6, 10, 13),
        params=72,
        macs=2 * 4 * 20 * 3 * 6,
        flops=2 * 2 * 4 * 20 * 3 * 6,
    ),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.ort
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case, dynamic: bool) -> None:
    run_case(case, dynamic=dynamic, opset=21)


# ---------------------------------------------------------------- the references, independently


IDENTITY = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])


@pytest.mark.unit
def test_affine_grid_identity_follows_torch() -> None:
    # torch.nn.functional.affine_grid(identity, (1, 1, 2, 2)): without align_corners the pixel
    # centres at ±0.5, with it the corners at ±1.
    grid = reference_of("AffineGrid", [IDENTITY], output_size=[2, 2])
    np.testing.assert_allclose(grid[0, :, :, 0], [[-0.5, 0.5], [-0.5, 0.5]])
    np.testing.assert_allclose(grid[0, :, :, 1], [[-0.5, -0.5], [0.5, 0.5]])
    corners = reference_of("AffineGrid", [IDENTITY], output_size=[2, 2], align_corners=True)
    np.testing.assert_allclose(corners[0, :, :, 0], [[-1.0, 1.0], [-1.0, 1.0]])
    # relative_to_identity: zero θ is the identity.
    relative = reference_of(
        "AffineGrid", [np.zeros((1, 2, 3))], output_size=[2, 2], relative_to_identity=True
    )
    np.testing.assert_array_equal(relative, grid)


@pytest.mark.unit
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_of_the_identity_grid_is_the_image(align_corners: bool) -> None:
    image = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    grid = reference_of(
        "AffineGrid", [np.repeat(IDENTITY, 2, axis=0)], output_size=[5, 6], align_corners=align_corners
    )
    for mode in ("BILINEAR", "NEAREST"):
        sampled = reference_of("GridSample", [image, grid], mode=mode, align_corners=align_corners)
        np.testing.assert_allclose(sampled, image, atol=1e-12)


@pytest.mark.unit
def test_grid_sample_shift_by_one_pixel() -> None:
    # x' = x + 2/W moves the sampling point one pixel right: column j reads column j + 1; past
    # the last column ZEROS reads 0 and BORDER repeats the edge.
    image = np.random.default_rng(1).standard_normal((1, 2, 4, 5))
    theta = np.array([[[1.0, 0.0, 2.0 / 5], [0.0, 1.0, 0.0]]])
    grid = reference_of("AffineGrid", [theta], output_size=[4, 5])
    zeros = reference_of("GridSample", [image, grid])
    np.testing.assert_allclose(zeros[..., :4], image[..., 1:], atol=1e-12)
    np.testing.assert_allclose(zeros[..., 4], 0.0, atol=1e-12)
    border = reference_of("GridSample", [image, grid], padding_mode="BORDER")
    np.testing.assert_allclose(border[..., 4], image[..., 4], atol=1e-12)
    # Half a pixel: the mean of neighbours.
    half = reference_of(
        "GridSample", [image, reference_of("AffineGrid", [theta / [1, 1, 2]], output_size=[4, 5])]
    )
    np.testing.assert_allclose(half[..., :4], (image[..., :4] + image[..., 1:]) / 2, atol=1e-12)


RAMP = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)  # value 4·row + column


@pytest.mark.unit
def test_roi_pooling_follows_caffe_bins_and_rounding() -> None:
    def pool(roi: list[float], size: int, scale: float = 1.0) -> np.ndarray:
        rois = np.array([roi], np.float32)
        return reference_of("ROIPooling", [RAMP, rois], pooled_h=size, pooled_w=size, spatial_scale=scale)[
            0, 0
        ]

    # The whole map in 2×2 bins: rows/columns [0, 2) and [2, 4); each bin's max is its
    # bottom-right value.
    np.testing.assert_array_equal(pool([0, 0, 0, 3, 3], 2), [[5, 7], [13, 15]])
    # A 2×2 box (size end − start + 1) in 2×2 bins of one pixel each.
    np.testing.assert_array_equal(pool([0, 1, 1, 2, 2], 2), [[5, 6], [9, 10]])
    # Corners scaled by 0.5 round half away from zero (C's round): 0.5 → 1, 2.5 → 3, so the box
    # is rows/columns 1..3 and its max 15 (round-half-even would give 0..2 and 10).
    np.testing.assert_array_equal(pool([0, 1, 1, 5, 5], 1, 0.5), [[15]])
    # A box 3 wide in 2 bins: [⌊0·1.5⌋, ⌈1.5⌉) = [0, 2) and [⌊1.5⌋, ⌈3⌉) = [1, 3): overlapping.
    np.testing.assert_array_equal(pool([0, 0, 0, 2, 2], 2), [[5, 6], [9, 10]])
    # Entirely outside the map: every bin empty, 0.
    np.testing.assert_array_equal(pool([0, 10, 10, 12, 12], 2), [[0, 0], [0, 0]])


@pytest.mark.unit
@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_of_a_linear_image_is_the_bin_centre(aligned: bool) -> None:
    # Bilinear sampling of v = 10·y + x is exact, so each bin's average is v at the bin's
    # centre: x1·s − offset + (j + 0.5)·w/pw for columns (offset 0.5 when aligned).
    ys, xs = np.meshgrid(np.arange(8.0), np.arange(9.0), indexing="ij")
    image = (10 * ys + xs)[None, None]
    x1, y1, x2, y2, scale = 2.0, 3.0, 11.0, 10.0, 0.5
    rois = np.array([[0, x1, y1, x2, y2]], np.float32)
    pooled = reference_of(
        "ROIAlign",
        [image, rois],
        pooled_h=2,
        pooled_w=3,
        spatial_scale=scale,
        sampling_ratio=2,
        aligned=aligned,
    )[0, 0]
    offset = 0.5 if aligned else 0.0
    rows = y1 * scale - offset + (np.arange(2) + 0.5) * (y2 - y1) * scale / 2
    cols = x1 * scale - offset + (np.arange(3) + 0.5) * (x2 - x1) * scale / 3
    np.testing.assert_allclose(pooled, 10 * rows[:, None] + cols[None, :], atol=1e-6)


@pytest.mark.unit
def test_resize_follows_torch_interpolate() -> None:
    line = np.array([0.0, 1.0]).reshape(1, 1, 1, 2)
    # F.interpolate([0, 1], scale_factor=2, mode="linear"): align_corners=False gives
    # [0, 0.25, 0.75, 1], True gives [0, 1/3, 2/3, 1]; nearest repeats.
    half_pixel = reference_of("Resize", [line], size=[1, 4], mode="BILINEAR")
    np.testing.assert_allclose(half_pixel[0, 0, 0], [0.0, 0.25, 0.75, 1.0])
    corners = reference_of("Resize", [line], size=[1, 4], mode="BILINEAR", align_corners=True)
    np.testing.assert_allclose(corners[0, 0, 0], [0.0, 1 / 3, 2 / 3, 1.0])
    image = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    nearest = reference_of("Resize", [image], scale=[2, 3])
    np.testing.assert_array_equal(nearest, image.repeat(2, axis=2).repeat(3, axis=3))
    # Downsampling by 2 with half-pixel centres averages each pair.
    down = reference_of("Resize", [image[..., :4]], size=[4, 2], mode="BILINEAR")
    np.testing.assert_allclose(down, (image[..., 0:4:2] + image[..., 1:4:2]) / 2)


@pytest.mark.unit
def test_locally_connected_with_shared_filters_is_a_convolution() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    kernel = rng.standard_normal((4, 3, 3, 2))
    bias = rng.standard_normal(4)
    conv_params = {"num_output": 4, "kernel_size": (3, 2), "stride": 2, "pad": 1}
    expected = reference_of("Convolution", [x], {"weight": kernel, "bias": bias}, **conv_params)
    positions = expected.shape[2] * expected.shape[3]
    # Every position's [C·kh·kw, Cout] filter is the kernel, flattened (channel, row, column).
    weight = np.repeat(kernel.reshape(4, -1).T[None], positions, axis=0)
    local_bias = np.broadcast_to(bias[:, None, None], expected.shape[1:])
    got = reference_of("LocallyConnected", [x], {"weight": weight, "bias": local_bias}, **conv_params)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.unit
def test_netvlad_matches_its_matrix_form_and_is_normalised() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 3, 4))
    weights = {
        "weight": rng.standard_normal((5, 6, 1, 1)),
        "bias": rng.standard_normal(5),
        "centroids": rng.standard_normal((5, 6)),
    }
    got = reference_of("NetVLAD", [x], weights, num_clusters=5)
    for n in range(2):
        descriptors = x[n].reshape(6, -1).T
        descriptors = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
        scores = descriptors @ weights["weight"][:, :, 0, 0].T + weights["bias"]
        assignment = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)  # [H·W, K]
        vlad = assignment.T @ descriptors - assignment.sum(axis=0)[:, None] * weights["centroids"]
        vlad = vlad / np.linalg.norm(vlad, axis=1, keepdims=True)
        expected = vlad.ravel() / np.linalg.norm(vlad)
        np.testing.assert_allclose(got[n], expected, rtol=1e-12)
        # Intra-normalised blocks, then the whole: each of the K blocks has norm 1/√K.
        np.testing.assert_allclose(np.linalg.norm(got[n].reshape(5, 6), axis=1), 1 / np.sqrt(5))


@pytest.mark.unit
def test_roi_inputs_are_valid_boxes() -> None:
    roi_pool = next(case for case in CASES if case.id == "roi-pool")  # [N, 4, 12, 10], 9 boxes, 1/4
    graph = build_graph(roi_pool)
    rois = sample_inputs(bind(graph, 3), seed=0)["b"]
    assert rois.shape == (9, 5) and rois.dtype == np.float32
    assert set(rois[:, 0]) <= {0.0, 1.0, 2.0}
    assert (rois[:, 1] <= rois[:, 3]).all() and (rois[:, 2] <= rois[:, 4]).all()
    assert rois[:, 1:].min() >= 0 and rois[:, [1, 3]].max() < 40 and rois[:, [2, 4]].max() < 48


# ---------------------------------------------------------------- errors


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 6]\nAffineGrid layer { output_size: 4 }",
            "AffineGrid 'layer': expects θ shaped [N, 2, 3], got [2, 6]",
        ),
        (
            "input a: [N, 3, 6, 5]\ninput b: [N, 4, 7, 3]\nGridSample layer { bottom: [a, b] }",
            "GridSample 'layer': expects a grid shaped [N, Ho, Wo, 2] as its second input, got [2, 4, 7, 3]",
        ),
        (
            "input a: [N, 3, 6, 5]\ninput b: [4, 4]\nROIPooling layer { bottom: [a, b] pooled_h: 2 "
            "pooled_w: 2 }",
            "ROIPooling 'layer': expects regions shaped [R, 5] as its second input, got [4, 4]",
        ),
        (
            "input a: [N, 3, 6, 5]\nROIAlign layer { pooled_h: 2 pooled_w: 2 }",
            "ROIAlign takes exactly 2 inputs, got 1",
        ),
        (
            "input a: [N, 3, 6, 5]\nResize layer { scale: 2  size: 3 }",
            "Resize 'layer': needs exactly one of 'scale' and 'size'",
        ),
        (
            "input a: [N, 3, 6, 5]\nResize layer { scale: 2  align_corners: true }",
            "Resize 'layer': align_corners applies to BILINEAR only",
        ),
        (
            "input a: [N, 3, 6, 5]\nLocallyConnected layer { num_output: 2  kernel_size: 7 }",
            "LocallyConnected 'layer': kernel [7, 7] does not fit the input [2, 3, 6, 5] (output 0x-1)",
        ),
        (
            "input a: [N, 3, 6, 5]\nNetVLAD layer { num_clusters: 0 }",
            "NetVLAD parameter 'num_clusters': expected a positive integer, got integer 0",
        ),
        (
            "input a: [N, 3, 6, 5]\nDeconvolution layer { num_output: 2  kernel_size: 3  stride: 2  "
            "output_padding: 2 }",
            "Deconvolution 'layer': output_padding [2, 2] must be smaller than the stride [2, 2]",
        ),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)


@pytest.mark.unit
def test_opset_limits_are_diagnostics() -> None:
    from netspec.compiler import compile_graph

    graph = elaborate(SourceFile("resize.net", "input a: [N, 3, 6, 5]\nResize layer { size: [7, 9] }\n"))
    with pytest.raises(NetspecError) as caught:
        compile_graph(bind(graph, batch=1), opset=17)
    assert "resize.net:2:1: error: Resize 'layer': a size needs opset 18 or later" in str(caught.value)


CAFFE_FAST_RCNN = """name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 32 dim: 48 }
input: "rois"
input_shape { dim: 4 dim: 5 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "roi_pool" type: "ROIPooling" bottom: "conv1" bottom: "rois" top: "pool"
  roi_pooling_param { pooled_w: 3 pooled_h: 2 spatial_scale: 0.5 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
"""


@pytest.mark.ort
def test_caffe_roi_pooling_layer_reads_as_is(tmp_path: Any) -> None:
    # Fast R-CNN's Caffe type and roi_pooling_param fields are the layer's own names.
    from netspec.compiler import load_graph

    path = tmp_path / "fast_rcnn.prototxt"
    path.write_text(CAFFE_FAST_RCNN, encoding="utf-8")
    graph = load_graph(path)
    layer = next(node.layer for node in graph.nodes if node.name == "roi_pool")
    assert (layer.params.pooled_h, layer.params.pooled_w, layer.params.spatial_scale) == (2, 3, 0.5)
    assert infer_shapes(graph, {"N": 2})["pool"].dims == (2, 8, 2, 3)
    assert max(relative_errors(graph, batch=2, seed=2).values()) <= 1e-5
