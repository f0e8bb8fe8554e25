"""The zoo against published figures: exact params, buffers and MACs at batch 1, torchvision's
parameter names, and every model compiled to ONNX, checked, shape-inferred and run."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_layers import assert_shapes_agree
from test_zoo_survey import damp_residual_branches

from netspec.compiler import compile_graph, load_graph
from netspec.typed import TypedGraph, bind
from netspec.verify import sample_inputs
from netspec.weights import initialize_weights

ZOO = Path(__file__).resolve().parent.parent / "zoo"


@dataclass(frozen=True)
class Reference:
    """A zoo model's figures at batch 1 and where they come from."""

    spec: str
    params: int
    buffers: int
    macs: int
    output: tuple[int, ...]
    source: str
    more_outputs: tuple[tuple[int, ...], ...] = ()  # after the first, in order


TORCHVISION = "torchvision Weights meta num_params; MACs = torchvision GFLOPS column (conv + linear)"
# Buffers and exact MACs of the issue-7 models: tallied without netspec in tests/test_zoo_modern.py.
MODERN_TALLY = "buffers and MACs from tests/test_zoo_modern.py's independent layer table"
TORCHVISION_TALLIED = f"{TORCHVISION}; {MODERN_TALLY}"
TORCHVISION_TRANSFORMERS = (
    "torchvision Weights meta num_params and GFLOPS (attention's QKᵀ and AV included); buffers and "
    "exact MACs from tests/test_zoo_transformer.py's independent tally"
)
SURVEY = "published params in tests/test_zoo_survey.py; buffers and MACs from its independent tally"

