"""The systems of the CNN surveys that issue 16 added to the zoo, against figures derived
without netspec: each architecture is walked here the way its reference implementation builds
it, tallying parameters, BatchNorm buffers, MACs (convolution, transposed convolution and fully
connected layers) and the stored arrays' names in registration order (tests/test_zoo_modern.py's
Tally). The specs must agree with the tally exactly and the tally with the published parameter
counts; each model, run in onnxruntime at a small input, matches netspec's float64 reference.
Faster R-CNN end to end is checked the same way against its layer table, and its box stages on
hand-built boxes in tests/test_layers_survey.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_zoo_modern import Grid, Tally, analysis, max_pool

from netspec.compiler import load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.typed import bind
from netspec.verify import relative_errors
from netspec.weights import initialize_weights

ZOO = Path(__file__).resolve().parent.parent / "zoo"


# ---------------------------------------------------------------- the architectures


def resnet_cifar(depth: int, survival_last: float = 1.0) -> Callable[[Tally], None]:
    """akamaster/pytorch_resnet_cifar10's resnet{depth}: option-A shortcuts hold nothing."""

    def build(t: Tally) -> None:
        n = (depth - 2) // 6
        x = t.bn("bn1", t.conv("conv1", (3, 32, 32), 16, 3, pad=1))
        for stage, planes in enumerate([16, 32, 64]):
            for i in range(n):
                prefix = f"layer{stage + 1}.{i}"
                stride = 2 if i == 0 and stage > 0 else 1
                x = t.bn(f"{prefix}.bn1", t.conv(f"{prefix}.conv1", x, planes, 3, stride, 1))
                x = t.bn(f"{prefix}.bn2", t.conv(f"{prefix}.conv2", x, planes, 3, 1, 1))
        t.linear("linear", x[0], 10)

    return build


def damp_residual_branches(spec: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``weights`` with the last BatchNorm γ of every CIFAR ResNet branch scaled by 0.1.

    NOTE: at random weights each residual block about doubles the activations' variance, and
    2^600 overflows float32 in ResNet-1202; trained deep ResNets keep that γ small (Goyal et al.
    2017 start it at zero).
    """
    if "_cifar" not in spec and "stochastic_depth" not in spec:
        return weights
    return {name: value * 0.1 if name.endswith("bn2.weight") else value for name, value in weights.items()}


def deconv(t: Tally, name: str, x: Grid, out: int, kernel: int, stride: int, pad: int) -> Grid:
    """torch's ConvTranspose2d without bias: weight [Cin, Cout, k, k], one kernel per input pixel."""
    channels, height, width = x
    weights = channels * out * kernel * kernel
    t.keys.append(f"{name}.weight")
    t.params += weights
    t.macs += weights * height * width
    return (out, (height - 1) * stride - 2 * pad + kernel, (width - 1) * stride - 2 * pad + kernel)


def dcgan_generator(t: Tally) -> None:
    """The PyTorch DCGAN tutorial's Generator (nz 100, ngf 64)."""
    x: Grid = (100, 1, 1)
    for i, out in enumerate([512, 256, 128, 64]):
        x = t.bn(
            f"main.{3 * i + 1}", deconv(t, f"main.{3 * i}", x, out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1)
        )
    assert deconv(t, "main.12", x, 3, 4, 2, 1) == (3, 64, 64)


def dcgan_discriminator(t: Tally) -> None:
    """The PyTorch DCGAN tutorial's Discriminator (ndf 64)."""
    x = t.conv("main.0", (3, 64, 64), 64, 4, 2, 1)
    for i, out in enumerate([128, 256, 512]):
        x = t.bn(f"main.{3 * i + 3}", t.conv(f"main.{3 * i + 2}", x, out, 4, 2, 1))
    assert t.conv("main.11", x, 1, 4) == (1, 1, 1)


def fcn(stride: int) -> Callable[[Tally], None]:
    """voc-fcn{stride}s from shelhamer/fcn.berkeleyvision.org's net.py, at 500×500."""

    def build(t: Tally) -> None:
        x: Grid = (3, 500, 500)
        for stage, (width, convs) in enumerate(zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3], strict=True)):
            for i in range(convs):
                name = f"conv{stage + 1}_{i + 1}"
                x = t.conv(name, x, width, 3, pad=100 if name == "conv1_1" else 1, bias=True)
            x = max_pool(x, 2, 2, ceil=True)
            if stage == 3:
                pool4 = x
        x = t.conv("fc7", t.conv("fc6", x, 4096, 7, bias=True), 4096, bias=True)
        x = t.conv("score_fr", x, 21, bias=True)
        if stride == 32:
            deconv(t, "upscore", x, 21, 64, 32, 0)
            return
        up = deconv(t, "upscore2", x, 21, 4, 2, 0)
        t.conv("score_pool4", pool4, 21, bias=True)
        deconv(t, "upscore16", up, 21, 32, 16, 0)

    return build


