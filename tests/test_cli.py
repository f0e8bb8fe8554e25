"""The command line contract (DESIGN.md §8): subcommands, exit codes, JSON keys, atomic output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main

TINY = """\
name: "tiny"
input data: [N, 3, 16, 16]
Convolution conv { num_output: 4  kernel_size: 3  pad: 1 }
ReLU relu
Pooling pool { pool: MAX  kernel_size: 2  stride: 2 }
"""

BROKEN = """\
input data: [N, 3, 16, 16]
Convolution conv { num_output: 4  kernal_size: 3 }
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.net"
    path.write_text(TINY)
    return path


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.net"
    path.write_text(BROKEN)
    return path


@pytest.mark.unit
def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys, netspec.cli\n"
        "heavy = ('onnx', 'onnxruntime', 'networkx', 'numpy', 'lark', 'google.protobuf')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.unit
def test_option_choices_match_the_modules_they_name() -> None:
    from netspec import cli, report, runtime

    assert cli.FORMATS == report.FORMATS
    assert cli.DEVICES == runtime.DEVICES


@pytest.mark.unit
def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "netspec" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["compile"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "x.net", "--opset", "9"])
    assert exit_info.value.code == 2
    assert "opset 9 is not supported" in capsys.readouterr().err


@pytest.mark.unit
def test_report_json_has_the_contract_keys(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tiny), "--format", "json", "--batch", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"name", "inputs", "outputs", "totals", "layers"} <= set(data)  # extra keys allowed
    assert data["name"] == "tiny"
    assert data["inputs"] == [{"name": "data", "shape": [2, 3, 16, 16]}]
    assert data["outputs"] == [{"name": "pool", "shape": [2, 4, 8, 8]}]
    assert set(data["totals"]) >= {
        "params",
        "buffers",
        "frozen",
        "macs",
        "flops",
        "weight_bytes",
        "activation_bytes",
        "peak_activation_bytes",
        "layers",
    }
    totals = data["totals"]
    assert totals["params"] == 4 * 3 * 9 + 4
    assert totals["macs"] == 2 * 4 * 16 * 16 * 3 * 9
    assert totals["weight_bytes"] == totals["params"] * 4
    assert totals["layers"] == 3
    conv = data["layers"][0]
    required = {
        "name",
        "type",
        "inputs",
        "outputs",
        "output_shapes",
        "params",
        "buffers",
        "macs",
        "flops",
        "receptive_field",
        "source",
    }
    assert required <= set(conv)
    assert conv["name"] == "conv" and conv["type"] == "Convolution"
    assert conv["inputs"] == ["data"] and conv["outputs"] == ["conv"]
    assert conv["output_shapes"] == [[2, 4, 16, 16]]
    assert conv["flops"] == 2 * conv["macs"] + 2 * 4 * 16 * 16
    assert conv["receptive_field"] == {"size": [3, 3], "stride": [1, 1], "offset": [0, 0], "padding": [1, 1]}
    assert conv["source"] == f"{tiny}:3"
    assert data["layers"][2]["receptive_field"]["size"] == [4, 4]


@pytest.mark.unit
@pytest.mark.parametrize(
    "fmt, marker",
    [
        ("text", "params 112"),
        ("csv", "conv,Convolution,0,0,1,1x4x16x16,112"),
        ("md", "| `conv` | Convolution |"),
    ],
)
def test_report_formats(tiny: Path, capsys: pytest.CaptureFixture[str], fmt: str, marker: str) -> None:
    assert main(["report", str(tiny), "--format", fmt]) == 0
    assert marker in capsys.readouterr().out


@pytest.mark.unit
def test_spec_error_exit_code_and_diagnostic(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(broken)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{broken}:2:35: error: Convolution has no parameter 'kernal_size'; did you mean 'kernel_size'?"
        in err
    )
    assert "^~~~~~~~~~~" in err
    assert "Traceback" not in err


@pytest.mark.unit
def test_check_reports_each_file(tiny: Path, broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tiny), str(broken)]) == 1
    captured = capsys.readouterr()
    assert f"{tiny}: ok (3 layers, 112 params" in captured.out
    assert "kernal_size" in captured.err


@pytest.mark.unit
def test_missing_file_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.net")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.ort
def test_compile_writes_a_checked_model(tiny: Path, tmp_path: Path) -> None:
    import onnx

    output = tmp_path / "tiny.onnx"
    assert main(["compile", str(tiny), "-o", str(output), "--dynamic-batch", "--opset", "17"]) == 0
    model = onnx.load(str(output))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert model.ir_version == 8  # the IR of opset 17's onnx release (1.12)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {i.name for i in model.graph.initializer} == {"conv.weight", "conv.bias"}
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.ort
def test_compile_is_deterministic_per_seed(tiny: Path, tmp_path: Path) -> None:
    outputs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        path = tmp_path / f"{name}.onnx"
        assert main(["compile", str(tiny), "-o", str(path), "--seed", str(seed)]) == 0
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


