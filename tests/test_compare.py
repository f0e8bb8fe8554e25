"""``netspec compare`` and the efficiency plot: rows against hand-computed and published
figures, every output format, sorting, ``--bench``, and the optional matplotlib extra."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.compare import CompareRow, final_feature_field, weighted_depth
from netspec.compiler import load_graph
from netspec.typed import bind

ZOO = Path(__file__).resolve().parent.parent / "zoo"
LENET = str(ZOO / "lenet5.net")

# Two paths from the input: a -> b -> c (three 3x3 convolutions) and d (one 1x1), concatenated,
# pooled and classified. Figures by hand (batch 1, float32):
#   params  a 3·4·9+4 = 112, b and c 4·4·9+4 = 148 each, d 3·4+4 = 16, fc 128·10+10 = 1290 -> 1714
#   MACs    a 4·64·27 = 6912, b and c 4·64·36 = 9216 each, d 4·64·3 = 768, fc 1280       -> 27392
#   FLOPs   2·MACs + bias adds (convs 256 each, fc 10) + ReLU 256 + max pool 3 comparisons
#           per output · 128 = 54784 + 1034 + 256 + 384                                     -> 56458
#   peak    while cat runs: c 1024 B + d 1024 B + cat 2048 B                                -> 4096
#   depth   a, b, c, fc                                                                      -> 4
#   RF      pool (the last map with more than one position, 4x4): 3x3 three times gives 7,
#           the 2x2/2 pool 8, stride 2 (the 1x1 path gives less)                            -> 8/2
BRANCHY = """\
name: "branchy"
input data: [N, 3, 8, 8]
Convolution a { num_output: 4  kernel_size: 3  pad: 1 }
ReLU ra
Convolution b { num_output: 4  kernel_size: 3  pad: 1 }
Convolution c { num_output: 4  kernel_size: 3  pad: 1 }
Convolution d { bottom: data  num_output: 4  kernel_size: 1 }
Concat cat { bottom: [c, d] }
Pooling pool { pool: MAX  kernel_size: 2  stride: 2 }
InnerProduct fc { num_output: 10 }
"""

BRANCHY_ROW = {
    "name": "branchy",
    "batch": 1,
    "params": 1714,
    "macs": 27392,
    "flops": 56458,
    "weight_bytes": 1714 * 4,
    "peak_activation_bytes": 4096,
    "depth": 4,
    "receptive_field": {"layer": "pool", "size": [8, 8], "stride": [2, 2]},
    # Not a zoo model: no catalogue family, no published accuracy.
    "family": None,
    "top1": None,
    "top5": None,
    "accuracy_source": None,
    "accuracy_evaluation": None,
}


@pytest.fixture
def branchy(tmp_path: Path) -> Path:
    path = tmp_path / "branchy.net"
    path.write_text(BRANCHY)
    return path


def _compare(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["compare", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.unit
def test_row_by_hand(branchy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (row,) = json.loads(_compare(capsys, str(branchy), "--format", "json"))
    assert row == {**BRANCHY_ROW, "source": str(branchy)}
    # At batch 3 every count but params and weights triples.
    (row,) = json.loads(_compare(capsys, str(branchy), "--format", "json", "--batch", "3"))
    assert (row["batch"], row["params"], row["macs"], row["flops"]) == (3, 1714, 3 * 27392, 3 * 56458)
    assert row["peak_activation_bytes"] == 3 * 4096


@pytest.mark.zoo
@pytest.mark.parametrize(
    ("spec", "depth"),
    # The depth in the models' names; GoogLeNet is "22 layers deep when counting only layers
    # with parameters" (Szegedy et al. 2015), AlexNet has 5 conv + 3 fc layers.
    [
        ("lenet5", 5),
        ("alexnet_caffe", 8),
        ("vgg16", 16),
        ("resnet18", 18),
        ("googlenet", 22),
        ("resnet50", 50),
        ("se_resnet50", 50),  # the squeeze-and-excitation gates are side branches
        ("densenet121", 121),
        # He et al.'s CIFAR ResNets are 6n + 2 deep; option-A shortcuts hold no convolution.
        ("resnet20_cifar", 20),
        ("resnet110_cifar", 110),
        ("resnet1202_cifar", 1202),
        ("resnet110_stochastic_depth", 110),
    ],
)
def test_weighted_depth_is_the_published_depth(spec: str, depth: int) -> None:
    assert weighted_depth(bind(load_graph(ZOO / f"{spec}.net"))) == depth


@pytest.mark.zoo
@pytest.mark.parametrize(
    ("spec", "layer", "size", "stride"),
    [
        # Araujo et al., Distill 2019 / google-research receptive_field: VGG-16 212, AlexNet 195,
        # both with stride 32 at their last pooling layer.
        # (torchvision's VGG keeps pool5's 7x7 map through an identity AdaptiveAvgPool.)
        ("vgg16", "avgpool", 212, 32),
        ("alexnet_caffe", "pool5", 195, 32),
        # LeNet-5 by hand: 5x5 conv 5, 2x2/2 pool 6 (jump 2), 5x5 conv 6+4·2 = 14, pool 16 (jump 4);
        # C5's output is 1x1, so S4 is the last map with more than one position.
        ("lenet5", "s4", 16, 4),
    ],
)
def test_final_feature_field(spec: str, layer: str, size: int, stride: int) -> None:
    final = final_feature_field(bind(load_graph(ZOO / f"{spec}.net")))
    assert final is not None
    assert (final.layer, final.field.size, final.field.stride) == (layer, (size, size), (stride, stride))


@pytest.mark.unit
def test_formats_and_sorting(branchy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = [LENET, str(branchy)]
    rows = json.loads(_compare(capsys, *specs, "--format", "json"))
    assert [r["name"] for r in rows] == ["LeNet-5", "branchy"]
    for row in rows:
        for key in ("params", "macs", "flops", "weight_bytes", "peak_activation_bytes", "depth"):
            assert isinstance(row[key], int) and row[key] > 0

    by_params = json.loads(_compare(capsys, *specs, "--format", "json", "--sort", "params"))
    assert [r["name"] for r in by_params] == ["LeNet-5", "branchy"]  # 61,706 > 1,714
    by_name = json.loads(_compare(capsys, *specs, "--format", "json", "--sort", "name"))
    assert [r["name"] for r in by_name] == ["LeNet-5", "branchy"]
    by_field = json.loads(
        _compare(capsys, str(branchy), LENET, "--format", "json", "--sort", "receptive_field")
    )
    assert [r["name"] for r in by_field] == ["LeNet-5", "branchy"]  # 16x16 > 8x8
    by_depth = json.loads(_compare(capsys, LENET, str(branchy), "--format", "json", "--sort", "depth"))
    assert [r["depth"] for r in by_depth] == [5, 4]

    table = list(csv.reader(io.StringIO(_compare(capsys, *specs, "--format", "csv", "--sort", "macs"))))
    assert table[0] == [
        "name",
        "source",
        "batch",
        "params",
        "macs",
        "flops",
        "weight_bytes",
        "peak_activation_bytes",
        "depth",
        "rf_layer",
        "rf_size",
        "rf_stride",
        "family",
        "top1",
        "top5",
        "accuracy_source",
        "accuracy_evaluation",
    ]
    assert [r[0] for r in table[1:]] == ["LeNet-5", "branchy"]  # 416,520 MACs > 27,392
    assert table[2][3:12] == ["1714", "27392", "56458", "6856", "4096", "4", "pool", "8x8", "2x2"]

    text = _compare(capsys, *specs)
    assert "depth: weighted (convolution, fully connected) layers" in " ".join(text.split())
    header = next(line for line in text.splitlines() if line.startswith("model"))
    assert header.split()[:4] == ["model", "params", "MACs", "FLOPs"]
    branchy_line = next(line for line in text.splitlines() if line.startswith("branchy"))
    assert branchy_line.split() == [
        "branchy",
        "1.71K",
        "27.39K",
        "56.46K",
        "6.70",
        "KiB",
        "4.00",
        "KiB",
        "4",
        "8/2",
    ]

    markdown = _compare(capsys, *specs, "--format", "md")
    assert "| model | params | MACs |" in markdown and "| branchy | 1.71K |" in markdown


@pytest.mark.unit
def test_usage_errors(branchy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(branchy), "--sort", "parms"]) == 2
    assert "did you mean 'params'?" in capsys.readouterr().err
    assert main(["compare", str(branchy), "--sort", "latency_ms"]) == 2
    assert "add --bench" in capsys.readouterr().err
    # ONNX models are read like specs (netspec.onnx_import): a missing one is a spec error.
    assert main(["compare", str(tmp_path / "model.onnx")]) == 1
    assert "model.onnx" in capsys.readouterr().err
    broken = tmp_path / "broken.net"
    broken.write_text("input data: [N, 3, 8, 8]\nConvolution c { num_output: 2  kernal_size: 3 }\n")
    assert main(["compare", str(branchy), str(broken)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "broken.net:2:" in captured.err


@pytest.mark.ort
def test_bench_adds_latency(branchy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(
        _compare(capsys, str(branchy), LENET, "--bench", "--format", "json", "--sort", "throughput")
    )
    assert [r["name"] for r in rows] != [] and {r["name"] for r in rows} == {"LeNet-5", "branchy"}
    assert rows[0]["throughput"] >= rows[1]["throughput"] > 0
    for row in rows:
        assert row["latency_ms"] > 0 and row["device"] in ("cpu", "cuda")
        assert row["throughput"] == pytest.approx(1 / (row["latency_ms"] / 1e3))


@pytest.mark.unit
def test_plot_written(branchy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "efficiency.png"
    _compare(capsys, LENET, str(branchy), "--plot", str(output))
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _compare(capsys, LENET, str(branchy), "--plot", str(tmp_path / "efficiency.svg"))
    assert b"<svg" in (tmp_path / "efficiency.svg").read_bytes()[:1000]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.unit
def test_plot_labels_do_not_overlap() -> None:
    pytest.importorskip("matplotlib")
    from netspec.plot import efficiency_figure

    # Six models within a factor of 1.3 of each other in both MACs and params: a crowded
    # cluster, like the ResNet-50 family.
    rows = [
        CompareRow(
            name=f"model-{i}",
            source=f"model-{i}.net",
            batch=1,
            params=int(25e6 * 1.05**i),
            macs=int(4e9 * 1.05**i),
            flops=int(8e9 * 1.05**i),
            weight_bytes=int(100e6 * 1.05**i),
            peak_activation_bytes=2**20 * (i + 1),
            depth=50,
            receptive_field=None,
            family=None,
            top1=None,
            top5=None,
            accuracy_source=None,
            accuracy_evaluation=None,
        )
        for i in range(6)
    ]
    figure = efficiency_figure(rows)
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    boxes = [text.get_window_extent(renderer) for text in axes.texts]
    assert sorted(text.get_text() for text in axes.texts) == sorted(r.name for r in rows)
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)


@pytest.mark.unit
def test_plot_without_matplotlib(
    branchy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    output = tmp_path / "efficiency.png"
    assert main(["compare", str(branchy), "--plot", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "--plot needs matplotlib" in captured.err and "pip install 'netspec-compiler[plot]'" in captured.err
    )
    assert list(tmp_path.iterdir()) == [branchy]


@pytest.mark.unit
def test_plot_output_checked_first(branchy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(branchy), "--plot", str(tmp_path / "chart.jpg")]) == 2
    assert "--plot writes .png, .svg, .pdf files, not 'chart.jpg'" in capsys.readouterr().err
    assert main(["compare", str(branchy), "--plot", str(tmp_path / "missing" / "chart.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no such folder" in captured.err