def caffe_crop_offsets(stride: int) -> list[int]:
    """The Crop offsets of voc-fcn{stride}s as Caffe's coord_map.py derives them: every layer maps
    input coordinates to output ones by y = a·x + b (convolution and pooling: a = 1/s,
    b = (p − (k − 1)/2)/s; deconvolution: a = s, b = (k − 1)/2 − p), composed from the data."""

    def compose(
        maps: list[tuple[int, int, int]], transposed: tuple[bool, ...] = ()
    ) -> tuple[Fraction, Fraction]:
        a, b = Fraction(1), Fraction(0)
        for index, (kernel, s, pad) in enumerate(maps):
            if index < len(transposed) and transposed[index]:
                a, b = a * s, b * s + Fraction(kernel - 1, 2) - pad
            else:
                a, b = a / s, (b + pad - Fraction(kernel - 1, 2)) / s
        return a, b

    pool4 = [(3, 1, 100), (3, 1, 1)]  # conv1_1, conv1_2 (kernel, stride, pad)
    for convs in [2, 3, 3]:
        pool4 += [(2, 2, 0), *[(3, 1, 1)] * convs]
    pool4.append((2, 2, 0))
    # conv5_1 … conv5_3, pool5, fc6, fc7, score_fr
    scores = [*pool4, *[(3, 1, 1)] * 3, (2, 2, 0), (7, 1, 0), (1, 1, 0), (1, 1, 0)]
    flags = (False,) * len(scores)
    if stride == 32:
        a, b = compose([*scores, (64, 32, 0)], (*flags, True))
        assert a == 1
        return [int(b)]
    a2, b2 = compose([*scores, (4, 2, 0)], (*flags, True))
    a4, b4 = compose(pool4)
    assert a2 == a4
    a, b = compose([*scores, (4, 2, 0), (32, 16, 0)], (*flags, True, True))
    assert a == 1
    return [int(b4 - b2), int(b)]


def cat(*grids: Grid) -> Grid:
    return (sum(g[0] for g in grids), grids[0][1], grids[0][2])


def basic(
    t: Tally,
    name: str,
    x: Grid,
    out: int,
    kernel: int | tuple[int, int] = 1,
    stride: int = 1,
    pad: int | tuple[int, int] = 0,
) -> Grid:
    """Cadene's (and torchvision's) BasicConv2d: conv without bias, BatchNorm, ReLU."""
    return t.bn(f"{name}.bn", t.conv(f"{name}.conv", x, out, kernel, stride, pad))


Layer = tuple[int, int | tuple[int, int], int, int | tuple[int, int]]  # out, kernel, stride, pad
ROW7, COL7, ROW3, COL3 = ((1, 7), (0, 3)), ((7, 1), (3, 0)), ((1, 3), (0, 1)), ((3, 1), (1, 0))


def seq(t: Tally, name: str, x: Grid, layers: list[Layer]) -> Grid:
    """An nn.Sequential of BasicConv2d modules ``name.0``, ``name.1`` …"""
    for index, (out, kernel, stride, pad) in enumerate(layers):
        x = basic(t, f"{name}.{index}", x, out, kernel, stride, pad)
    return x


def factorised(out: int, shape: tuple[tuple[int, int], tuple[int, int]]) -> Layer:
    return (out, shape[0], 1, shape[1])