REFERENCES = [
    Reference(
        "lenet5.net",
        61_706,
        0,
        416_520,
        (1, 10),
        "computed from LeCun et al. 1998's layer table (shared/reference/counts.json)",
    ),
    Reference("alexnet.net", 61_100_840, 0, 714_188_480, (1, 1000), TORCHVISION),
    Reference(
        "alexnet_caffe.net",
        60_965_224,
        0,
        724_406_816,
        (1, 1000),
        "computed from BVLC's bvlc_alexnet deploy.prototxt (shared/caffe/SOURCES.md)",
    ),
    Reference(
        "zfnet.net",
        62_357_608,
        0,
        1_168_032_896,
        (1, 1000),
        "Zeiler & Fergus 2014 Fig. 3; no published count: netspec's, stated in zfnet.net",
    ),
    Reference("vgg11.net", 132_863_336, 0, 7_609_090_048, (1, 1000), TORCHVISION),
    Reference("vgg13.net", 133_047_848, 0, 11_308_466_176, (1, 1000), TORCHVISION),
    Reference("vgg16.net", 138_357_544, 0, 15_470_264_320, (1, 1000), TORCHVISION),
    Reference("vgg19.net", 143_667_240, 0, 19_632_062_464, (1, 1000), TORCHVISION),
    Reference(
        "nin.net",
        7_595_176,
        0,
        1_100_188_800,
        (1, 1000, 1, 1),
        "computed from Netscope's presets/nin.prototxt (shared/caffe/SOURCES.md)",
    ),
    Reference("googlenet.net", 6_624_904, 14_560, 1_498_376_192, (1, 1000), TORCHVISION),
    Reference("resnet18.net", 11_689_512, 9_600, 1_814_073_344, (1, 1000), TORCHVISION),
    Reference("resnet34.net", 21_797_672, 17_024, 3_663_761_408, (1, 1000), TORCHVISION),
    Reference("resnet50.net", 25_557_032, 53_120, 4_089_184_256, (1, 1000), TORCHVISION),
    Reference("resnet101.net", 44_549_160, 105_344, 7_801_405_440, (1, 1000), TORCHVISION),
    Reference("resnet152.net", 60_192_808, 151_424, 11_513_626_624, (1, 1000), TORCHVISION),
    Reference("densenet121.net", 7_978_856, 83_648, 2_834_161_664, (1, 1000), TORCHVISION),
    Reference("densenet161.net", 28_681_000, 219_936, 7_727_907_072, (1, 1000), TORCHVISION),
    Reference("densenet169.net", 14_149_480, 158_400, 3_359_843_328, (1, 1000), TORCHVISION),
    Reference("densenet201.net", 20_013_928, 229_056, 4_291_365_888, (1, 1000), TORCHVISION),
    # Efficient and modern classification networks.
    Reference(
        "inception_v3.net",
        23_834_568,
        34_432,
        5_713_216_096,
        (1, 1000),
        "torchvision num_params 27,161,264 less AuxLogits' 3,326,696; GFLOPS 5.71; " + MODERN_TALLY,
    ),
    Reference("squeezenet1_0.net", 1_248_424, 0, 818_924_576, (1, 1000), TORCHVISION_TALLIED),
    Reference("squeezenet1_1.net", 1_235_496, 0, 349_151_936, (1, 1000), TORCHVISION_TALLIED),
    Reference(
        "mobilenet_v1.net",
        4_231_976,
        21_888,
        568_740_352,
        (1, 1000),
        "Howard et al. 2017 1.0-224 (4,231,976 params, 569M mult-adds); " + MODERN_TALLY,
    ),
    Reference("mobilenet_v2.net", 3_504_872, 34_112, 300_774_272, (1, 1000), TORCHVISION_TALLIED),
    Reference("mobilenet_v3_large.net", 5_483_032, 24_400, 216_589_760, (1, 1000), TORCHVISION_TALLIED),
    Reference("mobilenet_v3_small.net", 2_542_856, 12_112, 56_510_400, (1, 1000), TORCHVISION_TALLIED),
    Reference("shufflenet_v2_x1_0.net", 2_278_604, 16_180, 144_907_992, (1, 1000), TORCHVISION_TALLIED),
    Reference("resnext50_32x4d.net", 25_028_904, 68_224, 4_230_479_872, (1, 1000), TORCHVISION_TALLIED),
    Reference("wide_resnet50_2.net", 68_883_240, 68_224, 11_398_021_120, (1, 1000), TORCHVISION_TALLIED),
    Reference("efficientnet_b0.net", 5_288_548, 42_016, 385_814_752, (1, 1000), TORCHVISION_TALLIED),
    Reference(
        "se_resnet50.net",
        28_088_024,
        53_120,
        3_860_488_192,
        (1, 1000),
        "Hu et al. 2018 SE-ResNet-50, reduction 16, stride on the first 1x1 (28,088,024); " + MODERN_TALLY,
    ),
    # The transformer-era networks (issue 15): MACs include attention's activation products.
    Reference("convnext_tiny.net", 28_589_128, 0, 4_455_531_264, (1, 1000), TORCHVISION_TRANSFORMERS),
    Reference("vit_b_16.net", 86_567_656, 0, 17_563_828_224, (1, 1000), TORCHVISION_TRANSFORMERS),
    Reference("swin_t.net", 28_288_354, 28_812, 4_490_566_656, (1, 1000), TORCHVISION_TRANSFORMERS),
    Reference("regnet_y_400mf.net", 4_344_144, 27_152, 401_842_848, (1, 1000), TORCHVISION_TRANSFORMERS),
    Reference(
        "efficientnet_v2_s.net", 21_458_488, 153_872, 8_365_617_152, (1, 1000), TORCHVISION_TRANSFORMERS
    ),
    # Dense prediction, spatial transformers, local convolution, NetVLAD, RoI heads.
    Reference(
        "fcn8s.net",
        134_489_759,
        0,
        181_529_034_048,
        (1, 21, 500, 500),
        "computed from shelhamer/fcn.berkeleyvision.org voc-fcn8s/deploy.prototxt (shared/caffe/SOURCES.md)",
    ),
    Reference(
        "unet.net",
        31_030_658,
        0,
        150_428_424_448,
        (1, 2, 388, 388),
        "Ronneberger et al. 2015 Fig. 1; no published count: derived in tests/test_zoo_dense.py",
    ),
    Reference(
        "segnet.net",
        29_449_355,
        0,
        106_712_432_640,
        (1, 11, 360, 480),
        "Badrinarayanan et al. 2017 (Table 6: 29.5M); derived in tests/test_zoo_dense.py",
    ),
    Reference(
        "deeplab_largefov.net",
        20_505_429,
        0,
        50_928_085_696,
        (1, 21, 41, 41),
        "Chen et al. 2015 DeepLab-LargeFOV; no published count: derived in tests/test_zoo_dense.py",
    ),
    Reference(
        "stn_mnist.net",
        27_360,
        0,
        776_004,
        (1, 10),
        "Jaderberg et al. 2015 / PyTorch STN tutorial; derived in tests/test_zoo_dense.py",
    ),
    Reference(
        "deepface.net",
        118_923_774,
        0,
        517_624_448,
        (1, 4030),
        'Taigman et al. 2014 Fig. 2 ("more than 120M"); derived in tests/test_zoo_dense.py',
    ),
    Reference(
        "netvlad_vgg16.net",
        14_780_288,
        0,
        15_359_475_712,
        (1, 32768),
        "Arandjelovic et al. 2016, K=64 at 224x224; derived in tests/test_zoo_dense.py",
    ),
    Reference(
        "faster_rcnn_vgg16_head.net",
        134_690_729,
        0,
        182_978_150_400,
        (300, 84),
        "Ren et al. 2015 VGG-16 head, 600x800, 300 RoIs; derived in tests/test_zoo_dense.py",
        more_outputs=((300, 21),),
    ),
    # The systems of the CNN surveys (issue 16): CIFAR ResNets, stochastic depth, GANs, the
    # Inception line, FCN-16s/32s, Faster R-CNN end to end.
    Reference("resnet20_cifar.net", 269_722, 1_376, 40_551_040, (1, 10), SURVEY),
    Reference("resnet32_cifar.net", 464_154, 2_272, 68_862_592, (1, 10), SURVEY),
    Reference("resnet44_cifar.net", 658_586, 3_168, 97_174_144, (1, 10), SURVEY),
    Reference("resnet56_cifar.net", 853_018, 4_064, 125_485_696, (1, 10), SURVEY),
    Reference("resnet110_cifar.net", 1_727_962, 8_096, 252_887_680, (1, 10), SURVEY),
    Reference("resnet1202_cifar.net", 19_421_274, 89_632, 2_829_238_912, (1, 10), SURVEY),
    Reference("resnet110_stochastic_depth.net", 1_727_962, 8_096, 252_887_680, (1, 10), SURVEY),
    Reference("dcgan_generator.net", 3_576_704, 1_920, 104_628_224, (1, 3, 64, 64), SURVEY),
    Reference("dcgan_discriminator.net", 2_765_568, 1_792, 103_817_216, (1, 1, 1, 1), SURVEY),
    Reference("fcn16s.net", 134_815_994, 0, 181_448_086_272, (1, 21, 500, 500), SURVEY),
    Reference("fcn32s.net", 136_152_917, 0, 181_365_854_976, (1, 21, 500, 500), SURVEY),
    Reference("bn_inception.net", 11_295_240, 20_032, 2_032_600_064, (1, 1000), SURVEY),
    Reference("xception.net", 22_855_952, 54_528, 8_357_403_496, (1, 1000), SURVEY),
    Reference("inception_v4.net", 42_679_816, 63_168, 12_253_974_624, (1, 1000), SURVEY),
    Reference("inception_resnet_v2.net", 55_843_464, 60_544, 13_155_794_016, (1, 1000), SURVEY),
    Reference(
        "faster_rcnn_vgg16.net",
        137_078_239,
        0,
        187_513_344_000,
        (100, 4),
        SURVEY + "; 600x800, 300 proposals",
        more_outputs=((100,), (100,)),
    ),
]

