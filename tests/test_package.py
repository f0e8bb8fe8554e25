"""netspec as a package people install: the zoo by name from any folder, its libraries from any
spec, the command-line habits (stdin, stdout, --quiet, --input everywhere), onnxruntime trouble
named clearly, the operators and IR version other tools expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

from netspec.cli import main
from netspec.typed import bind
from netspec.zoo import catalog, resolve_spec, zoo_folder, zoo_names

ROOT = Path(__file__).resolve().parent.parent


def netspec(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "netspec", *args], cwd=cwd, input=stdin, capture_output=True, env=environment
    )


# ------------------------------------------------------------------------------ metadata


@pytest.mark.unit
def test_the_distribution_has_a_name_of_its_own_and_the_metadata_packagers_expect() -> None:
    import netspec

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # "netspec" on PyPI is an unrelated physics package; the import name and command stay netspec.
    assert project["name"] == netspec.DISTRIBUTION == "netspec-compiler"
    assert project["scripts"] == {"netspec": "netspec.__main__:run"}
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Typing :: Typed" in project["classifiers"]
    assert (ROOT / "netspec" / "py.typed").is_file()
    assert "tqdm>=4.66" in project["dependencies"]


# ------------------------------------------------------------------------------ the zoo


@pytest.mark.unit
def test_every_zoo_spec_is_catalogued() -> None:
    import netspec

    # A source tree's top-level zoo/, or the installed package's copy of it.
    assert zoo_folder() in (ROOT / "zoo", Path(netspec.__file__).resolve().parent / "zoo_specs")
    assert zoo_names() == sorted(p.stem for p in (ROOT / "zoo").glob("*.net"))
    assert list(catalog()) == zoo_names()
    assert all(entry.family and entry.counts_source for entry in catalog().values())


@pytest.mark.unit
def test_a_zoo_name_finds_the_zoo_spec_and_an_existing_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_spec("resnet50") == str(zoo_folder() / "resnet50.net")
    assert resolve_spec("resnet50.net") == str(zoo_folder() / "resnet50.net")
    Path("resnet50").write_text('name: "mine"\ninput data: [N, 4]\nInnerProduct fc { num_output: 2 }\n')
    assert resolve_spec("resnet50") == "resnet50"
    assert resolve_spec("nosuchmodel") == "nosuchmodel"
    assert resolve_spec("lib/resnet") == "lib/resnet"  # names, not paths into the zoo


@pytest.mark.unit
def test_commands_take_zoo_names_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "lenet5", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["params"] == 61_706
    assert main(["compare", "lenet5", "alexnet", "--format", "json"]) == 0
    assert [row["params"] for row in json.loads(capsys.readouterr().out)] == [61_706, 61_100_840]
    assert main(["check", "resnt18"]) == 1
    assert "did you mean 'resnet18' (a zoo model)" in capsys.readouterr().err


@pytest.mark.unit
def test_any_spec_can_include_the_zoo_libraries(tmp_path: Path) -> None:
    from netspec.compiler import load_graph

    # resnet50.net copied anywhere still finds lib/resnet.net: the zoo is last on the include path.
    copy = tmp_path / "elsewhere" / "my_resnet50.net"
    copy.parent.mkdir()
    copy.write_text((ROOT / "zoo" / "resnet50.net").read_text())
    assert bind(load_graph(copy)).counts.totals.params == 25_557_032
    # A folder of the user's own takes precedence over the zoo's.
    (tmp_path / "elsewhere" / "lib").mkdir()
    (tmp_path / "elsewhere" / "lib" / "resnet.net").write_text("ReLU only {}\n")
    assert [node.name for node in load_graph(copy).nodes] == ["data", "only"]


@pytest.mark.unit
def test_netspec_zoo_lists_every_model_with_its_counts_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "--format", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == zoo_names()
    assert rows["resnet50"]["params"] == 25_557_032 and rows["resnet50"]["macs"] == 4_089_184_256
    assert rows["resnet50"]["title"] == "ResNet-50" and rows["resnet50"]["family"] == "ResNet"
    assert "torchvision" in rows["resnet50"]["counts_source"]
    assert rows["resnet50"]["top1"] == 76.13 and rows["lenet5"]["top1"] is None
    assert main(["zoo"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == [
        "name",
        "title",
        "family",
        "params",
        "MACs",
        "top-1",
        "top-5",
        "published",
        "figures",
        "from",
    ]
    assert "vgg16" in text and "138.36M" in text


# ------------------------------------------------------------------------------ command-line habits


@pytest.mark.unit
def test_spec_from_stdin(tmp_path: Path) -> None:
    spec = (ROOT / "zoo" / "lenet5.net").read_bytes()
    result = netspec("report", "-", "--format", "json", cwd=tmp_path, stdin=spec)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["macs"] == 416_520
    caffe = (ROOT / "tests" / "data" / "caffe" / "lenet.prototxt").read_bytes()
    result = netspec("check", "-", cwd=tmp_path, stdin=caffe)
    assert result.returncode == 0 and b"431,080 params" in result.stdout, result.stderr
    bad = netspec("check", "-", cwd=tmp_path, stdin=b"input data: [N, 3]\nConvolution c { kernal_size: 3 }\n")
    assert bad.returncode == 1 and bad.stderr.startswith(b"<stdin>:2:")


@pytest.mark.ort
def test_model_to_stdout_and_quiet(tmp_path: Path) -> None:
    import onnx

    result = netspec("compile", "lenet5", "-o", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = onnx.load_from_string(result.stdout)
    assert model.graph.output[0].name == "output" and b"wrote the model to stdout" in result.stderr
    assert list(tmp_path.iterdir()) == []
    quiet = netspec("compile", "lenet5", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == b"" and (tmp_path / "lenet5.onnx").is_file()


@pytest.mark.unit
def test_report_to_a_file_or_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.md"
    assert main(["report", "lenet5", "--format", "md", "-o", str(out)]) == 0
    assert out.read_text().startswith("**LeNet-5**") or "LeNet-5" in out.read_text().splitlines()[0]
    assert capsys.readouterr().out == ""
    assert main(["report", "lenet5", "--format", "md", "-o", "-"]) == 0
    assert capsys.readouterr().out == out.read_text()
    assert main(["report", "lenet5", "-o", str(tmp_path / "missing" / "r.txt")]) == 2


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "-o", "OUT/m.onnx"],
        ["report"],
        ["run"],
        ["bench", "--iterations", "1", "--warmup", "0"],
        ["compare"],
        ["viz", "-o", "OUT/m.dot"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.ort
def test_input_shape_is_accepted_the_same_way_everywhere(command: list[str], tmp_path: Path) -> None:
    name, *options = command
    options = [o.replace("OUT", str(tmp_path)) for o in options]
    result = netspec(name, "lenet5", "--input", "data:1x1x36x36", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if name == "report":
        assert b"1x10" in result.stdout and b"1x6x32x32" in result.stdout  # conv1 on 36x36


@pytest.mark.ort
def test_run_takes_the_batch_from_the_array(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((3, 1, 32, 32), np.float32))
    result = netspec("run", "lenet5", "--input", "data=x.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"output: [3, 10] float32")
    np.save(tmp_path / "bad.npy", np.ones((3, 1, 28, 28), np.float32))
    bad = netspec("run", "lenet5", "--input", "data=bad.npy", cwd=tmp_path)
    assert bad.returncode == 1
    assert b"has shape [3, 1, 28, 28]; the model's input 'data' is [3, 1, 32, 32]" in bad.stderr


# ------------------------------------------------------------------------------ onnxruntime trouble


@pytest.mark.unit
def test_two_onnxruntime_distributions_are_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import netspec.runtime

    monkeypatch.setattr(
        netspec.runtime,
        "onnxruntime_distributions",
        lambda: {"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1"},
    )
    # In two folders of the path (a --target folder over a venv's packages) the first shadows
    # the other and nothing collides.
    monkeypatch.setattr(netspec.runtime, "_share_a_folder", lambda names: False)
    assert main(["run", "lenet5"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(netspec.runtime, "_share_a_folder", lambda names: True)
    assert main(["run", "lenet5"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err
    assert "onnxruntime and onnxruntime-gpu are both installed" in err
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in err


@pytest.mark.ort
def test_version_names_onnx_onnxruntime_and_the_providers_that_load(tmp_path: Path) -> None:
    import onnx

    from netspec import __version__
    from netspec.runtime import onnxruntime_distributions

    result = netspec("--version", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"netspec {__version__} (distribution netspec-compiler)"
    assert lines[1] == f"onnx {onnx.__version__}"
    (distribution, version), *_ = onnxruntime_distributions().items()
    assert lines[2] == f"onnxruntime: {distribution} {version}"
    assert lines[3].startswith("execution providers: ") and "CPUExecutionProvider" in lines[3]


# ------------------------------------------------------------------------------ what other tools expect


@pytest.mark.ort
def test_two_term_sums_are_add_and_longer_ones_sum() -> None:
    from netspec.compiler import compile_graph
    from netspec.elaborate import elaborate
    from netspec.parse import SourceFile

    spec = """input a: [N, 4]