@pytest.mark.ort
def test_failed_compile_leaves_existing_output_untouched(broken: Path, tmp_path: Path) -> None:
    output = tmp_path / "model.onnx"
    output.write_bytes(b"previous")
    assert main(["compile", str(broken), "-o", str(output)]) == 1
    assert output.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.net", "model.onnx"]


@pytest.mark.ort
def test_run_spec_and_model(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "tiny.onnx"
    assert main(["compile", str(tiny), "-o", str(model)]) == 0
    capsys.readouterr()
    feed = tmp_path / "x.npy"
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(feed, x)
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--device", "cpu", "--input", f"data={feed}", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "pool: [1, 4, 8, 8] float32" in captured.out
    assert "device: cpu" in captured.err
    assert np.load(out)["pool"].shape == (1, 4, 8, 8)
    assert main(["run", str(tiny), "--batch", "3"]) == 0
    assert "pool: [3, 4, 8, 8]" in capsys.readouterr().out


@pytest.mark.ort
def test_run_bad_input_name_is_a_spec_error(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "x.npy"
    np.save(feed, np.zeros((1, 3, 16, 16), np.float32))
    assert main(["run", str(tiny), "--input", f"image={feed}"]) == 1
    assert "'image', which is not an input" in capsys.readouterr().err


@pytest.mark.ort
def test_cuda_request_without_gpu_fails_cleanly(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(tiny), "--device", "cuda"])
    if code == 0:
        assert "device: cuda" in capsys.readouterr().err
    else:
        assert code == 3
        err = capsys.readouterr().err
        assert "CUDA was requested" in err and "Traceback" not in err


@pytest.mark.unit
def test_python_dash_m(tiny: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "netspec", "check", str(tiny)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


@pytest.mark.unit
def test_input_shape_override(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tiny), "--format", "json", "--input", "data:1x3x32x32"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outputs"] == [{"name": "pool", "shape": [1, 4, 16, 16]}]
    assert main(["report", str(tiny), "--input", "image:1x3x32x32"]) == 1
    assert "'image', which is not an input of the network (inputs: data)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tiny), "--input", "data:1xAx3"])
    assert exit_info.value.code == 2


@pytest.mark.ort
@pytest.mark.parametrize(("opset", "ir_version"), [(13, 7), (15, 8), (17, 8), (18, 8), (19, 9), (21, 10)])
def test_the_ir_version_is_the_one_the_opset_needs(opset: int, ir_version: int) -> None:
    """onnx's version table: an IR newer than the opset needs makes older onnxruntime refuse it."""
    from netspec.export.onnx import ir_version_for

    assert ir_version_for(opset) == ir_version


# ------------------------------------------------------------------------------ one inference


@pytest.mark.ort
@pytest.mark.parametrize(
    "command",
    [
        ["run", "lenet5", "--check-reference"],
        ["compile", "lenet5", "-o", "{out}"],
        ["report", "lenet5"],
        ["weights", "lenet5"],
    ],
)
def test_a_command_infers_shapes_once(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Binding is the one place inference runs (netspec.typed.bind): every stage after it
    reads the typed graph, so a whole `netspec run` infers the graph's types exactly once."""
    import netspec.typed

    calls = []
    real = netspec.typed.infer_shapes

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(netspec.typed, "infer_shapes", counted)
    assert main([part.format(out=tmp_path / "m.onnx") for part in command]) == 0
    assert len(calls) == 1


@pytest.mark.unit
def test_batch_binds_the_symbol_the_inputs_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "b.net"
    spec.write_text("input data: [B, 3, 8, 8]\nConvolution conv { num_output: 4 kernel_size: 3 }\n")
    assert main(["report", str(spec), "--batch", "5", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == [{"name": "data", "shape": [5, 3, 8, 8]}]
    assert data["outputs"] == [{"name": "conv", "shape": [5, 4, 6, 6]}]
    spec.write_text("input a: [B, 3, 8, 8]\ninput b: [N, 3, 8, 8]\nEltwise sum { bottom: [a, b] }\n")
    assert main(["report", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "input 'b' names its batch dimension 'N' where input 'a' names it 'B'" in err
    assert "--batch binds the leading dimension of every input" in err
