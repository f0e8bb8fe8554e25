"""Published accuracy in the zoo catalogue (zoo/catalog.json): figures against their sources,
no figure where none is published, ``netspec zoo`` / ``netspec compare`` columns and
``--sort top1``, and the accuracy charts of ``compare --plot --y top1`` (skipped without
matplotlib)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from netspec.catalog import ZooRow, render_catalog, sort_zoo_rows
from netspec.cli import main
from netspec.diagnostics import UsageError
from netspec.zoo import catalog, catalogued

ZOO = Path(__file__).resolve().parent.parent / "zoo"

# (model, top-1, top-5, the source's words): torchvision's weights metadata (``_metrics``
# ImageNet-1K acc@1 / acc@5 of the named weights), or the paper's table (error rates there:
# accuracy = 100 - error).
PUBLISHED = [
    ("resnet50", 76.130, 92.862, "ResNet50_Weights.IMAGENET1K_V1"),
    ("alexnet", 56.522, 79.066, "AlexNet_Weights.IMAGENET1K_V1"),
    ("vgg16", 71.592, 90.382, "VGG16_Weights.IMAGENET1K_V1"),
    ("googlenet", 69.778, 89.530, "GoogLeNet_Weights.IMAGENET1K_V1"),
    ("inception_v3", 77.294, 93.450, "Inception_V3_Weights.IMAGENET1K_V1"),
    ("mobilenet_v2", 71.878, 90.286, "MobileNet_V2_Weights.IMAGENET1K_V1"),
    ("efficientnet_b0", 77.692, 93.532, "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    ("alexnet_caffe", 57.1, 80.2, "bvlc_alexnet"),
    ("zfnet", 100 - 38.4, 100 - 16.5, "Zeiler & Fergus 2014 Table 2"),
    ("nin", 59.36, None, "Network in Network Imagenet Model"),
    ("mobilenet_v1", 70.6, None, "Howard et al. 2017 Table 6"),
    ("se_resnet50", 100 - 23.29, 100 - 6.62, "Hu et al. 2018 Table 2"),
    ("bn_inception", 100 - 25.2, 100 - 7.82, "Ioffe & Szegedy 2015 Table 3"),
    ("inception_v4", 100 - 20.0, 100 - 5.0, "Szegedy et al. 2017 Table 2"),
    ("inception_resnet_v2", 100 - 19.9, 100 - 4.9, "Szegedy et al. 2017 Table 2"),
    ("xception", 79.0, 94.5, "Chollet 2017 Table 1"),
]

# Not ImageNet classifiers, or no published ImageNet figure: they must show none.
WITHOUT_IMAGENET = [
    "lenet5",  # MNIST
    "stn_mnist",  # MNIST
    "fcn8s",
    "unet",
    "segnet",
    "deeplab_largefov",
    "deepface",
    "netvlad_vgg16",
    "faster_rcnn_vgg16_head",
    "faster_rcnn_vgg16",
    "fcn16s",
    "fcn32s",
    "dcgan_generator",  # a GAN: no classification figure
    "dcgan_discriminator",
    "resnet20_cifar",  # CIFAR-10
    "resnet110_cifar",
    "resnet110_stochastic_depth",
]

# Models that are not ImageNet classifiers carry their own published metric where there is one
# (dense prediction, detection, CIFAR-10): (model, name, value %, dataset).
METRICS = [
    ("fcn8s", "mean IoU", 62.7, "PASCAL VOC 2011 val subset (the paper's segval)"),
    ("fcn16s", "mean IoU", 62.4, "PASCAL VOC 2011 val subset (the paper's segval)"),
    ("fcn32s", "mean IoU", 59.4, "PASCAL VOC 2011 val subset (the paper's segval)"),
    ("deeplab_largefov", "mean IoU", 62.25, "PASCAL VOC 2012 val"),
    ("unet", "IoU", 92.03, "ISBI 2015 cell tracking, PhC-U373"),
    ("faster_rcnn_vgg16", "mAP", 73.2, "PASCAL VOC 2007 test, trained on VOC 2007+2012 trainval"),
    *[
        (f"resnet{depth}_cifar", "test error", error, "CIFAR-10, standard augmentation")
        for depth, error in ((20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (110, 6.43), (1202, 7.93))
    ],
    ("resnet110_stochastic_depth", "test error", 5.25, "CIFAR-10, standard augmentation"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "top1", "top5", "source"), PUBLISHED)
def test_figures_match_their_sources(name: str, top1: float, top5: float | None, source: str) -> None:
    accuracy = catalog()[name].imagenet
    assert accuracy is not None
    assert accuracy.top1 == pytest.approx(top1, abs=1e-9)
    if top5 is None:
        assert accuracy.top5 is None
    else:
        assert accuracy.top5 == pytest.approx(top5, abs=1e-9)
    assert source in accuracy.source
    assert accuracy.evaluation  # resolution and crop


@pytest.mark.unit
def test_every_figure_has_a_checkable_source() -> None:
    for entry in catalog().values():
        accuracy = entry.imagenet
        if accuracy is None:
            continue
        assert 0 < accuracy.top1 < 100 and (accuracy.top5 is None or accuracy.top1 < accuracy.top5 < 100)
        assert "ImageNet" in accuracy.evaluation or "ILSVRC" in accuracy.evaluation
        assert re.search(r"\b\d+x\d+\b", accuracy.evaluation)  # the resolution fed
        if accuracy.source.startswith("torchvision "):
            # The weights' name, as torchvision's weights enums spell it.
            assert "_Weights.IMAGENET1K_V1" in accuracy.source
        else:
            assert any(word in accuracy.source for word in ("Table", "readme", "Model Zoo"))


@pytest.mark.unit
def test_the_catalogue_holds_exactly_the_figures_tested_here_or_torchvision() -> None:
    """A new figure comes with its source: torchvision's metadata (tools/torchvision_accuracy.py
    checks those against torchvision), or a row in PUBLISHED."""
    with_figure = {name for name, entry in catalog().items() if entry.imagenet is not None}
    papers = {
        name
        for name, entry in catalog().items()
        if entry.imagenet and "torchvision" not in entry.imagenet.source
    }
    assert papers == {row[0] for row in PUBLISHED if "_Weights." not in row[3]}
    assert not with_figure & set(WITHOUT_IMAGENET)


@pytest.mark.unit
@pytest.mark.parametrize("name", WITHOUT_IMAGENET)
def test_no_figure_where_none_is_published(name: str) -> None:
    assert catalog()[name].imagenet is None
    assert name in catalog()  # a zoo model


@pytest.mark.unit
@pytest.mark.parametrize(("name", "metric", "value", "dataset"), METRICS)
def test_other_models_carry_their_own_metric(name: str, metric: str, value: float, dataset: str) -> None:
    published = catalog()[name].metric
    assert published is not None
    assert (published.name, published.value, published.dataset) == (metric, value, dataset)
    assert "Table" in published.source


@pytest.mark.unit
def test_only_the_models_listed_carry_another_metric() -> None:
    with_metric = {name for name, entry in catalog().items() if entry.metric is not None}
    assert with_metric == {row[0] for row in METRICS}


def _row(name: str, top1: float | None, top5: float | None) -> ZooRow:
    source = None if top1 is None else "a table"
    return ZooRow(name, name.upper(), "family", 10, 0, 20, "counted", top1, top5, source, "224x224")


@pytest.mark.unit
def test_zoo_table_columns_and_sorting() -> None:
    rows = [_row("a", 70.0, 90.0), _row("b", None, None), _row("c", 76.13, 92.862), _row("d", 59.36, None)]
    assert [r.name for r in sort_zoo_rows(rows, "top1")] == ["c", "a", "d", "b"]
    assert [r.name for r in sort_zoo_rows(rows, "top5")] == ["c", "a", "b", "d"]  # no top-5: last, by name
    assert [r.name for r in sort_zoo_rows(rows, "name")] == ["a", "b", "c", "d"]
    with pytest.raises(UsageError, match="cannot sort by 'accuracy'"):
        sort_zoo_rows(rows, "accuracy")
    text = render_catalog(rows, "text")
    header, _, *lines = text.splitlines()
    assert header.split()[5:7] == ["top-1", "top-5"]
    assert lines[1].split()[5:7] == ["-", "-"]
    assert lines[2].split()[5:7] == ["76.13", "92.862"]  # the source's digits
    data = json.loads(render_catalog(rows, "json"))
    assert data[1]["top1"] is None and data[1]["accuracy_source"] is None
    assert data[2]["accuracy_source"] == "a table"
    assert render_catalog(rows, "csv").splitlines()[0].split(",")[7:11] == [
        "top1",
        "top5",
        "accuracy_source",
        "accuracy_evaluation",
    ]


@pytest.mark.unit
def test_zoo_sort_key_checked_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "--sort", "accuracy"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot sort by 'accuracy'" in captured.err


@pytest.mark.unit
def test_catalogued_by_name_and_by_path(tmp_path: Path) -> None:
    assert catalogued("resnet50") == catalog()["resnet50"]
    assert catalogued(str(ZOO / "resnet50.net")) == catalog()["resnet50"]
    copy = tmp_path / "resnet50.net"
    copy.write_bytes((ZOO / "resnet50.net").read_bytes())
    assert catalogued(str(copy)) == catalog()["resnet50"]  # the same model, elsewhere
    copy.write_bytes((ZOO / "resnet50.net").read_bytes() + b"InnerProduct extra { num_output: 10 }\n")
    assert catalogued(str(copy)) is None  # a changed model: the published figure is not its own
    other = tmp_path / "mine.net"
    other.write_bytes((ZOO / "resnet50.net").read_bytes())
    assert catalogued(str(other)) is None  # not named as a zoo model
    assert catalogued("no_such_model") is None
    assert catalogued(str(tmp_path)) is None


def _compare(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["compare", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.unit
def test_compare_shows_and_sorts_by_published_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    specs = ["lenet5", "squeezenet1_1", "mobilenet_v3_small", "stn_mnist"]
    rows = json.loads(_compare(capsys, *specs, "--format", "json", "--sort", "top1"))
    assert [r["name"] for r in rows] == ["MobileNetV3-Small", "SqueezeNet-1.1", "LeNet-5", "STN MNIST"]
    assert rows[0]["top1"] == 67.668 and rows[0]["top5"] == 87.402
    assert rows[0]["family"] == "MobileNet"
    assert "MobileNet_V3_Small_Weights.IMAGENET1K_V1" in rows[0]["accuracy_source"]
    assert rows[2]["top1"] is None and rows[2]["accuracy_source"] is None and rows[2]["family"] == "LeNet"
    text = _compare(capsys, *specs, "--sort", "top1")
    header = next(line for line in text.splitlines() if line.startswith("model"))
    assert header.split()[-2:] == ["top-1", "top-5"]
    lenet = next(line for line in text.splitlines() if line.startswith("LeNet-5"))
    assert lenet.split()[-2:] == ["-", "-"]
    assert "published ImageNet accuracy" in " ".join(text.split())
    # Without any published figure, the table has no accuracy columns.
    text = _compare(capsys, "lenet5", "stn_mnist")
    assert "top-1" not in text


@pytest.mark.unit
def test_chart_axis_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chart = str(tmp_path / "chart.png")
    cases = [
        (["lenet5", "--y", "top1"], "--x and --y choose the axes of the --plot chart"),
        (["lenet5", "--plot", chart, "--x", "latency", "--y", "top1"], "--x latency plots measured latency"),
        (["lenet5", "--plot", chart, "--x", "latency", "--bench"], "--x latency goes with --y top1"),
    ]
    for args, message in cases:
        if "--plot" in args:
            pytest.importorskip("matplotlib")
        assert main(["compare", *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_accuracy_chart_needs_a_published_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    assert main(["compare", "lenet5", "stn_mnist", "--plot", str(tmp_path / "a.png"), "--y", "top1"]) == 2
    assert "none of these models has a published ImageNet top-1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_accuracy_chart_written_without_unpublished_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "accuracy.png"
    args = ["compare", "lenet5", "squeezenet1_1", "mobilenet_v3_small", "--plot", str(output), "--y", "top1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "left out of the chart (no published ImageNet top-1): LeNet-5" in captured.err


def _rows(count: int) -> list[dict[str, object]]:
    """A crowded cluster (within 1.3x in MACs, 1.5 points in top-1), like the ResNet-50 family,
    plus two models at the same place with the same size."""
    rows: list[dict[str, object]] = [
        {"name": f"model-{i}", "batch": 1, "macs": int(4e9 * 1.05**i), "params": int(25e6 * 1.05**i)}
        | {"peak_activation_bytes": 2**20 * (i + 1), "top1": 76 + 0.25 * i, "family": f"F{i % 3}"}
        for i in range(count)
    ]
    twin = {"batch": 1, "macs": 10**9, "params": 10**8, "peak_activation_bytes": 2**28, "top1": 60.0}
    rows += [{"name": "twin-a", "family": "A"} | twin, {"name": "twin-b", "family": "B"} | twin]
    return rows


@pytest.mark.unit
@pytest.mark.parametrize("y", ["params", "top1"])
def test_charts_label_every_model_without_overlaps_and_hide_no_bubble(y: str) -> None:
    pytest.importorskip("matplotlib")
    from netspec.plot import accuracy_figure, efficiency_figure

    rows = _rows(6)
    figure = efficiency_figure(rows) if y == "params" else accuracy_figure(rows)
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    assert sorted(text.get_text() for text in axes.texts) == sorted(str(r["name"]) for r in rows)
    boxes = [text.get_window_extent(renderer) for text in axes.texts]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)
    bubbles = axes.lines
    assert len(bubbles) == len(rows)
    # Larger bubbles under smaller ones; the twins share their circle, a half each.
    by_z = sorted(bubbles, key=lambda line: line.get_zorder())
    sizes = [line.get_markersize() for line in by_z]
    assert sizes == sorted(sizes, reverse=True)
    circles = [line for line in bubbles if line.get_marker() == "o"]
    assert len(circles) == len(rows) - 2
    sectors = [line.get_marker() for line in bubbles if line.get_marker() != "o"]
    assert len(sectors) == 2  # matplotlib Paths: two half discs
    for sector in sectors:
        assert sector.vertices[:, 0].min() * sector.vertices[:, 0].max() >= -1e-9  # one side only
    # The family legend names every family.
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == sorted({str(r["family"]) for r in rows})


@pytest.mark.unit
def test_accuracy_against_latency() -> None:
    pytest.importorskip("matplotlib")
    from netspec.plot import accuracy_figure

    rows = [r | {"latency_ms": 5.0 * (i + 1), "device": "cpu"} for i, r in enumerate(_rows(3))]
    figure = accuracy_figure(rows, "latency")
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and axes.get_yscale() == "linear"
    assert "latency on cpu" in axes.get_xlabel()
    points = sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in axes.lines)
    assert points[0] == (5.0, 76.0)
    assert math.isclose(points[-1][1], 60.0)  # the twins, at 20 and 25 ms


@pytest.mark.unit
def test_the_served_compare_gives_figures_only_to_unchanged_zoo_models() -> None:
    from netspec.web.server import Workbench
    from netspec.zoo import catalogued_text

    text = (ZOO / "squeezenet1_1.net").read_text(encoding="utf-8")
    assert catalogued_text("squeezenet1_1.net", text) == catalog()["squeezenet1_1"]
    changed = text.replace("num_output: 1000", "num_output: 10")
    assert changed != text and catalogued_text("squeezenet1_1.net", changed) is None
    models = [
        {"text": text, "filename": "squeezenet1_1.net"},
        {"text": changed, "filename": "squeezenet1_1.net"},  # edited in the page: not the zoo's model
    ]
    answer = Workbench().compare({"models": models})
    assert answer["ok"]
    assert [row["top1"] for row in answer["rows"]] == [58.178, None]
