"""The efficient and modern classification networks of the zoo (issue 7) against figures derived
without netspec: each architecture is walked here the way its reference constructor builds it
(torchvision's, Howard et al.'s, Hu et al.'s), tallying parameters, BatchNorm buffers, MACs
(convolutions and fully connected layers, per torchvision's GFLOPS convention), the output shape
and the state_dict keys in registration order. The specs must agree with the tally exactly, the
tally with the published parameter counts exactly and with torchvision's GFLOPS column to its
two decimals; and each model, run in onnxruntime at a small input, matches netspec's float64
reference executor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netspec.compiler import load_graph
from netspec.receptive import receptive_fields
from netspec.typed import TypedGraph, bind
from netspec.verify import relative_errors

ZOO = Path(__file__).resolve().parent.parent / "zoo"

Grid = tuple[int, int, int]  # channels, height, width of one image


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


@dataclass
class Tally:
    """Counts of one model, accumulated layer by layer as its constructor registers modules."""

    keys: list[str] = field(default_factory=list)
    params: int = 0
    buffers: int = 0
    macs: int = 0

    def conv(
        self,
        name: str,
        x: Grid,
        out: int,
        kernel: int | tuple[int, int] = 1,
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = False,
    ) -> Grid:
        (kh, kw), (ph, pw) = pair(kernel), pair(pad)
        channels, height, width = x
        height, width = (height + 2 * ph - kh) // stride + 1, (width + 2 * pw - kw) // stride + 1
        weights = out * (channels // groups) * kh * kw
        self.keys.append(f"{name}.weight")
        self.params += weights + (out if bias else 0)
        if bias:
            self.keys.append(f"{name}.bias")
        self.macs += weights * height * width
        return (out, height, width)

    def bn(self, name: str, x: Grid) -> Grid:
        self.keys += [f"{name}.{a}" for a in ("weight", "bias", "running_mean", "running_var")]
        self.params += 2 * x[0]
        self.buffers += 2 * x[0]
        return x

    def conv_bn(self, prefix: str, x: Grid, out: int, kernel: int | tuple[int, int] = 1, **conv: int) -> Grid:
        """torchvision's Conv2dNormActivation: ``prefix.0`` the conv, ``prefix.1`` the BatchNorm."""
        return self.bn(f"{prefix}.1", self.conv(f"{prefix}.0", x, out, kernel, **conv))

    def linear(self, name: str, features: int, out: int) -> None:
        self.keys += [f"{name}.weight", f"{name}.bias"]
        self.params += features * out + out
        self.macs += features * out

    def squeeze_excitation(self, prefix: str, x: Grid, squeeze: int) -> Grid:
        pooled = (x[0], 1, 1)
        self.conv(f"{prefix}.fc2", self.conv(f"{prefix}.fc1", pooled, squeeze, bias=True), x[0], bias=True)
        return x


