"""``netspec bench --profile``: onnxruntime's kernels mapped back to spec layers and scopes. No
timed assertions: only the mapping, the sums and the orderings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.compiler import load_graph
from netspec.profile import RUNTIME_ROW, fold_name, fusion_groups, spec_layer_of
from netspec.typed import bind

ZOO = Path(__file__).resolve().parent.parent / "zoo"
CHEAP = ["--warmup", "1", "--iterations", "2", "--threads", "1"]
LAYERS = {"conv1", "layer1.0.conv1", "layer1.0.bn2", "inception_3a/1x1", "fc"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kernel", "layer"),
    [
        ("conv1", "conv1"),
        ("layer1.0.bn2_nchwc", "layer1.0.bn2"),
        ("fused fc/Gemm_3", "fc"),
        ("fc/Flatten_2", "fc"),
        ("inception_3a/1x1_nchwc", "inception_3a/1x1"),
        ("inception_3a/1x1", "inception_3a/1x1"),
        ("ReorderOutput", None),
        ("reorder_token_3", None),
    ],
)
def test_kernel_names_map_to_spec_layers(kernel: str, layer: str | None) -> None:
    assert spec_layer_of(kernel, LAYERS) == layer


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "depth", "folded"),
    [
        ("layer1.0.conv1", 0, "layer1.0.conv1"),
        ("layer1.0.conv1", 1, "layer1"),
        ("layer1.0.conv1", 2, "layer1.0"),
        ("conv1", 1, "conv1"),
        ("layer1.0", 2, "layer1.0"),
    ],
)
def test_fold_name(name: str, depth: int, folded: str) -> None:
    assert fold_name(name, depth) == folded


@pytest.mark.unit
def test_a_conv_and_its_element_wise_epilogue_form_one_group() -> None:
    analysis = bind(load_graph(str(ZOO / "resnet18.net")), batch=1)
    macs = {row.name: row.macs for row in analysis.counts.layers}
    groups = fusion_groups(analysis.graph, dict(analysis.types), macs)
    members: dict[str, list[str]] = {}
    for node in analysis.graph.nodes:
        members.setdefault(groups[node.name], []).append(node.name)
    assert members["conv1"] == ["conv1", "bn1", "relu"]
    head = members["layer1.0.conv2"]
    assert head[:2] == ["layer1.0.conv2", "layer1.0.bn2"] and len(head) == 4  # + the Add and its ReLU
    assert members["maxpool"] == ["maxpool"]  # no MACs: heads no group, joins none
    assert members["layer2.0.downsample.0"] == ["layer2.0.downsample.0", "layer2.0.downsample.1"]


def _profile_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["bench", *args, "--profile", "--format", "json", *CHEAP]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.ort
def test_profile_rows_cover_every_layer_once_sorted_with_percentages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = str(ZOO / "resnet18.net")
    (profile,) = _profile_json(capsys, spec)
    rows = profile["rows"]
    assert profile["model"] and profile["batch"] == 1 and profile["runs"] == 2
    times = [row["ms"] for row in rows]
    assert times == sorted(times, reverse=True) and min(times) >= 0
    assert sum(row["percent"] for row in rows) == pytest.approx(100)
    assert sum(times) == pytest.approx(profile["kernel_ms"])
    assert profile["kernel_ms"] <= profile["run_ms"] * 1.001
    graph = bind(load_graph(spec), batch=1).counts
    assert sum(row["macs"] for row in rows) == graph.totals.macs  # every MAC layer ran, once
    for row in rows:
        assert (row["gflops"] is not None) == (row["macs"] > 0 and row["ms"] > 0)
        if row["name"].startswith(RUNTIME_ROW):
            assert row["layers"] == 0
    assert any(row["name"] == "layer1.0.conv1" and "Conv" in row["kernels"] for row in rows)


@pytest.mark.ort
def test_profile_depth_folds_scopes_and_keeps_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(ZOO / "resnet18.net")
    (folded,) = _profile_json(capsys, spec, "--depth", "1")
    names = {row["name"] for row in folded["rows"]}
    assert {"layer1", "layer2", "layer3", "layer4", "conv1", "fc"} <= names
    assert all("." not in name for name in names)
    layers = sum(1 for node in load_graph(spec).nodes if node.inputs)
    assert sum(row["layers"] for row in folded["rows"]) == layers


@pytest.mark.ort
def test_profile_text_markdown_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(ZOO / "lenet5.net")
    assert main(["bench", spec, "--profile", *CHEAP]) == 0
    text = capsys.readouterr().out
    assert "ms in kernels" in text and "GFLOP/s" in text.splitlines()[2]
    assert main(["bench", spec, "--profile", "--format", "md", *CHEAP]) == 0
    assert "| layer | types | kernels | ms | % | cum % | GFLOP/s |" in capsys.readouterr().out
    assert main(["bench", spec, "--profile", "--format", "csv", "--batch", "1,2", *CHEAP]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model,batch,name,types,layers,kernels,ms,percent,macs,flops,gflops"
    assert {line.split(",")[1] for line in lines[1:]} == {"1", "2"}


@pytest.mark.ort
def test_profile_refuses_an_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert main(["bench", str(model), "--profile"]) == 2
    assert "--profile needs a spec" in capsys.readouterr().err