def inception_v4(t: Tally) -> None:
    """Cadene's pretrainedmodels InceptionV4, 1000 classes: its modules in registration order."""
    x = seq(t, "features", (3, 299, 299), [(32, 3, 2, 0), (32, 3, 1, 0), (64, 3, 1, 1)])
    x = cat(max_pool(x, 3, 2), basic(t, "features.3.conv", x, 96, 3, 2))
    b0 = seq(t, "features.4.branch0", x, [(64, 1, 1, 0), (96, 3, 1, 0)])
    b1 = seq(
        t, "features.4.branch1", x, [(64, 1, 1, 0), factorised(64, ROW7), factorised(64, COL7), (96, 3, 1, 0)]
    )
    x = cat(b0, b1)
    x = cat(basic(t, "features.5.conv", x, 192, 3, 2), max_pool(x, 3, 2))
    for i in range(6, 10):  # Inception-A
        n = f"features.{i}"
        b0 = basic(t, f"{n}.branch0", x, 96)
        b1 = seq(t, f"{n}.branch1", x, [(64, 1, 1, 0), (96, 3, 1, 1)])
        b2 = seq(t, f"{n}.branch2", x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)])
        x = cat(b0, b1, b2, basic(t, f"{n}.branch3.1", x, 96))
    x = reduction_a(t, "features.10", x, 192, 224, 256, 384)
    for i in range(11, 18):  # Inception-B
        n = f"features.{i}"
        b0 = basic(t, f"{n}.branch0", x, 384)
        b1 = seq(t, f"{n}.branch1", x, [(192, 1, 1, 0), factorised(224, ROW7), factorised(256, COL7)])
        b2 = seq(
            t,
            f"{n}.branch2",
            x,
            [
                (192, 1, 1, 0),
                factorised(192, COL7),
                factorised(224, ROW7),
                factorised(224, COL7),
                factorised(256, ROW7),
            ],
        )
        x = cat(b0, b1, b2, basic(t, f"{n}.branch3.1", x, 128))
    b0 = seq(t, "features.18.branch0", x, [(192, 1, 1, 0), (192, 3, 2, 0)])
    b1 = seq(
        t,
        "features.18.branch1",
        x,
        [(256, 1, 1, 0), factorised(256, ROW7), factorised(320, COL7), (320, 3, 2, 0)],
    )
    x = cat(b0, b1, max_pool(x, 3, 2))
    for i in range(19, 22):  # Inception-C
        n = f"features.{i}"
        b0 = basic(t, f"{n}.branch0", x, 256)
        b1 = basic(t, f"{n}.branch1_0", x, 384)
        b1 = cat(
            basic(t, f"{n}.branch1_1a", b1, *factorised(256, ROW3)),
            basic(t, f"{n}.branch1_1b", b1, *factorised(256, COL3)),
        )
        b2 = basic(t, f"{n}.branch2_1", basic(t, f"{n}.branch2_0", x, 384), *factorised(448, COL3))
        b2 = basic(t, f"{n}.branch2_2", b2, *factorised(512, ROW3))
        b2 = cat(
            basic(t, f"{n}.branch2_3a", b2, *factorised(256, ROW3)),
            basic(t, f"{n}.branch2_3b", b2, *factorised(256, COL3)),
        )
        x = cat(b0, b1, b2, basic(t, f"{n}.branch3.1", x, 256))
    assert x == (1536, 8, 8)
    t.linear("last_linear", 1536, 1000)


def reduction_a(t: Tally, n: str, x: Grid, k: int, l_: int, m: int, width: int) -> Grid:
    b0 = basic(t, f"{n}.branch0", x, width, 3, 2)
    b1 = seq(t, f"{n}.branch1", x, [(k, 1, 1, 0), (l_, 3, 1, 1), (m, 3, 2, 0)])
    return cat(b0, b1, max_pool(x, 3, 2))


