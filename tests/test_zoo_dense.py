"""The dense-prediction and special-layer zoo models (issue 7): FCN-8s, U-Net, SegNet,
DeepLab-LargeFOV, the MNIST spatial transformer, DeepFace, NetVLAD and the Faster R-CNN head.

Their counts are derived here from the papers' layer tables with plain arithmetic, independently
of netspec's layer rules, and must equal netspec's; FCN-8s must equal the real Caffe file it
follows, layer for layer. Every model is compiled at a small input and its onnxruntime output
checked against the float64 reference executor (1e-4 relative).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

from netspec.compiler import load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Dim, Graph
from netspec.typed import TypedGraph, bind
from netspec.verify import relative_errors

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "zoo"
CAFFE = Path(__file__).resolve().parent / "data" / "caffe"


@functools.cache
def analysis(spec: str) -> TypedGraph:
    return bind(load_graph(ZOO / spec), batch=1)


# ---------------------------------------------------------------- counts from the layer tables


@dataclass
class Tally:
    """Params and MACs summed layer by layer (batch 1)."""

    params: int = 0
    macs: int = 0

    def conv(
        self, cin: int, cout: int, k: int, out_h: int, out_w: int | None = None, bias: bool = True
    ) -> None:
        """A k×k convolution producing out_h × out_w (square when out_w is None)."""
        out_w = out_h if out_w is None else out_w
        self.params += cout * cin * k * k + (cout if bias else 0)
        self.macs += out_h * out_w * cout * cin * k * k

    def upconv(
        self, cin: int, cout: int, k: int, in_h: int, in_w: int | None = None, bias: bool = True
    ) -> None:
        """A k×k transposed convolution of an in_h × in_w map: every input pixel spreads its
        k×k kernel over cout channels."""
        in_w = in_h if in_w is None else in_w
        self.params += cin * cout * k * k + (cout if bias else 0)
        self.macs += in_h * in_w * cin * cout * k * k

    def local(self, cin: int, cout: int, k: int, out: int) -> None:
        """A locally connected layer (own filter and bias per position) with a square output."""
        self.params += out * out * (cout * cin * k * k + cout)
        self.macs += out * out * cout * cin * k * k

    def fc(self, cin: int, cout: int, rows: int = 1) -> None:
        self.params += cin * cout + cout
        self.macs += rows * cin * cout


VGG_WIDTHS = [64, 128, 256, 512, 512]
VGG_CONVS = [2, 2, 3, 3, 3]


def vgg16_body(tally: Tally, sizes: list[tuple[int, int]], bn: bool = False) -> None:
    """VGG-16's thirteen 3×3 convolutions, stage s at ``sizes[s]`` (sizes kept by padding);
    SegNet's BN adds a slope and a bias per channel after each."""
    cin = 3
    for width, convs, (h, w) in zip(VGG_WIDTHS, VGG_CONVS, sizes, strict=True):
        for _ in range(convs):
            tally.conv(cin, width, 3, h, w)
            tally.params += 2 * width if bn else 0
            cin = width


