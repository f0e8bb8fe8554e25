"""The public API (netspec.api through ``import netspec``): loading from a path, a zoo name and
text, reports as records, a DataFrame and notebook HTML, compiling in memory and to a file,
running in onnxruntime and the reference, weights saved and loaded back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netspec

ROOT = Path(__file__).resolve().parent.parent
CAFFE = ROOT / "tests" / "data" / "caffe"

TINY_NET = """name: "tiny"
input data: [N, 3, 8, 8]
Convolution conv { num_output: 4  kernel_size: 3  pad: 1 }
ReLU relu
"""


@pytest.mark.unit
def test_import_netspec_stays_light() -> None:
    probe = (
        "import sys, netspec; netspec.__all__; "
        "print(','.join(m for m in ('numpy', 'onnx', 'onnxruntime', 'netspec.api') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.unit
def test_every_exported_name_resolves() -> None:
    for name in netspec.__all__:
        assert getattr(netspec, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = netspec.nothing  # type: ignore[attr-defined]


@pytest.mark.unit
def test_resnet50_summary_from_a_zoo_name() -> None:
    report = netspec.summary(netspec.load("resnet50"))
    assert report.totals.params == 25_557_032
    assert report.totals.macs == 4_089_184_256  # torchvision's "GFLOPS" convention
    assert sum(row.macs for row in report.rows) == report.totals.macs
    fc = report.rows[-1]
    assert (fc.name, fc.type, fc.output_shapes) == ("fc", "InnerProduct", ((1, 1000),))
    conv1 = report.rows[0]
    assert conv1.receptive_field is not None and conv1.receptive_field.size == (7, 7)
    assert conv1.output_bytes == 64 * 112 * 112 * 4
    assert report.render("json") == netspec.summary(netspec.bind(netspec.load("resnet50"))).render("json")


@pytest.mark.unit
def test_loads_a_net_text_and_a_caffe_text() -> None:
    tiny = netspec.loads(TINY_NET)
    assert [n.name for n in tiny.nodes if n.inputs] == ["conv", "relu"]
    assert netspec.summary(netspec.bind(tiny, batch=2)).totals.params == 4 * 3 * 9 + 4
    caffe_text = (CAFFE / "lenet.prototxt").read_text()
    by_content = netspec.loads(caffe_text)
    by_name = netspec.loads(caffe_text, "lenet.prototxt")
    expected = netspec.load(CAFFE / "lenet.prototxt")
    for graph in (by_content, by_name):
        assert graph.name == expected.name == "LeNet"
        assert netspec.summary(graph).totals == netspec.summary(expected).totals
    with pytest.raises(netspec.NetspecError, match=r"mine\.net:4:1: error: unknown layer type"):
        netspec.loads(TINY_NET.replace("ReLU", "Relu"), "mine.net")


@pytest.mark.unit
def test_bind_input_shapes_and_depth() -> None:
    small = netspec.bind(netspec.load("resnet18"), batch=2, input_shapes={"data": (2, 3, 64, 64)})
    report = netspec.summary(small, depth=1)
    assert report.inputs[0].shape == (2, 3, 64, 64) and report.batch == 2
    layer1 = next(row for row in report.rows if row.name == "layer1")
    assert layer1.scope and layer1.layer_count == 14 and layer1.output_shapes == ((2, 64, 16, 16),)


@pytest.mark.unit
def test_report_html_for_jupyter() -> None:
    html = netspec.summary(netspec.load("lenet5"))._repr_html_()
    assert html.startswith("<p><b>LeNet-5: input data 1x1x32x32 -&gt; output")
    right = '<td style="text-align: right">'
    assert f"<tr><td>c1</td><td>Convolution</td><td>1x6x28x28</td>{right}156</td>" in html
    assert "params 61,706" in html


@pytest.mark.unit
def test_dataframe() -> None:
    pytest.importorskip("pandas")
    frame = netspec.summary(netspec.load("lenet5")).to_dataframe()
    assert list(frame["name"])[:2] == ["c1", "tanh1"]
    assert int(frame["params"].sum()) == 61_706
    assert frame.loc[0, "rf_size"] == (5, 5)


@pytest.mark.unit
def test_dataframe_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="pip install pandas"):
        netspec.summary(netspec.load("lenet5")).to_dataframe()


@pytest.mark.unit
def test_svg_only_with_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = netspec.bind(netspec.loads(TINY_NET))
    monkeypatch.setattr("shutil.which", lambda program: None)
    assert typed._repr_svg_() is None


@pytest.mark.ort
def test_compile_in_memory_equals_the_file(tmp_path: Path) -> None:
    typed = netspec.bind(netspec.load("lenet5"), batch=None)
    model = netspec.compile(typed)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    written = netspec.compile(typed, path=tmp_path / "lenet5.onnx")
    assert written == tmp_path / "lenet5.onnx"
    assert written.read_bytes() == model.SerializeToString()


@pytest.mark.ort
def test_run_in_onnxruntime_and_the_reference() -> None:
    typed = netspec.bind(netspec.load("lenet5"), batch=2)
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    ours = netspec.run(typed, {"data": x})
    reference = netspec.run(typed, {"data": x}, reference=True)
    assert ours["output"].shape == reference["output"].shape == (2, 10)
    assert reference["output"].dtype == np.float64
    np.testing.assert_allclose(ours["output"], reference["output"], rtol=1e-4, atol=1e-5)
    assert list(netspec.run(typed)) == ["output"]  # random inputs


@pytest.mark.ort
def test_weights_saved_and_loaded(tmp_path: Path) -> None:
    typed = netspec.bind(netspec.load("lenet5"))
    weights = netspec.initialize_weights(typed, seed=3)
    netspec.save_weights(tmp_path / "lenet5.npz", weights)
    loaded = netspec.load_weights(tmp_path / "lenet5.npz", typed)
    assert sorted(loaded) == sorted(weights)
    assert all(np.array_equal(loaded[name], weights[name]) for name in weights)
    x = {"data": np.ones((1, 1, 32, 32), np.float32)}
    np.testing.assert_array_equal(
        netspec.run(typed, x, weights=loaded)["output"], netspec.run(typed, x, seed=3)["output"]
    )
