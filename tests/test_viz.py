"""netspec viz: DOT structure (nodes, shapes on edges, nested scope clusters, --depth), and the
SVG/PNG path through Graphviz's dot, including the error when dot is missing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.compiler import load_graph
from netspec.typed import bind
from netspec.viz import edge_label, graph_dot

pytestmark = pytest.mark.unit


def edges(dot: str) -> list[tuple[str, str, str]]:
    return re.findall(r'^\s*"([^"]+)" -> "([^"]+)" \[label="([^"]+)"\];$', dot, re.MULTILINE)


def cluster_titles(dot: str) -> list[str]:
    return re.findall(r'subgraph cluster_\d+ \{\n\s*label="([^"]+)"', dot)


def test_edge_label_drops_the_batch_axis() -> None:
    assert edge_label((1, 64, 56, 56)) == "64×56×56"
    assert edge_label((8, 1000)) == "1000"


def test_resnet18_dot_has_shapes_on_edges_and_nested_clusters() -> None:
    dot = graph_dot(bind(load_graph("zoo/resnet18.net")))
    assert dot.startswith('digraph "ResNet-18" {')
    drawn = edges(dot)
    assert ("data", "conv1", "3×224×224") in drawn
    assert ("maxpool", "layer1.0.conv1", "64×56×56") in drawn
    assert ("maxpool", "layer1.0.add", "64×56×56") in drawn  # the identity shortcut
    assert ("layer2.0.downsample.1", "layer2.0.add", "128×28×28") in drawn
    assert ("avgpool", "fc", "512×1×1") in drawn
    # One edge per (producer, reader): 68 layers, each reads one tensor, the 8 adds two.
    assert len(drawn) == 68 + 8
    titles = cluster_titles(dot)
    assert titles[:3] == ["layer1: 2× BasicBlock", "layer1.0: BasicBlock", "layer1.1: BasicBlock"]
    assert "layer2.0.downsample" in titles
    assert len(titles) == 4 + 8 + 3  # stages, blocks, downsample pairs
    # Clusters nest: layer1.0's cluster opens inside layer1's before layer1 closes.
    body = dot[dot.index('label="layer1: ') :]
    assert body.index('label="layer1.0: ') < body.index('label="layer2: ')
    assert dot.count("{") == dot.count("}")


def test_depth_collapses_scopes_into_single_nodes() -> None:
    dot = graph_dot(bind(load_graph("zoo/resnet18.net")), depth=1)
    assert cluster_titles(dot) == []
    assert '"layer1" [peripheries=2' in dot
    assert "2× BasicBlock, 14 layers" in dot
    assert edges(dot) == [
        ("data", "conv1", "3×224×224"),
        ("conv1", "bn1", "64×112×112"),
        ("bn1", "relu", "64×112×112"),
        ("relu", "maxpool", "64×112×112"),
        ("maxpool", "layer1", "64×56×56"),
        ("layer1", "layer2", "64×56×56"),
        ("layer2", "layer3", "128×28×28"),
        ("layer3", "layer4", "256×14×14"),
        ("layer4", "avgpool", "512×7×7"),
        ("avgpool", "fc", "512×1×1"),
    ]


def test_cli_writes_dot(tmp_path: Path) -> None:
    output = tmp_path / "g.dot"
    assert main(["viz", "zoo/lenet5.net", "-o", str(output), "--batch", "4"]) == 0
    text = output.read_text(encoding="utf-8")
    assert '"data" -> "c1" [label="1×32×32"];' in text


def test_svg_without_graphviz_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    output = tmp_path / "g.svg"
    assert main(["viz", "zoo/lenet5.net", "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert "needs Graphviz's 'dot' program" in err and "install Graphviz" in err and "write .dot" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unknown_picture_format_or_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["viz", "zoo/lenet5.net", "-o", str(tmp_path / "g.jpg")]) == 2
    assert "name the output with one of .dot, .svg, .png" in capsys.readouterr().err
    assert main(["viz", "zoo/lenet5.net", "-o", str(tmp_path / "missing" / "g.dot")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_graphviz_renders(tmp_path: Path, suffix: str, magic: bytes) -> None:
    output = tmp_path / f"g{suffix}"
    assert main(["viz", "zoo/lenet5.net", "-o", str(output)]) == 0
    assert magic in output.read_bytes()[:400]