def caffe_pool(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """Caffe's pooling output size (rounding up), written out here for the derivations."""
    return -(-(size + 2 * pad - kernel) // stride) + 1


def vgg_pooled_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """The input size of each of VGG's five stages under 2×2/2 pooling with Caffe's rounding."""
    sizes = [(height, width)]
    for _ in range(4):
        h, w = sizes[-1]
        sizes.append((caffe_pool(h, 2, 2), caffe_pool(w, 2, 2)))
    return sizes


def deeplab_largefov() -> Tally:
    # 321 → pool1..3 (3×3, stride 2, pad 1): 161, 81, 41; pool4 and pool5 keep 41 (stride 1).
    sizes = [321]
    for _ in range(3):
        sizes.append(caffe_pool(sizes[-1], 3, 2, 1))
    sizes.append(caffe_pool(sizes[-1], 3, 1, 1))
    assert sizes == [321, 161, 81, 41, 41]
    tally = Tally()
    vgg16_body(tally, [(s, s) for s in sizes])
    tally.conv(512, 1024, 3, 41)  # fc6, dilation 12 and padding 12 keep 41
    tally.conv(1024, 1024, 1, 41)  # fc7
    tally.conv(1024, 21, 1, 41)  # fc8_voc12
    return tally


def segnet() -> Tally:
    sizes = vgg_pooled_sizes(360, 480)
    assert sizes == [(360, 480), (180, 240), (90, 120), (45, 60), (23, 30)]
    tally = Tally()
    vgg16_body(tally, sizes, bn=True)
    # Decoder, stage 5 down to 1, at the encoder's sizes: (cin, cout) per convolution.
    decoder = [
        [(512, 512), (512, 512), (512, 512)],
        [(512, 512), (512, 512), (512, 256)],
        [(256, 256), (256, 256), (256, 128)],
        [(128, 128), (128, 64)],
        [(64, 64)],
    ]
    for (h, w), convs in zip(sizes[::-1], decoder, strict=True):
        for cin, cout in convs:
            tally.conv(cin, cout, 3, h, w)
            tally.params += 2 * cout  # BN
    tally.conv(64, 11, 3, 360, 480)  # conv1_1_D, the classifier: no BN
    return tally


def unet() -> Tally:
    tally = Tally()
    widths = [64, 128, 256, 512, 1024]
    size, cin, skips = 572, 1, []
    for level, width in enumerate(widths):
        tally.conv(cin, width, 3, size - 2)
        tally.conv(width, width, 3, size - 4)
        size, cin = size - 4, width
        skips.append(size)
        if level < 4:
            size //= 2
    assert skips == [568, 280, 136, 64, 28]
    for width in reversed(widths[:-1]):
        tally.upconv(cin, width, 2, size)
        size *= 2
        tally.conv(2 * width, width, 3, size - 2)  # the crop and the up-convolution, joined
        tally.conv(width, width, 3, size - 4)
        size, cin = size - 4, width
    assert size == 388
    tally.conv(64, 2, 1, 388)
    return tally


def deepface() -> Tally:
    # Taigman et al. 2014, Fig. 2: 152 → C1 142 → M2 71 → C3 63 → L4 55 → L5 25 → L6 21.
    tally = Tally()
    tally.conv(3, 32, 11, 142)
    assert caffe_pool(142, 3, 2) == 71
    tally.conv(32, 16, 9, 63)
    tally.local(16, 16, 9, 55)
    tally.local(16, 16, 7, 25)
    tally.local(16, 16, 5, 21)
    tally.fc(21 * 21 * 16, 4096)
    tally.fc(4096, 4030)
    return tally


def netvlad_vgg16() -> Tally:
    tally = Tally()
    vgg16_body(tally, vgg_pooled_sizes(224, 224))
    clusters, dims, positions = 64, 512, 14 * 14
    tally.params += clusters * dims + clusters + clusters * dims  # assignment conv, centroids
    tally.macs += 2 * positions * clusters * dims  # assignment and aggregation
    return tally


def faster_rcnn_vgg16_head() -> Tally:
    sizes = vgg_pooled_sizes(600, 800)
    assert sizes[-1] == (38, 50)
    tally = Tally()
    vgg16_body(tally, sizes)
    rois = 300
    tally.fc(512 * 7 * 7, 4096, rois)
    tally.fc(4096, 4096, rois)
    tally.fc(4096, 21, rois)
    tally.fc(4096, 84, rois)
    return tally


def stn_mnist() -> Tally:
    tally = Tally()
    tally.conv(1, 8, 7, 22)  # localisation: 28 → 22 → pool 11
    tally.conv(8, 10, 5, 7)  # 11 → 7 → pool 3
    tally.fc(10 * 3 * 3, 32)
    tally.fc(32, 6)
    tally.macs += 28 * 28 * 2 * 3  # the affine grid: θ (2×3) times each pixel's (x, y, 1)
    tally.conv(1, 10, 5, 24)  # classifier: 28 → 24 → pool 12
    tally.conv(10, 20, 5, 8)  # 12 → 8 → pool 4
    tally.fc(20 * 4 * 4, 50)
    tally.fc(50, 10)
    return tally


DERIVED = {
    "deeplab_largefov.net": deeplab_largefov,
    "segnet.net": segnet,
    "unet.net": unet,
    "deepface.net": deepface,
    "netvlad_vgg16.net": netvlad_vgg16,
    "faster_rcnn_vgg16_head.net": faster_rcnn_vgg16_head,
    "stn_mnist.net": stn_mnist,
}


@pytest.mark.zoo
@pytest.mark.parametrize("spec", DERIVED)
def test_counts_equal_the_layer_table_derivation(spec: str) -> None:
    expected = DERIVED[spec]()
    totals = analysis(spec).counts.totals
    assert (totals.params, totals.buffers, totals.macs) == (expected.params, 0, expected.macs)


@pytest.mark.zoo
def test_published_and_stated_figures() -> None:
    # The figures the spec headers state, against the derivations above.
    assert deepface().params == 118_923_774  # the paper: "more than 120 million"
    # SegNet paper, Table 6: 29.5M (rounded; 29,449,355 is within 0.2% of it)
    assert abs(segnet().params - 29.5e6) < 0.002 * 29.5e6
    assert netvlad_vgg16().params == 14_780_288
    assert faster_rcnn_vgg16_head().params == 134_690_729
    assert stn_mnist().params == 27_360
    assert deeplab_largefov().params == 20_505_429


@pytest.mark.zoo
def test_fcn8s_is_the_caffe_model_layer_for_layer() -> None:
    spec = analysis("fcn8s.net")
    caffe = bind(load_graph(CAFFE / "fcn8s_voc.prototxt"), batch=1)
    assert (spec.counts.totals.params, spec.counts.totals.macs) == (134_489_759, 181_529_034_048)
    assert spec.counts.totals.params == caffe.counts.totals.params
    assert spec.counts.totals.frozen == caffe.counts.totals.frozen == 21 * 21 * (4 * 4 + 4 * 4 + 16 * 16)
    assert spec.counts.totals.macs == caffe.counts.totals.macs
    # Every stored array under the Caffe layer's name with the same shape, and every layer with
    # a weight producing the same shape.
    spec_layers = {r.name: r for r in spec.counts.layers if r.params}
    caffe_layers = {r.name: r for r in caffe.counts.layers if r.params}
    assert spec_layers.keys() == caffe_layers.keys()
    for name in spec_layers:
        assert spec.types[name].dims == caffe.types[name].dims, name
        assert spec_layers[name].macs == caffe_layers[name].macs, name


@pytest.mark.zoo
def test_segmentation_outputs_cover_the_input() -> None:
    assert analysis("fcn8s.net").types["score"].dims == (1, 21, 500, 500)
    assert analysis("segnet.net").types["conv1_1_D"].dims == (1, 11, 360, 480)
    assert analysis("unet.net").types["classifier"].dims == (1, 2, 388, 388)
    assert analysis("deeplab_largefov.net").types["fc8_voc12"].dims == (1, 21, 41, 41)


# ---------------------------------------------------------------- numerics at small inputs

# Inputs small enough for the float64 reference, but large enough that every layer has work:
# FCN's padding of 100 keeps it large whatever the input; U-Net's 188 is the smallest valid
# size above 4×4 output; SegNet's 40×52 gives odd sizes (5 → 3 → 2) to unpool.
SMALL_INPUTS: dict[str, dict[str, tuple[Dim, ...]] | None] = {
    "fcn8s.net": {"data": (1, 3, 32, 32)},
    "deeplab_largefov.net": {"data": (1, 3, 65, 65)},
    "unet.net": {"data": (1, 1, 188, 188)},
    "stn_mnist.net": None,
    "deepface.net": None,
    "netvlad_vgg16.net": {"data": (1, 3, 64, 64)},
    "faster_rcnn_vgg16_head.net": {"data": (1, 3, 64, 96), "rois": (6, 5)},
}


def segnet_at(height: int, width: int) -> Graph:
    """SegNet's unpooling sizes follow its ``image`` constant: the spec with another one."""
    path = ZOO / "segnet.net"
    text = path.read_text(encoding="utf-8")
    assert text.count("let image = [360, 480]") == 1
    return elaborate(
        SourceFile(str(path), text.replace("let image = [360, 480]", f"let image = [{height}, {width}]"))
    )


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("spec", SMALL_INPUTS)
def test_onnx_matches_reference_at_a_small_input(spec: str) -> None:
    errors = relative_errors(load_graph(ZOO / spec), batch=1, input_shapes=SMALL_INPUTS[spec], seed=1)
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.zoo
@pytest.mark.ort
def test_segnet_matches_reference_at_a_small_input() -> None:
    errors = relative_errors(segnet_at(40, 52), batch=2, seed=1)
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.zoo
def test_stn_starts_at_the_identity_transform() -> None:
    # fc_loc.2 starts at zero and the grid adds the identity: the transformer passes the
    # image through unchanged (bilinear sampling at the pixel centres, align_corners false).
    import numpy as np

    from netspec.reference import run_reference
    from netspec.weights import initialize_weights

    result = analysis("stn_mnist.net")
    weights = initialize_weights(result, seed=0)
    assert not weights["fc_loc.2.weight"].any() and not weights["fc_loc.2.bias"].any()
    image = np.random.default_rng(0).standard_normal((1, 1, 28, 28))
    values = run_reference(result.graph, weights, {"data": image}, keep="all")
    np.testing.assert_allclose(values["transformed"], image, rtol=0, atol=1e-12)