SPECS = [r.spec for r in REFERENCES]


@functools.cache
def analysis(spec: str) -> TypedGraph:
    return bind(load_graph(ZOO / spec), batch=1)


@pytest.mark.zoo
def test_every_zoo_model_has_a_reference() -> None:
    assert sorted(p.name for p in ZOO.glob("*.net")) == sorted(SPECS)


@pytest.mark.zoo
@pytest.mark.parametrize("reference", REFERENCES, ids=SPECS)
def test_counts_match_published_figures(reference: Reference) -> None:
    result = analysis(reference.spec)
    totals = result.counts.totals
    assert (totals.params, totals.buffers, totals.macs) == (
        reference.params,
        reference.buffers,
        reference.macs,
    ), reference.source
    assert [result.types[t].dims for t in result.graph.outputs] == [reference.output, *reference.more_outputs]


# Names a reference checkpoint is looked up by, spelled out.
NAMED_PARAMETERS = [
    ("resnet50.net", "layer1.0.downsample.0.weight"),
    ("densenet121.net", "features.denseblock1.denselayer1.conv1.weight"),
    ("googlenet.net", "inception3a.branch2.1.bn.running_var"),
    ("vgg16.net", "classifier.6.bias"),
    ("alexnet_caffe.net", "conv5.weight"),
    ("nin.net", "cccp8_1024.bias"),
]


