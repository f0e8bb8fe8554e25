"""netspec report: golden text reports, the JSON contract and CSV schema, --depth grouping, and
peak activation memory against hand-computed figures for small nets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.compiler import load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.report import CSV_COLUMNS, SUMMED_KEYS, render, report_data
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.unit


def build(text: str) -> Graph:
    return elaborate(SourceFile("t.net", text))


@pytest.mark.parametrize(
    "model, depth, fmt",
    [("lenet5", 0, "text"), ("resnet18", 2, "text"), ("googlenet", 1, "text"), ("lenet5", 0, "md")],
)
def test_golden_reports(model: str, depth: int, fmt: str, golden: Callable[[str, str], None]) -> None:
    analysis = bind(load_graph(f"zoo/{model}.net"))
    suffix = "txt" if fmt == "text" else fmt
    golden(f"report_{model}_depth{depth}.{suffix}", render(report_data(analysis, depth), fmt))


def test_json_keeps_the_contract_at_every_depth(capsys: pytest.CaptureFixture[str]) -> None:
    layer_keys = {
        "name": str,
        "type": str,
        "inputs": list,
        "outputs": list,
        "output_shapes": list,
        "params": int,
        "buffers": int,
        "macs": int,
        "flops": int,
        "source": str,
        "scope": bool,
        "level": int,
        "layer_count": int,
        "output_bytes": int,
    }
    for depth in ("0", "1", "2"):
        assert main(["report", "zoo/resnet18.net", "--format", "json", "--depth", depth]) == 0
        data = json.loads(capsys.readouterr().out)
        assert {"name", "inputs", "outputs", "totals", "layers"} <= set(data)
        assert data["inputs"] == [{"name": "data", "shape": [1, 3, 224, 224]}]
        assert data["outputs"] == [{"name": "fc", "shape": [1, 1000]}]
        for row in data["layers"]:
            for key, kind in layer_keys.items():
                assert isinstance(row[key], kind), (depth, row["name"], key)
            field = row["receptive_field"]
            assert field is None or set(field) >= {"size", "stride", "offset"}
        # The rows of any depth add up to the totals.
        totals = data["totals"]
        for key in ("params", "buffers", "frozen", "macs", "flops"):
            assert sum(row[key] for row in data["layers"]) == totals[key], (depth, key)
        assert sum(row["output_bytes"] for row in data["layers"]) == totals["activation_bytes"]
        assert sum(row["layer_count"] for row in data["layers"]) == totals["layers"] == 68


def test_depth_one_collapses_the_stages() -> None:
    report = report_data(bind(load_graph("zoo/resnet18.net")), depth=1)
    names = [row.name for row in report.rows]
    assert names == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    layer1 = report.rows[4]
    assert layer1.scope is True and layer1.type == "2× BasicBlock"
    # Two BasicBlocks of 64 channels: 4 convolutions 64·64·3·3, 4 BatchNorms (γ, β) of 64.
    assert layer1.params == 4 * 64 * 64 * 9 + 4 * 2 * 64
    assert layer1.buffers == 4 * 2 * 64
    assert layer1.macs == 4 * 64 * 56 * 56 * 64 * 9
    assert layer1.layer_count == 14
    assert layer1.inputs == ("maxpool",) and layer1.outputs == ("layer1.1.relu",)
    assert layer1.output_shapes == ((1, 64, 56, 56),)
    assert layer1.receptive_field is not None
    assert layer1.receptive_field.size == (43, 43)  # 11 + 4 × (3 − 1) × 4
    assert report.scopes == ()
    # The JSON contract is the records' plain data.
    assert report.to_dict()["layers"][4]["receptive_field"]["size"] == [43, 43]
    depth2 = report_data(bind(load_graph("zoo/resnet18.net")), depth=2)
    assert [h.row.name for h in depth2.scopes] == ["layer1", "layer2", "layer3", "layer4"]
    assert [h.before for h in depth2.scopes] == [4, 6, 8, 10]
    block = next(row for row in depth2.rows if row.name == "layer2.0")
    assert block.type == "BasicBlock" and block.layer_count == 9  # with the downsample pair


def test_csv_has_exact_integers_and_a_total_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "zoo/resnet18.net", "--format", "csv", "--depth", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == CSV_COLUMNS
    *layers, total = rows
    assert [row["name"] for row in layers][4:6] == ["layer1", "layer2"]
    assert layers[4]["scope"] == "1" and layers[4]["rf_size"] == "43x43" and layers[4]["rf_stride"] == "4x4"
    assert total["name"] == "total" and total["params"] == "11689512" and total["macs"] == "1814073344"
    for key in SUMMED_KEYS:
        assert sum(int(row[key]) for row in layers) == int(total[key])


def test_text_uses_human_units_and_states_the_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "zoo/resnet18.net", "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert "params 11,689,512 (11.69M)" in text
    assert "MACs 3,628,146,688 (3.63G)" in text  # 2 × 1,814,073,344
    assert "# MACs: multiply-accumulates" in text and "batch 2" in text
    assert "    layer1.0.conv1 " in text  # indented under layer1 and layer1.0
    assert " MiB " in text


def test_bad_depth_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "zoo/lenet5.net", "--depth", "-1"])
    assert exit_info.value.code == 2
    assert "expected a scope depth of 0 or more" in capsys.readouterr().err


# -- peak activation memory, by hand --------------------------------------------------------


def peak(text: str, batch: int = 1, dtype: str = "float32") -> int:
    return bind(build(text), batch=batch, dtype=dtype).counts.totals.peak_activation_bytes


CHAIN = """
input data: [N, 1, 8, 8]
Convolution conv { num_output: 2  kernel_size: 3  pad: 1 }
ReLU relu
Dropout drop
Pooling pool { pool: MAX  kernel_size: 2  stride: 2 }
InnerProduct fc { num_output: 10 }
"""


def test_peak_of_a_chain() -> None:
    # Batch 2, float32. data 2·1·8·8·4 = 512 B; conv 2·2·8·8·4 = 1024 B; relu overwrites conv
    # (nothing reads conv later); drop is a view; pool 2·2·4·4·4 = 256 B; fc 2·10·4 = 80 B.
    # step conv: data + conv = 1536 (then data dies); relu, drop: 1024; pool: 1024 + 256 = 1280;
    # fc: 256 + 80 = 336.
    assert peak(CHAIN, batch=2) == 1536
    assert peak(CHAIN, batch=2, dtype="float16") == 768
    analysis = bind(build(CHAIN), batch=2)
    totals = analysis.counts.totals
    assert totals.activation_bytes == 1024 + 1024 + 1024 + 256 + 80  # every layer output
    assert [row.output_bytes for row in analysis.counts.layers] == [512, 1024, 1024, 1024, 256, 80]


def test_peak_of_a_residual_block() -> None:
    # float32, batch 1. data 256 B; every conv output 4·8·8·4 = 1024 B.
    # stem: data + stem = 1280; c1: stem (read again by add) + c1 = 2048; r1 in place;
    # c2: stem + r1 + c2 = 3072 (then r1 dies); add overwrites c2: 2048 (then stem dies);
    # out in place: 1024.
    block = """
    input data: [N, 1, 8, 8]
    Convolution stem { num_output: 4  kernel_size: 3  pad: 1 }
    Convolution c1 { num_output: 4  kernel_size: 3  pad: 1 }
    ReLU r1
    Convolution c2 { num_output: 4  kernel_size: 3  pad: 1 }
    Eltwise add { bottom: [c2, stem] }
    ReLU out
    """
    assert peak(block) == 3072


def test_peak_of_a_concat() -> None:
    # data 256 B; a 2·64·4 = 512; b 3·64·4 = 768; cat 1280; head 256.
    # a: 256 + 512 = 768; b: 768 + 768 = 1536 (then data dies); cat: 512 + 768 + 1280 = 2560.
    concat = """
    input data: [N, 1, 8, 8]
    Convolution a { num_output: 2  kernel_size: 1 }
    Convolution b { bottom: data  num_output: 3  kernel_size: 1 }
    Concat cat { bottom: [a, b] }
    Convolution head { num_output: 1  kernel_size: 1 }
    """
    assert peak(concat) == 2560


def test_in_place_needs_a_dead_input_and_never_overwrites_the_graph_input() -> None:
    # relu reads data, the caller's input: a buffer of its own, 256 B; conv's output may not
    # overwrite relu's, which conv2 reads later. Each conv output is 512 B.
    text = """
    input data: [N, 1, 8, 8]
    ReLU relu
    Convolution conv { num_output: 2  kernel_size: 1 }
    Convolution conv2 { bottom: relu  num_output: 2  kernel_size: 1 }
    Eltwise add { bottom: [conv, conv2] }
    """
    # steps: relu 256 + 256 = 512 (then data dies); conv 256 + 512 = 768; conv2 256 + 512 + 512
    # = 1280 (then relu dies); add overwrites conv: 1024.
    assert peak(text) == 1280


def test_caffe_in_place_blobs_get_their_buffer_back(tmp_path: Path) -> None:
    prototxt = tmp_path / "chain.prototxt"
    prototxt.write_text(
        'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 8 dim: 8 }\n'
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        "convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }\n"
        'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
        'layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }\n'
        'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" '
        "inner_product_param { num_output: 10 } }\n",
        encoding="utf-8",
    )
    caffe = bind(load_graph(prototxt), batch=2).counts.totals.peak_activation_bytes
    assert caffe == peak(CHAIN, batch=2) == 1536