def inception_resnet_v2(t: Tally) -> None:
    """Cadene's pretrainedmodels InceptionResNetV2, 1000 classes: its modules in registration order."""
    x = basic(t, "conv2d_1a", (3, 299, 299), 32, 3, 2)
    x = max_pool(basic(t, "conv2d_2b", basic(t, "conv2d_2a", x, 32, 3), 64, 3, pad=1), 3, 2)
    x = max_pool(basic(t, "conv2d_4a", basic(t, "conv2d_3b", x, 80), 192, 3), 3, 2)
    b0 = basic(t, "mixed_5b.branch0", x, 96)
    b1 = seq(t, "mixed_5b.branch1", x, [(48, 1, 1, 0), (64, 5, 1, 2)])
    b2 = seq(t, "mixed_5b.branch2", x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)])
    x = cat(b0, b1, b2, basic(t, "mixed_5b.branch3.1", x, 64))

    def residual(n: str, x: Grid, branches: list[list[Layer]]) -> Grid:
        # branch0 is one BasicConv2d, the others Sequentials; then the 1×1 conv2d with bias.
        grids = [basic(t, f"{n}.branch0", x, *branches[0][0])]
        grids += [seq(t, f"{n}.branch{b}", x, layers) for b, layers in enumerate(branches[1:], start=1)]
        t.conv(f"{n}.conv2d", cat(*grids), x[0], bias=True)
        return x

    for i in range(10):  # Block35
        x = residual(
            f"repeat.{i}",
            x,
            [[(32, 1, 1, 0)], [(32, 1, 1, 0), (32, 3, 1, 1)], [(32, 1, 1, 0), (48, 3, 1, 1), (64, 3, 1, 1)]],
        )
    x = reduction_a(t, "mixed_6a", x, 256, 256, 384, 384)
    for i in range(20):  # Block17
        x = residual(
            f"repeat_1.{i}",
            x,
            [[(192, 1, 1, 0)], [(128, 1, 1, 0), factorised(160, ROW7), factorised(192, COL7)]],
        )
    b0 = seq(t, "mixed_7a.branch0", x, [(256, 1, 1, 0), (384, 3, 2, 0)])
    b1 = seq(t, "mixed_7a.branch1", x, [(256, 1, 1, 0), (288, 3, 2, 0)])
    b2 = seq(t, "mixed_7a.branch2", x, [(256, 1, 1, 0), (288, 3, 1, 1), (320, 3, 2, 0)])
    x = cat(b0, b1, b2, max_pool(x, 3, 2))
    for n in [*(f"repeat_2.{i}" for i in range(9)), "block8"]:  # Block8
        x = residual(n, x, [[(192, 1, 1, 0)], [(192, 1, 1, 0), factorised(224, ROW3), factorised(256, COL3)]])
    x = basic(t, "conv2d_7b", x, 1536)
    assert x == (1536, 8, 8)
    t.linear("last_linear", 1536, 1000)


BN_INCEPTION = [  # Ioffe & Szegedy 2015, Figure 5: #1×1, #3×3 reduce, #3×3, double reduce, double, pool proj
    ("3a", 64, 64, 64, 64, 96, 32),
    ("3b", 64, 64, 96, 64, 96, 64),
    ("3c", 0, 128, 160, 64, 96, 0),
    ("4a", 224, 64, 96, 96, 128, 128),
    ("4b", 192, 96, 128, 96, 128, 128),
    ("4c", 160, 128, 160, 128, 160, 128),
    ("4d", 96, 128, 192, 160, 192, 128),
    ("4e", 0, 128, 192, 192, 256, 0),
    ("5a", 352, 192, 320, 160, 224, 128),
    ("5b", 352, 192, 320, 192, 224, 128),
]