def parameter_names(spec: str) -> dict[str, tuple[int, ...]]:
    result = analysis(spec)
    return {array.name: array.spec.shape for arrays in result.arrays.values() for array in arrays}


@pytest.mark.zoo
@pytest.mark.parametrize(("spec", "name"), NAMED_PARAMETERS)
def test_named_parameters_exist(spec: str, name: str) -> None:
    assert name in parameter_names(spec)


# torchvision's state_dict keys (less BatchNorm's num_batches_tracked, which netspec does not
# store), generated here the way torchvision's constructors register their modules.


def batchnorm_keys(prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var")]


def alexnet_keys() -> list[str]:
    return [
        f"{module}.{array}"
        for module in (
            "features.0",
            "features.3",
            "features.6",
            "features.8",
            "features.10",
            "classifier.1",
            "classifier.4",
            "classifier.6",
        )
        for array in ("weight", "bias")
    ]


def vgg_keys(cfg: list[int | str]) -> list[str]:
    keys, index = [], 0
    for item in cfg:
        if item == "M":
            index += 1
        else:
            keys += [f"features.{index}.weight", f"features.{index}.bias"]
            index += 2
    return keys + [f"classifier.{i}.{array}" for i in (0, 3, 6) for array in ("weight", "bias")]


def googlenet_keys() -> list[str]:
    def basic_conv(prefix: str) -> list[str]:
        return [f"{prefix}.conv.weight", *batchnorm_keys(f"{prefix}.bn")]

    keys = basic_conv("conv1") + basic_conv("conv2") + basic_conv("conv3")
    for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        for branch in ("branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1"):
            keys += basic_conv(f"inception{name}.{branch}")
    return [*keys, "fc.weight", "fc.bias"]


def resnet_keys(bottleneck: bool, blocks: list[int]) -> list[str]:
    keys, inplanes = ["conv1.weight", *batchnorm_keys("bn1")], 64
    expansion, convs = (4, 3) if bottleneck else (1, 2)
    for stage, count in enumerate(blocks):
        planes = 64 * 2**stage
        for i in range(count):
            prefix = f"layer{stage + 1}.{i}"
            for c in range(1, convs + 1):
                keys += [f"{prefix}.conv{c}.weight", *batchnorm_keys(f"{prefix}.bn{c}")]
            stride = 2 if i == 0 and stage > 0 else 1
            if stride != 1 or inplanes != planes * expansion:
                keys += [f"{prefix}.downsample.0.weight", *batchnorm_keys(f"{prefix}.downsample.1")]
            inplanes = planes * expansion
    return [*keys, "fc.weight", "fc.bias"]


def densenet_keys(blocks: list[int]) -> list[str]:
    keys = ["features.conv0.weight", *batchnorm_keys("features.norm0")]
    for block, layers in enumerate(blocks, start=1):
        for layer in range(1, layers + 1):
            prefix = f"features.denseblock{block}.denselayer{layer}"
            keys += [
                *batchnorm_keys(f"{prefix}.norm1"),
                f"{prefix}.conv1.weight",
                *batchnorm_keys(f"{prefix}.norm2"),
                f"{prefix}.conv2.weight",
            ]
        if block < len(blocks):
            keys += [
                *batchnorm_keys(f"features.transition{block}.norm"),
                f"features.transition{block}.conv.weight",
            ]
    return [*keys, *batchnorm_keys("features.norm5"), "classifier.weight", "classifier.bias"]


M = "M"
STATE_DICT_KEYS = {
    "alexnet.net": alexnet_keys(),
    "vgg11.net": vgg_keys([64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]),
    "vgg13.net": vgg_keys([64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]),
    "vgg16.net": vgg_keys([64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M]),
    "vgg19.net": vgg_keys(
        [64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M]
    ),
    "googlenet.net": googlenet_keys(),
    "resnet18.net": resnet_keys(False, [2, 2, 2, 2]),
    "resnet34.net": resnet_keys(False, [3, 4, 6, 3]),
    "resnet50.net": resnet_keys(True, [3, 4, 6, 3]),
    "resnet101.net": resnet_keys(True, [3, 4, 23, 3]),
    "resnet152.net": resnet_keys(True, [3, 8, 36, 3]),
    "densenet121.net": densenet_keys([6, 12, 24, 16]),
    "densenet161.net": densenet_keys([6, 12, 36, 24]),
    "densenet169.net": densenet_keys([6, 12, 32, 32]),
    "densenet201.net": densenet_keys([6, 12, 48, 32]),
}


@pytest.mark.zoo
@pytest.mark.parametrize("spec", STATE_DICT_KEYS)
def test_parameters_are_torchvision_state_dict_keys(spec: str) -> None:
    # Same names in the same order: a torchvision state_dict loads by name, with no mapping.
    assert list(parameter_names(spec)) == STATE_DICT_KEYS[spec]


@pytest.mark.zoo
def test_parameter_shapes_follow_the_reference_layout() -> None:
    # Where the reference builds it that way: grouped conv (Caffe), torchvision's 3×3 "5×5"
    # branch, the Bottleneck's last 1×1 and the DenseNet bottleneck width bn_size·k.
    assert parameter_names("alexnet_caffe.net")["conv2.weight"] == (256, 48, 5, 5)
    assert parameter_names("googlenet.net")["inception3a.branch3.1.conv.weight"] == (32, 16, 3, 3)
    assert parameter_names("resnet50.net")["layer1.0.conv3.weight"] == (256, 64, 1, 1)
    assert parameter_names("densenet161.net")["features.denseblock2.denselayer2.conv1.weight"] == (
        192,
        240,
        1,
        1,
    )
    assert parameter_names("vgg16.net")["classifier.0.weight"] == (4096, 512 * 7 * 7)


# Every model is also checked value for value against netspec's float64 numpy reference at a
# small input: the classic ones in tests/test_reference.py (CLASSIC_ZOO), the issue-7 ones in
# tests/test_zoo_modern.py and (dense prediction and special layers) tests/test_zoo_dense.py.


# Models run below at a smaller input than their own, to keep the suite's time down (each is
# 100-180 GMACs at full size; their counts above are checked at full size).
REDUCED_INPUTS: dict[str, dict[str, tuple[int, ...]]] = {
    "fcn8s.net": {"data": (1, 3, 32, 32)},  # conv1_1 pads by 100: still 230×230
    "fcn16s.net": {"data": (1, 3, 32, 32)},
    "fcn32s.net": {"data": (1, 3, 32, 32)},
    "inception_v4.net": {"data": (1, 3, 139, 139)},  # 12-13 GMACs each at 299×299
    "inception_resnet_v2.net": {"data": (1, 3, 139, 139)},
    "xception.net": {"data": (1, 3, 139, 139)},
    "unet.net": {"data": (1, 1, 252, 252)},
    "faster_rcnn_vgg16_head.net": {"data": (1, 3, 224, 288), "rois": (32, 5)},
    "faster_rcnn_vgg16.net": {"data": (1, 3, 224, 288)},
}


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("spec", SPECS)
def test_onnx_checks_infers_and_runs(spec: str) -> None:
    import onnx
    import onnxruntime as ort

    from netspec.export.onnx import inferred_shapes

    shapes = REDUCED_INPUTS.get(spec)
    result = analysis(spec) if shapes is None else bind(load_graph(ZOO / spec), batch=1, input_shapes=shapes)
    weights = damp_residual_branches(spec, initialize_weights(result, seed=0))
    # The graph as written (BatchNorm kept), so that every tensor netspec typed is in the model
    # (but elided identities); the default folded form is checked against it in tests/test_fold.py.
    model = compile_graph(bind(result.graph, batch=1, input_shapes=shapes), weights, fold_bn=False)
    # Serialised once for both the checker and onnxruntime: VGG's weights are 0.5 GB.
    serialized = model.SerializeToString()
    onnx.checker.check_model(serialized, full_check=True)

    # Every tensor netspec typed is in the ONNX graph under its spec name (or is an elided
    # identity's output), with the same shape under ONNX's strict shape inference.
    assert_shapes_agree(result.graph, result.types, inferred_shapes(model))

    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    feeds = sample_inputs(result, seed=0)  # valid boxes for RoI layers
    outputs = session.run(None, feeds)
    assert [o.shape for o in outputs] == [result.types[t].dims for t in result.graph.outputs]
    assert all(np.isfinite(o).all() for o in outputs)
