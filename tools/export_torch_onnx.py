"""Export small, narrow torchvision models to ONNX with torch's exporters: the ONNX front end's
test data (tests/data/onnx/), or with --full the full-size models for the closing-note table.

Needs a venv with torch, torchvision, onnx and onnxscript (never a dependency of netspec):

    /work/torchvenv/bin/python tools/export_torch_onnx.py            # tests/data/onnx/*.onnx
    /work/torchvenv/bin/python tools/export_torch_onnx.py --full /tmp/torchvision_onnx

The narrow models keep torchvision's module names and structure (BasicBlock, Bottleneck,
InvertedResidual, dense layers, Inception modules, squeeze-and-excitation) with few channels,
so the files stay small. Models are in eval mode with random BatchNorm statistics, exported by
the TorchScript exporter (opsets 11, 13, 17, one with a dynamic batch) and the dynamo exporter
(opsets 18 and 21); BatchNorm is folded into the convolutions, as the exporters do by default.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional
from torchvision.models import resnet as tv_resnet
from torchvision.models.googlenet import BasicConv2d, Inception

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx"


class NarrowResNet(tv_resnet.ResNet):
    """torchvision's ResNet with narrow stages (its forward and module names)."""

    def __init__(self, block: type[nn.Module], layers: list[int], widths: tuple[int, ...], classes: int = 10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, classes)  # type: ignore[attr-defined]


class TinyGoogLeNet(nn.Module):
    """Two torchvision Inception modules between a stem and a classifier (GoogLeNet's names)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 16, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(16, 8, 8, 12, 4, 4, 4)
        self.inception3b = Inception(28, 8, 8, 12, 4, 4, 4)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class TinySegmenter(nn.Module):
    """Deconvolution, bilinear and nearest upsampling, a concatenated skip, LeakyReLU, Sigmoid,
    and a batch-dependent reshape (Shape → Gather → Concat → Reshape when the batch is dynamic)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.head = nn.Conv2d(11, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.down(x))
        bilinear = functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        nearest = functional.interpolate(y, scale_factor=2.0, mode="nearest")
        y = self.up(y) + bilinear - nearest * 0.5
        y = torch.sigmoid(self.head(torch.cat([y, x], 1)))
        return y.reshape(y.shape[0], -1)


def _narrow_models() -> dict[str, Callable[[], nn.Module]]:
    from torchvision.models import densenet, mobilenetv2

    return {
        "resnet_basic": lambda: NarrowResNet(tv_resnet.BasicBlock, [2, 1, 1, 1], (8, 16, 16, 32)),
        "resnet_bottleneck": lambda: NarrowResNet(tv_resnet.Bottleneck, [2, 1, 2, 1], (4, 8, 8, 16)),
        "mobilenet_v2": lambda: mobilenetv2.MobileNetV2(
            width_mult=0.25, num_classes=10, round_nearest=4, inverted_residual_setting=MOBILENET_V2_SHORT
        ),
        "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(width_mult=0.25, num_classes=10),
        "densenet": lambda: densenet.DenseNet(
            growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10
        ),
        "googlenet_tiny": TinyGoogLeNet,
        "segmenter": TinySegmenter,
    }


# MobileNetV2's first stages (t, c, n, s): its last 1x1 convolution to 1280 channels stays.
MOBILENET_V2_SHORT = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]]

# (exporter, opset, dynamic batch) for each narrow model.
EXPORTS = [
    ("torchscript", 11, False),
    ("torchscript", 13, True),
    ("torchscript", 17, False),
    ("dynamo", 18, False),
]
EXTRA = {"resnet_basic": [("dynamo", 21, False)], "segmenter": [("torchscript", 17, True)]}
# The larger files: two exports each.
ONLY = {"mobilenet_v3_small": [("torchscript", 17, False), ("dynamo", 18, False)]}


def _randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(channels, generator=generator) * 0.1)


def export(model: nn.Module, path: Path, size: int, exporter: str, opset: int, dynamic: bool) -> None:
    x = torch.randn(1, 3, size, size)
    kwargs: dict[str, object] = {"input_names": ["input"], "output_names": ["output"], "opset_version": opset}
    if exporter == "dynamo":
        kwargs["dynamo"] = True
        kwargs["external_data"] = False
        if dynamic:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    else:
        kwargs["dynamo"] = False
        if dynamic:
            kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        buffer = io.BytesIO() if exporter != "dynamo" else None
        torch.onnx.export(model, (x,), str(path) if buffer is None else buffer, **kwargs)  # type: ignore[arg-type]
        if buffer is not None:
            path.write_bytes(buffer.getvalue())


def export_narrow(out: Path, only: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for name, build in _narrow_models().items():
        if only and name not in only:
            continue
        torch.manual_seed(0)
        model = build().eval()
        _randomise_batchnorm(model, generator)
        for exporter, opset, dynamic in ONLY.get(name, EXPORTS + EXTRA.get(name, [])):
            suffix = "_dynbatch" if dynamic else ""
            path = out / f"{name}_{exporter}{opset}{suffix}.onnx"
            size = 64 if name != "segmenter" else 32
            export(model, path, size, exporter, opset, dynamic)
            print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB", file=sys.stderr)


FULL = [
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "densenet121",
    "googlenet",
    "vgg16",
    "alexnet",
    "squeezenet1_0",
]


def export_full(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in FULL:
        torch.manual_seed(0)
        kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
        path = out / f"{name}.onnx"
        export(model, path, 224, "torchscript", 17, False)
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", metavar="DIR", help="export full-size torchvision models into DIR instead")
    parser.add_argument("models", nargs="*", help="the narrow models to export (default: all)")
    args = parser.parse_args()
    if args.full:
        export_full(Path(args.full))
    else:
        export_narrow(OUT, args.models)


if __name__ == "__main__":
    main()