def bn_inception(t: Tally) -> None:
    """Cadene's pretrainedmodels BNInception: Caffe names, biased convolutions, BatchNorm."""

    def unit(name: str, x: Grid, out: int, kernel: int = 1, stride: int = 1) -> Grid:
        return t.bn(f"{name}_bn", t.conv(name, x, out, kernel, stride, kernel // 2, bias=True))

    x = max_pool(unit("conv1_7x7_s2", (3, 224, 224), 64, 7, 2), 3, 2, ceil=True)
    x = unit("conv2_3x3", unit("conv2_3x3_reduce", x, 64), 192, 3)
    x = max_pool(x, 3, 2, ceil=True)
    for module, c1, c3r, c3, d3r, d3, proj in BN_INCEPTION:
        n, stride = f"inception_{module}", 2 if proj == 0 else 1
        branches = [unit(f"{n}_1x1", x, c1)] if c1 else []
        branches.append(unit(f"{n}_3x3", unit(f"{n}_3x3_reduce", x, c3r), c3, 3, stride))
        d = unit(f"{n}_double_3x3_1", unit(f"{n}_double_3x3_reduce", x, d3r), d3, 3)
        branches.append(unit(f"{n}_double_3x3_2", d, d3, 3, stride))
        branches.append(unit(f"{n}_pool_proj", x, proj) if proj else max_pool(x, 3, 2, ceil=True))
        x = cat(*branches)
    assert x == (1024, 7, 7)
    t.linear("last_linear", 1024, 1000)


def xception(t: Tally) -> None:
    """Cadene's pretrainedmodels Xception: each Block's skip first, then its rep Sequential."""

    def separable(name: str, x: Grid, out: int) -> Grid:
        return t.conv(f"{name}.pointwise", t.conv(f"{name}.conv1", x, x[0], 3, pad=1, groups=x[0]), out)

    def block(
        name: str, x: Grid, out: int, reps: int, stride: int, relu_first: bool = True, grow: bool = True
    ) -> Grid:
        if stride != 1 or out != x[0]:
            t.bn(f"{name}.skipbn", t.conv(f"{name}.skip", x, out, 1, stride))
        index, y = (0 if relu_first else -1), x
        widths = [out] * reps if grow else [x[0]] * (reps - 1) + [out]
        for width in widths:  # ReLU, SeparableConv2d, BatchNorm
            y = t.bn(f"{name}.rep.{index + 2}", separable(f"{name}.rep.{index + 1}", y, width))
            index += 3
        return max_pool(y, 3, stride, 1) if stride != 1 else y

    x = t.bn("bn1", t.conv("conv1", (3, 299, 299), 32, 3, 2))
    x = t.bn("bn2", t.conv("conv2", x, 64, 3))
    x = block("block1", x, 128, 2, 2, relu_first=False)
    x = block("block3", block("block2", x, 256, 2, 2), 728, 2, 2)
    for i in range(4, 12):
        x = block(f"block{i}", x, 728, 3, 1)
    x = block("block12", x, 1024, 2, 2, grow=False)
    x = t.bn("bn4", separable("conv4", t.bn("bn3", separable("conv3", x, 1536)), 2048))
    assert x == (2048, 10, 10)
    t.linear("last_linear", 2048, 1000)


@dataclass(frozen=True)
class Published:
    """A model's published parameter count, its tally and the input of the numeric check."""

    spec: str
    build: Callable[[Tally], None]
    params: int
    small_input: dict[str, tuple[int, ...]]
    source: str


CIFAR = {"data": (1, 3, 32, 32)}
DCGAN = "PyTorch's DCGAN tutorial (Radford et al. 2015): Generator and Discriminator"
FCN = "computed from shelhamer/fcn.berkeleyvision.org voc-fcn16s/32s net.py (as for FCN-8s)"
CADENE = "Cadene/pretrained-models.pytorch (TF-Slim ports), 1000 classes"
AKAMASTER = "akamaster/pytorch_resnet_cifar10 README table (He et al. 2016 Table 6)"

MODELS = [
    Published("resnet20_cifar.net", resnet_cifar(20), 269_722, CIFAR, AKAMASTER),
    Published("resnet32_cifar.net", resnet_cifar(32), 464_154, CIFAR, AKAMASTER),
    Published("resnet44_cifar.net", resnet_cifar(44), 658_586, CIFAR, AKAMASTER),
    Published("resnet56_cifar.net", resnet_cifar(56), 853_018, CIFAR, AKAMASTER),
    Published("resnet110_cifar.net", resnet_cifar(110), 1_727_962, CIFAR, AKAMASTER),
    # 8×8 keeps the float64 reference of 1,202 layers cheap; the counts are at 32×32.
    Published("resnet1202_cifar.net", resnet_cifar(1202), 19_421_274, {"data": (1, 3, 8, 8)}, AKAMASTER),
    Published("dcgan_generator.net", dcgan_generator, 3_576_704, {"data": (2, 100, 1, 1)}, DCGAN),
    Published("dcgan_discriminator.net", dcgan_discriminator, 2_765_568, {"data": (2, 3, 64, 64)}, DCGAN),
    # FCN's padding of 100 keeps it large whatever the input (tests/test_zoo_dense.py).
    Published("fcn32s.net", fcn(32), 136_152_917, {"data": (1, 3, 4, 4)}, FCN),
    Published("fcn16s.net", fcn(16), 134_815_994, {"data": (1, 3, 4, 4)}, FCN),
    Published("bn_inception.net", bn_inception, 11_295_240, {"data": (1, 3, 64, 64)}, CADENE),
    Published("xception.net", xception, 22_855_952, {"data": (1, 3, 75, 75)}, CADENE),
    Published("inception_v4.net", inception_v4, 42_679_816, {"data": (1, 3, 75, 75)}, CADENE),
    Published("inception_resnet_v2.net", inception_resnet_v2, 55_843_464, {"data": (1, 3, 75, 75)}, CADENE),
    Published(
        "resnet110_stochastic_depth.net",
        resnet_cifar(110, 0.5),
        1_727_962,
        CIFAR,
        "Huang et al. 2016: ResNet-110's parameters (the test-time scaling holds none)",
    ),
]
IDS = [m.spec for m in MODELS]


@functools.cache
def tally(spec: str) -> Tally:
    model = next(m for m in MODELS if m.spec == spec)
    result = Tally()
    model.build(result)
    return result


@pytest.mark.zoo
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_tally_reproduces_published_figures(model: Published) -> None:
    assert tally(model.spec).params == model.params, model.source


@pytest.mark.zoo
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_spec_counts_and_names_equal_the_tally(model: Published) -> None:
    result = analysis(model.spec)
    totals, counted = result.counts.totals, tally(model.spec)
    assert (totals.params, totals.buffers, totals.macs) == (counted.params, counted.buffers, counted.macs)
    names = [a.name for arrays in result.arrays.values() for a in arrays]
    assert names == counted.keys


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_onnx_matches_reference_at_a_small_input(model: Published) -> None:
    graph = load_graph(ZOO / model.spec)
    typed = bind(graph, 1, model.small_input)
    weights = damp_residual_branches(model.spec, initialize_weights(typed, seed=3))
    errors = relative_errors(graph, input_shapes=model.small_input, seed=3, weights=weights)
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.zoo
def test_stochastic_depth_scales_each_branch_by_its_survival_probability() -> None:
    # Huang et al. Eq. 4: p_l = 1 − l/L · (1 − 0.5) over L = 54 blocks, l counted from 1.
    graph = analysis("resnet110_stochastic_depth.net").graph
    adds = [node for node in graph.nodes if node.type == "Eltwise"]
    assert len(adds) == 54
    for block, node in enumerate(adds, start=1):
        assert node.layer.params.coeff == pytest.approx((1 - block / 54 * 0.5, 1.0))
    assert all(
        node.layer.params.coeff is None
        for node in analysis("resnet110_cifar.net").graph.nodes
        if node.type == "Eltwise"
    )


@pytest.mark.zoo
def test_option_a_shortcuts_subsample_and_zero_pad() -> None:
    # Where a stage starts, the shortcut is x[:, :, ::2, ::2] padded by planes/4 on each side.
    result = analysis("resnet20_cifar.net")
    assert result.types["layer2.0.shortcut.subsample"].dims == (1, 16, 16, 16)
    assert result.types["layer2.0.shortcut"].dims == (1, 32, 16, 16)
    assert result.types["layer3.0.shortcut"].dims == (1, 64, 8, 8)


@pytest.mark.zoo
@pytest.mark.ort
def test_dcgan_generator_draws_images_in_tanh_range() -> None:
    import onnxruntime as ort

    from netspec.compiler import compile_graph

    graph = load_graph(ZOO / "dcgan_generator.net")
    typed = bind(graph, 4)
    model = compile_graph(typed, initialize_weights(typed, seed=0))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    codes = np.random.default_rng(0).standard_normal((4, 100, 1, 1)).astype(np.float32)
    (images,) = session.run(None, {"data": codes})
    assert images.shape == (4, 3, 64, 64)
    assert np.abs(images).max() <= 1.0 and images.std() > 0.1


@pytest.mark.zoo
@pytest.mark.parametrize(
    ("spec", "stride", "crops"),
    [("fcn32s.net", 32, ["score"]), ("fcn16s.net", 16, ["score_pool4c", "score"])],
)
def test_fcn_crops_are_caffes_coord_map_offsets(spec: str, stride: int, crops: list[str]) -> None:
    graph = analysis(spec).graph
    assert [graph.node(name).layer.params.offset[0] for name in crops] == caffe_crop_offsets(stride)
    assert analysis(spec).types["score"].dims == (1, 21, 500, 500)
    frozen = 21 * 21 * (64 * 64 if stride == 32 else 4 * 4 + 32 * 32)
    assert analysis(spec).counts.totals.frozen == frozen


INCEPTION_LINE = [
    "googlenet.net",
    "bn_inception.net",
    "inception_v3.net",
    "inception_v4.net",
    "inception_resnet_v2.net",
    "xception.net",
]


@pytest.mark.zoo
def test_readme_shows_the_inception_line_as_compare_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    assert main(["compare", *(str(ZOO / spec) for spec in INCEPTION_LINE)]) == 0
    table = capsys.readouterr().out.splitlines()[-(len(INCEPTION_LINE) + 2) :]
    readme = (ZOO.parent / "README.md").read_text(encoding="utf-8")
    assert "\n".join(table) in readme


# ---------------------------------------------------------------- Faster R-CNN end to end


def faster_rcnn_vgg16(t: Tally) -> None:
    """py-faster-rcnn's VGG16 faster_rcnn_end2end test net at 600×800 with 300 proposals."""
    x: Grid = (3, 600, 800)
    for stage, (width, convs) in enumerate(zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3], strict=True)):
        for i in range(convs):
            x = t.conv(f"conv{stage + 1}_{i + 1}", x, width, 3, pad=1, bias=True)
        if stage < 4:
            x = max_pool(x, 2, 2, ceil=True)
    assert x == (512, 38, 50)
    x = t.conv("rpn_conv_3x3", x, 512, 3, pad=1, bias=True)
    t.conv("rpn_cls_score", x, 18, bias=True)
    t.conv("rpn_bbox_pred", x, 36, bias=True)
    rois = 300
    for name, features, out in (
        ("fc6", 512 * 7 * 7, 4096),
        ("fc7", 4096, 4096),
        ("cls_score", 4096, 21),
        ("bbox_pred", 4096, 84),
    ):
        t.linear(name, features, out)
        t.macs += (rois - 1) * features * out  # one row per proposal