ReLU b { bottom: a }
ReLU c { bottom: a }
Eltwise two { bottom: [b, c] }
Eltwise three { bottom: [b, c, two] }
Eltwise scaled { bottom: [two, three]  coeff: [1, 0.5] }
"""
    model = compile_graph(bind(elaborate(SourceFile("t.net", spec))))
    ops = {node.output[0]: node.op_type for node in model.graph.node}
    assert (ops["two"], ops["three"], ops["scaled"]) == ("Add", "Sum", "Add")


@pytest.mark.ort
def test_compile_folds_batchnorm_by_default_as_exporters_do(tmp_path: Path) -> None:
    import onnx

    assert main(["compile", "resnet18", "-o", str(tmp_path / "r.onnx"), "--input", "data:1x3x32x32"]) == 0
    ops = [node.op_type for node in onnx.load(tmp_path / "r.onnx").graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 20 and ops.count("Add") == 8
    assert "Sum" not in ops


@pytest.mark.ort
@pytest.mark.parametrize("spec", ["squeezenet1_1", "alexnet_caffe"])
def test_identities_are_elided_so_simplifiers_find_nothing(spec: str) -> None:
    # Dropout (and other identities at inference) vanish instead of becoming Identity nodes, as
    # onnxslim and onnxsim would remove them (tools/check_simplifiers.py checks the whole zoo).
    from netspec.compiler import compile_graph, load_graph
    from netspec.runtime import create_session

    graph = load_graph(spec)
    model = compile_graph(bind(graph, input_shapes={"data": (1, 3, 227, 227)}))
    assert "Identity" not in {node.op_type for node in model.graph.node}
    assert [o.name for o in model.graph.output] == list(graph.outputs)
    session = create_session(model.SerializeToString(), "cpu")
    outputs = session.run({"data": np.ones((1, 3, 227, 227), np.float32)})
    assert list(outputs) == list(graph.outputs)


@pytest.mark.ort
def test_a_closed_pipe_on_stdout_stops_quietly(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        f"'{sys.executable}' -m netspec compile resnet18 -o - | head -c 10 > /dev/null; "
        "echo ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.stdout.strip() == "141" and "Error" not in result.stderr, result.stderr


@pytest.mark.unit
def test_every_subpackage_is_in_the_distribution() -> None:
    """pyproject lists the packages the wheel carries: a new subpackage left out of that list
    installs as nothing and fails only in a fresh environment (as CI's clean install does)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "netspec").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