def max_pool(x: Grid, kernel: int, stride: int, pad: int = 0, ceil: bool = False) -> Grid:
    def size(n: int) -> int:
        span = n + 2 * pad - kernel
        out = (-(-span // stride) if ceil else span // stride) + 1
        return out - 1 if ceil and (out - 1) * stride >= n + pad else out

    return (x[0], size(x[1]), size(x[2]))


# ---------------------------------------------------------------- the architectures


def mobilenet_v1(t: Tally) -> None:
    x = t.bn("conv1_bn", t.conv("conv1", (3, 224, 224), 32, 3, 2, 1))
    widths = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    widths += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (out, stride) in enumerate(widths, start=1):
        x = t.bn(f"conv_dw_{i}_bn", t.conv(f"conv_dw_{i}", x, x[0], 3, stride, 1, groups=x[0]))
        x = t.bn(f"conv_pw_{i}_bn", t.conv(f"conv_pw_{i}", x, out))
    t.linear("fc", x[0], 1000)


def mobilenet_v2(t: Tally) -> None:
    x = t.conv_bn("features.0", (3, 224, 224), 32, 3, stride=2, pad=1)
    index = 1
    for ratio, out, repeats, first_stride in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(repeats):
            prefix, hidden, layer = f"features.{index}.conv", x[0] * ratio, 0
            if ratio != 1:
                x, layer = t.conv_bn(f"{prefix}.0", x, hidden), 1
            x = t.conv_bn(
                f"{prefix}.{layer}", x, hidden, 3, stride=first_stride if i == 0 else 1, pad=1, groups=hidden
            )
            x = t.bn(f"{prefix}.{layer + 2}", t.conv(f"{prefix}.{layer + 1}", x, out))
            index += 1
    x = t.conv_bn("features.18", x, 1280)
    t.linear("classifier.1", x[0], 1000)


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: the nearest multiple, at least ``divisor``, and not more than
    10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v3(blocks: list[tuple[int, int, int, bool, int]], last_channel: int) -> Callable[[Tally], None]:
    """torchvision's MobileNetV3 for rows (kernel, expanded, out, se, stride)."""

    def build(t: Tally) -> None:
        x = t.conv_bn("features.0", (3, 224, 224), 16, 3, stride=2, pad=1)
        for index, (kernel, expanded, out, se, stride) in enumerate(blocks, start=1):
            prefix, layer = f"features.{index}.block", 0
            if expanded != x[0]:
                x, layer = t.conv_bn(f"{prefix}.0", x, expanded), 1
            x = t.conv_bn(
                f"{prefix}.{layer}", x, expanded, kernel, stride=stride, pad=kernel // 2, groups=expanded
            )
            if se:
                layer += 1
                x = t.squeeze_excitation(f"{prefix}.{layer}", x, make_divisible(expanded // 4))
            x = t.conv_bn(f"{prefix}.{layer + 1}", x, out)
        x = t.conv_bn(f"features.{len(blocks) + 1}", x, 6 * x[0])
        t.linear("classifier.0", x[0], last_channel)
        t.linear("classifier.3", last_channel, 1000)

    return build


def efficientnet_b0(t: Tally) -> None:
    x = t.conv_bn("features.0", (3, 224, 224), 32, 3, stride=2, pad=1)
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3)]
    stages += [(6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    for stage, (ratio, kernel, stride, out, layers) in enumerate(stages, start=1):
        for i in range(layers):
            prefix, inputs, layer = f"features.{stage}.{i}.block", x[0], 0
            expanded = inputs * ratio
            if ratio != 1:
                x, layer = t.conv_bn(f"{prefix}.0", x, expanded), 1
            x = t.conv_bn(
                f"{prefix}.{layer}",
                x,
                expanded,
                kernel,
                stride=stride if i == 0 else 1,
                pad=kernel // 2,
                groups=expanded,
            )
            x = t.squeeze_excitation(f"{prefix}.{layer + 1}", x, max(1, inputs // 4))
            x = t.conv_bn(f"{prefix}.{layer + 2}", x, out)
    x = t.conv_bn("features.8", x, 1280)
    t.linear("classifier.1", x[0], 1000)


def shufflenet_v2_x1_0(t: Tally) -> None:
    x = t.bn("conv1.1", t.conv("conv1.0", (3, 224, 224), 24, 3, 2, 1))
    x = max_pool(x, 3, 2, 1)
    for stage, (repeats, out) in enumerate([(4, 116), (8, 232), (4, 464)], start=2):
        half = out // 2
        for i in range(repeats):
            prefix, stride = f"stage{stage}.{i}", 2 if i == 0 else 1
            if stride == 2:
                b1 = t.bn(f"{prefix}.branch1.1", t.conv(f"{prefix}.branch1.0", x, x[0], 3, 2, 1, groups=x[0]))
                t.bn(f"{prefix}.branch1.3", t.conv(f"{prefix}.branch1.2", b1, half))
                b2 = x
            else:
                b2 = (half, x[1], x[2])
            b2 = t.bn(f"{prefix}.branch2.1", t.conv(f"{prefix}.branch2.0", b2, half))
            b2 = t.bn(
                f"{prefix}.branch2.4", t.conv(f"{prefix}.branch2.3", b2, half, 3, stride, 1, groups=half)
            )
            b2 = t.bn(f"{prefix}.branch2.6", t.conv(f"{prefix}.branch2.5", b2, half))
            x = (out, b2[1], b2[2])
    x = t.bn("conv5.1", t.conv("conv5.0", x, 1024))
    t.linear("fc", x[0], 1000)


def squeezenet(version: str) -> Callable[[Tally], None]:
    def fire(t: Tally, index: int, x: Grid, squeeze: int, expand: int) -> Grid:
        s = t.conv(f"features.{index}.squeeze", x, squeeze, bias=True)
        t.conv(f"features.{index}.expand1x1", s, expand, bias=True)
        e3 = t.conv(f"features.{index}.expand3x3", s, expand, 3, pad=1, bias=True)
        return (2 * expand, e3[1], e3[2])

    def build(t: Tally) -> None:
        if version == "1_0":
            x = t.conv("features.0", (3, 224, 224), 96, 7, 2, bias=True)
            plan = [
                "M",
                (16, 64),
                (16, 64),
                (32, 128),
                "M",
                (32, 128),
                (48, 192),
                (48, 192),
                (64, 256),
                "M",
                (64, 256),
            ]
        else:
            x = t.conv("features.0", (3, 224, 224), 64, 3, 2, bias=True)
            plan = [
                "M",
                (16, 64),
                (16, 64),
                "M",
                (32, 128),
                (32, 128),
                "M",
                (48, 192),
                (48, 192),
                (64, 256),
                (64, 256),
            ]
        for index, item in enumerate(plan, start=2):
            x = max_pool(x, 3, 2, ceil=True) if item == "M" else fire(t, index, x, *item)
        t.conv("classifier.1", x, 1000, bias=True)

    return build


def resnet50_family(
    groups: int = 1, width_per_group: int = 64, se: bool = False, stride_on_1x1: bool = False
) -> Callable[[Tally], None]:
    """torchvision's ResNet-50 Bottleneck family; with ``se`` and ``stride_on_1x1``, SENet's."""

    def build(t: Tally) -> None:
        x = max_pool(t.bn("bn1", t.conv("conv1", (3, 224, 224), 64, 7, 2, 3)), 3, 2, 1)
        for stage, blocks in enumerate([3, 4, 6, 3]):
            planes = 64 * 2**stage
            width, out = planes * width_per_group // 64 * groups, planes * 4
            for i in range(blocks):
                prefix, stride = f"layer{stage + 1}.{i}", 2 if i == 0 and stage > 0 else 1
                y = t.bn(
                    f"{prefix}.bn1", t.conv(f"{prefix}.conv1", x, width, 1, stride if stride_on_1x1 else 1)
                )
                y = t.conv(f"{prefix}.conv2", y, width, 3, 1 if stride_on_1x1 else stride, 1, groups=groups)
                y = t.bn(f"{prefix}.bn3", t.conv(f"{prefix}.conv3", t.bn(f"{prefix}.bn2", y), out))
                if se:
                    t.squeeze_excitation(f"{prefix}.se_module", y, out // 16)
                if stride != 1 or x[0] != out:
                    t.bn(f"{prefix}.downsample.1", t.conv(f"{prefix}.downsample.0", x, out, 1, stride))
                x = y
        t.linear("fc", x[0], 1000)

    return build


def inception_v3(t: Tally) -> None:
    def basic(
        name: str,
        x: Grid,
        out: int,
        kernel: int | tuple[int, int] = 1,
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
    ) -> Grid:
        return t.bn(f"{name}.bn", t.conv(f"{name}.conv", x, out, kernel, stride, pad))

    def concat(*grids: Grid) -> Grid:
        return (sum(g[0] for g in grids), grids[0][1], grids[0][2])

    def block_a(n: str, x: Grid, pool_features: int) -> Grid:
        b1 = basic(f"{n}.branch1x1", x, 64)
        b5 = basic(f"{n}.branch5x5_2", basic(f"{n}.branch5x5_1", x, 48), 64, 5, pad=2)
        b3 = basic(f"{n}.branch3x3dbl_1", x, 64)
        b3 = basic(f"{n}.branch3x3dbl_3", basic(f"{n}.branch3x3dbl_2", b3, 96, 3, pad=1), 96, 3, pad=1)
        return concat(b1, b5, b3, basic(f"{n}.branch_pool", x, pool_features))

    def block_b(n: str, x: Grid) -> Grid:
        b3 = basic(f"{n}.branch3x3", x, 384, 3, 2)
        d = basic(f"{n}.branch3x3dbl_2", basic(f"{n}.branch3x3dbl_1", x, 64), 96, 3, pad=1)
        return concat(b3, basic(f"{n}.branch3x3dbl_3", d, 96, 3, 2), max_pool(x, 3, 2))

    def block_c(n: str, x: Grid, c7: int) -> Grid:
        b1 = basic(f"{n}.branch1x1", x, 192)
        b7 = basic(f"{n}.branch7x7_1", x, c7)
        b7 = basic(
            f"{n}.branch7x7_3", basic(f"{n}.branch7x7_2", b7, c7, (1, 7), pad=(0, 3)), 192, (7, 1), pad=(3, 0)
        )
        d = basic(f"{n}.branch7x7dbl_1", x, c7)
        for i, (out, kernel, pad) in enumerate(
            [(c7, (7, 1), (3, 0)), (c7, (1, 7), (0, 3)), (c7, (7, 1), (3, 0)), (192, (1, 7), (0, 3))], start=2
        ):
            d = basic(f"{n}.branch7x7dbl_{i}", d, out, kernel, pad=pad)
        return concat(b1, b7, d, basic(f"{n}.branch_pool", x, 192))

    def block_d(n: str, x: Grid) -> Grid:
        b3 = basic(f"{n}.branch3x3_2", basic(f"{n}.branch3x3_1", x, 192), 320, 3, 2)
        b7 = basic(f"{n}.branch7x7x3_1", x, 192)
        b7 = basic(f"{n}.branch7x7x3_2", b7, 192, (1, 7), pad=(0, 3))
        b7 = basic(f"{n}.branch7x7x3_4", basic(f"{n}.branch7x7x3_3", b7, 192, (7, 1), pad=(3, 0)), 192, 3, 2)
        return concat(b3, b7, max_pool(x, 3, 2))

    def block_e(n: str, x: Grid) -> Grid:
        b1 = basic(f"{n}.branch1x1", x, 320)
        b3 = basic(f"{n}.branch3x3_1", x, 384)
        b3a = basic(f"{n}.branch3x3_2a", b3, 384, (1, 3), pad=(0, 1))
        b3b = basic(f"{n}.branch3x3_2b", b3, 384, (3, 1), pad=(1, 0))
        d = basic(f"{n}.branch3x3dbl_2", basic(f"{n}.branch3x3dbl_1", x, 448), 384, 3, pad=1)
        da = basic(f"{n}.branch3x3dbl_3a", d, 384, (1, 3), pad=(0, 1))
        db = basic(f"{n}.branch3x3dbl_3b", d, 384, (3, 1), pad=(1, 0))
        return concat(b1, b3a, b3b, da, db, basic(f"{n}.branch_pool", x, 192))

    x = basic("Conv2d_1a_3x3", (3, 299, 299), 32, 3, 2)
    x = basic("Conv2d_2b_3x3", basic("Conv2d_2a_3x3", x, 32, 3), 64, 3, pad=1)
    x = basic("Conv2d_4a_3x3", basic("Conv2d_3b_1x1", max_pool(x, 3, 2), 80), 192, 3)
    x = max_pool(x, 3, 2)
    for name, features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = block_a(name, x, features)
    x = block_b("Mixed_6a", x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = block_c(name, x, c7)
    x = block_e("Mixed_7c", block_e("Mixed_7b", block_d("Mixed_7a", x)))
    t.linear("fc", x[0], 1000)


MOBILENET_V3_LARGE = [
    (3, 16, 16, False, 1),
    (3, 64, 24, False, 2),
    (3, 72, 24, False, 1),
    (5, 72, 40, True, 2),
    (5, 120, 40, True, 1),
    (5, 120, 40, True, 1),
    (3, 240, 80, False, 2),
    (3, 200, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 480, 112, True, 1),
    (3, 672, 112, True, 1),
    (5, 672, 160, True, 2),
    (5, 960, 160, True, 1),
    (5, 960, 160, True, 1),
]
MOBILENET_V3_SMALL = [
    (3, 16, 16, True, 2),
    (3, 72, 24, False, 2),
    (3, 88, 24, False, 1),
    (5, 96, 40, True, 2),
    (5, 240, 40, True, 1),
    (5, 240, 40, True, 1),
    (5, 120, 48, True, 1),
    (5, 144, 48, True, 1),
    (5, 288, 96, True, 2),
    (5, 576, 96, True, 1),
    (5, 576, 96, True, 1),
]


@dataclass(frozen=True)
class Published:
    """A model's published figures: exact parameters, and torchvision's GFLOPS (None: not given)."""

    spec: str
    build: Callable[[Tally], None]
    params: int
    gflops: float | None
    torchvision: bool = True
    small_input: int = 64  # side of the input of the numeric check


MODELS = [
    Published("inception_v3.net", inception_v3, 27_161_264 - 3_326_696, 5.71, small_input=75),
    Published("squeezenet1_0.net", squeezenet("1_0"), 1_248_424, 0.82),
    Published("squeezenet1_1.net", squeezenet("1_1"), 1_235_496, 0.35),
    Published("mobilenet_v1.net", mobilenet_v1, 4_231_976, None, torchvision=False),
    Published("mobilenet_v2.net", mobilenet_v2, 3_504_872, 0.30),
    Published("mobilenet_v3_large.net", mobilenet_v3(MOBILENET_V3_LARGE, 1280), 5_483_032, 0.22),
    Published("mobilenet_v3_small.net", mobilenet_v3(MOBILENET_V3_SMALL, 1024), 2_542_856, 0.06),
    Published("shufflenet_v2_x1_0.net", shufflenet_v2_x1_0, 2_278_604, 0.14),
    Published("resnext50_32x4d.net", resnet50_family(groups=32, width_per_group=4), 25_028_904, 4.23),
    Published("wide_resnet50_2.net", resnet50_family(width_per_group=128), 68_883_240, 11.40),
    Published("efficientnet_b0.net", efficientnet_b0, 5_288_548, 0.39),
    Published(
        "se_resnet50.net", resnet50_family(se=True, stride_on_1x1=True), 28_088_024, None, torchvision=False
    ),
]
IDS = [m.spec for m in MODELS]


@functools.cache
def tally(spec: str) -> Tally:
    model = next(m for m in MODELS if m.spec == spec)
    result = Tally()
    model.build(result)
    return result


@functools.cache
def analysis(spec: str) -> TypedGraph:
    return bind(load_graph(ZOO / spec), batch=1)


@pytest.mark.zoo
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_tally_reproduces_published_figures(model: Published) -> None:
    counted = tally(model.spec)
    assert counted.params == model.params
    if model.gflops is not None:
        assert round(counted.macs / 1e9, 2) == model.gflops


@pytest.mark.zoo
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_spec_counts_equal_the_tally(model: Published) -> None:
    totals = analysis(model.spec).counts.totals
    counted = tally(model.spec)
    assert (totals.params, totals.buffers, totals.macs) == (counted.params, counted.buffers, counted.macs)


@pytest.mark.zoo
@pytest.mark.parametrize(
    "model", [m for m in MODELS if m.torchvision], ids=[m.spec for m in MODELS if m.torchvision]
)
def test_parameters_are_torchvision_state_dict_keys(model: Published) -> None:
    # Same names in the same order (BatchNorm's num_batches_tracked aside): a torchvision
    # state_dict loads by name, with no mapping.
    result = analysis(model.spec)
    names = [a.name for arrays in result.arrays.values() for a in arrays]
    assert names == tally(model.spec).keys


@pytest.mark.zoo
def test_se_resnet_module_names() -> None:
    # Cadene's SENet port names the SE convolutions se_module.fc1 / fc2 inside each block.
    result = analysis("se_resnet50.net")
    names = {a.name for arrays in result.arrays.values() for a in arrays}
    assert set(tally("se_resnet50.net").keys) == names


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_onnx_matches_reference_at_a_small_input(model: Published) -> None:
    graph = load_graph(ZOO / model.spec)
    side = model.small_input
    errors = relative_errors(graph, input_shapes={"data": (1, 3, side, side)}, seed=3)
    assert max(errors.values()) <= 1e-4, errors


# Published receptive fields (google-research/receptive_field's table of TF-Slim models): size,
# effective stride and effective padding. The MobileNet v1 padding is the table's figure at a
# 321×321 input, where TensorFlow's "same" padding is symmetric as in this spec.
RECEPTIVE_FIELDS = [
    ("inception_v3.net", "Mixed_7c.concat", 1311, 32, 618),
    ("mobilenet_v1.net", "conv_pw_13_relu", 315, 32, 157),
]


@pytest.mark.zoo
@pytest.mark.parametrize(("spec", "tensor", "size", "stride", "padding"), RECEPTIVE_FIELDS)
def test_receptive_field_matches_published_table(
    spec: str, tensor: str, size: int, stride: int, padding: int
) -> None:
    result = analysis(spec)
    field = receptive_fields(result)[tensor]
    assert field is not None
    assert (field.size, field.stride, field.padding) == ((size, size), (stride, stride), (padding, padding))


@pytest.mark.zoo
@pytest.mark.parametrize("spec", ["mobilenet_v3_large.net", "efficientnet_b0.net", "se_resnet50.net"])
def test_squeeze_excitation_keeps_the_receptive_field(spec: str) -> None:
    # The SE gate is one factor per image and channel, broadcast over the grid: fields follow
    # the gated tensor (stride 32 at the end, as without the gates), not the gate's global pool.
    result = analysis(spec)
    fields = receptive_fields(result)
    last_spatial = [t for t in result.types if result.types[t].rank == 4 and result.types[t].dims[2] > 1][-1]
    field = fields[last_spatial]
    assert field is not None and field.stride == (32, 32)