@pytest.mark.zoo
def test_faster_rcnn_counts_equal_the_layer_table() -> None:
    counted = Tally()
    faster_rcnn_vgg16(counted)
    assert counted.params == 137_078_239
    result = analysis("faster_rcnn_vgg16.net")
    totals = result.counts.totals
    assert (totals.params, totals.buffers, totals.macs) == (counted.params, 0, counted.macs)
    names = [a.name for arrays in result.arrays.values() for a in arrays]
    assert names == counted.keys
    assert [result.types[t].dims for t in result.graph.outputs] == [(100, 4), (100,), (100,)]
    assert result.types["proposal"].dims == (300, 5)


def faster_rcnn_with(proposals: int) -> Graph:
    """The end-to-end spec keeping ``proposals`` regions instead of 300 (the head's fully
    connected layers run once per region: 300 make the float64 reference slow)."""
    path = ZOO / "faster_rcnn_vgg16.net"
    text = path.read_text(encoding="utf-8")
    assert text.count("post_nms_top_n: 300") == 1
    return elaborate(
        SourceFile(str(path), text.replace("post_nms_top_n: 300", f"post_nms_top_n: {proposals}"))
    )


@pytest.mark.zoo
@pytest.mark.ort
def test_faster_rcnn_matches_reference_end_to_end() -> None:
    # A 64×96 image: a 4×6 feature map, 216 anchors, all ranked; 24 proposals.
    errors = relative_errors(faster_rcnn_with(24), input_shapes={"data": (1, 3, 64, 96)}, seed=1)
    assert max(errors.values()) <= 1e-4, errors
