"""Output files (issue 6, DESIGN.md §8): every writer goes through netspec.output (a temporary
file renamed into place), a failed command leaves an existing file as it was, files that belong
together are replaced together, and the same spec and seed give byte-identical ONNX, in one
process and across processes with different hash seeds."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from netspec.cli import main
from netspec.output import external_data_path, write_atomic, write_atomic_group
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "netspec"

# Templates, a loop, branches and a merge: the parts of the compiler that keep names in dicts.
SPEC = """\
name: "branches"
input data: [N, 3, 16, 16]
template block(c, stride = 1) {
  Convolution conv { num_output: c  kernel_size: 3  stride: stride  pad: 1 }
  BatchNorm bn {}
  ReLU relu {}
}
block stem(8)
repeat 2 as i { block stage{i}(8 * (i + 1), 2) }
Convolution side { bottom: stem  num_output: 16  kernel_size: 1  stride: 4 }
Concat merged { bottom: [stage1, side] }
Pooling pool { pool: AVE  global_pooling: true }
InnerProduct fc { num_output: 10 }
Softmax prob {}
"""


@pytest.mark.unit
def test_every_writer_goes_through_netspec_output() -> None:
    """No module but netspec/output.py opens a file for writing; arrays and figures are saved
    only inside the arguments of a write_atomic* call (into its handle, or as its bytes)."""
    for source in PACKAGE.rglob("*.py"):
        if source.name == "output.py" and source.parent == PACKAGE:
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        handed_to_output = {
            id(inner)
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", "").startswith("write_atomic")
            for argument in call.args
            for inner in ast.walk(argument)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            where = f"{source.relative_to(ROOT)}:{node.lineno}"
            assert name not in ("write_text", "write_bytes", "save_model", "mkstemp"), where
            if name == "open" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                mode = str(node.args[1].value)
                to_devnull = ast.unparse(node.args[0]) == "os.devnull"
                assert not set(mode) & set("wax") or to_devnull, where
            if name in ("save", "savez", "savez_compressed", "savefig", "tofile"):
                assert id(node) in handed_to_output, where


@pytest.mark.unit
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    def half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"new but incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic_group([(target, half_then_fail)])
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.unit
def test_files_that_belong_together_are_replaced_together(tmp_path: Path) -> None:
    model, data = tmp_path / "m.onnx", external_data_path(tmp_path / "m.onnx")
    assert data.name == "m.onnx.data"
    model.write_bytes(b"old model")
    data.write_bytes(b"old data")

    def fail(handle: BinaryIO) -> None:
        raise RuntimeError("serialisation failed")

    with pytest.raises(RuntimeError):
        write_atomic_group([(data, lambda handle: handle.write(b"new data")), (model, fail)])
    assert (model.read_bytes(), data.read_bytes()) == (b"old model", b"old data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    write_atomic_group([(data, lambda h: h.write(b"new data")), (model, lambda h: h.write(b"new model"))])
    assert (model.read_bytes(), data.read_bytes()) == (b"new model", b"new data")


@pytest.mark.unit
def test_permissions_follow_the_umask_or_the_existing_file(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.txt", "x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
        existing = tmp_path / "existing.txt"
        existing.write_text("x")
        existing.chmod(0o600)
        write_atomic(existing, "y")
        assert existing.stat().st_mode & 0o777 == 0o600 and existing.read_text() == "y"
    finally:
        os.umask(old_umask)


@pytest.mark.ort
def test_same_spec_and_seed_give_identical_onnx_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("net.net").write_text(SPEC)
    for name, seed in (("a.onnx", "3"), ("b.onnx", "3"), ("c.onnx", "4")):
        assert main(["compile", "net.net", "-o", name, "--seed", seed]) == 0
    assert Path("a.onnx").read_bytes() == Path("b.onnx").read_bytes()
    assert Path("a.onnx").read_bytes() != Path("c.onnx").read_bytes()  # the seed matters


@pytest.mark.ort
@pytest.mark.parametrize("spec", ["net.net", str(ROOT / "tests/data/caffe/lenet.prototxt")])
def test_same_spec_and_seed_give_identical_onnx_across_processes(tmp_path: Path, spec: str) -> None:
    (tmp_path / "net.net").write_text(SPEC)
    outputs = []
    for hash_seed in ("1", "2"):
        output = tmp_path / f"out{hash_seed}.onnx"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-m", "netspec", "compile", spec, "-o", str(output)],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
        )
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.ort
def test_a_failed_compile_leaves_an_existing_model_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("net.net").write_text(SPEC)
    assert main(["compile", "net.net", "-o", "model.onnx"]) == 0
    good = Path("model.onnx").read_bytes()
    Path("net.net").write_text(SPEC.replace("num_output: 10", "num_output: 0"))
    assert main(["compile", "net.net", "-o", "model.onnx"]) == 1
    assert Path("model.onnx").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "net.net"]


def test_models_are_streamed_as_onnx_save_lays_them_out(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from netspec.compiler import compile_graph, load_graph
    from netspec.output import write_model

    model = compile_graph(bind(load_graph(Path(__file__).resolve().parent.parent / "zoo" / "resnet18.net")))
    # Also a tensor stored in a typed field rather than raw bytes, and one with a doc string (a
    # field numbered after raw_data).
    model.graph.initializer.append(
        helper.make_tensor("extra.float_data", onnx.TensorProto.FLOAT, [3], [1, 2, 3])
    )
    documented = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "extra.documented")
    documented.doc_string = "after raw_data"
    model.graph.initializer.append(documented)
    written = write_model(model, tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    assert written.size == len(data)
    # Streamed, yet the bytes onnx.save writes: one top-level graph field (Netron reads only the
    # last of repeated ones), fields in number order.
    assert data == model.SerializeToString()
    numbers = [number for number, _ in _top_level_fields(data)]
    assert numbers.count(7) == 1 and numbers == sorted(numbers)
    assert set(numbers) == {1, 2, 3, 6, 7, 8, 14}  # ir_version … doc_string, graph, opset, metadata
    assert onnx.load(tmp_path / "m.onnx").SerializeToString() == model.SerializeToString()


def _top_level_fields(data: bytes) -> list[tuple[int, int]]:
    """(field number, wire type) of each top-level field of a protobuf message, in file order."""

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if not byte & 0x80:
                return value, at

    fields, at = [], 0
    while at < len(data):
        key, at = varint(at)
        number, wire = key >> 3, key & 7
        fields.append((number, wire))
        if wire == 0:
            _, at = varint(at)
        elif wire == 2:
            length, at = varint(at)
            at += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return fields


@pytest.mark.ort
def test_a_lowered_model_streams_its_arrays_from_numpy_to_the_same_bytes(tmp_path: Path) -> None:
    from netspec.compiler import compile_graph, load_graph, lower_graph
    from netspec.output import write_model

    typed = bind(load_graph("resnet18"))
    lowered = lower_graph(typed, seed=3)
    # The large arrays are not in the model: the writer takes them from the weights.
    assert len(lowered.pending) == 21 and all(
        not t.HasField("raw_data") for t in lowered.model.graph.initializer if t.name in lowered.pending
    )
    written = write_model(lowered, tmp_path / "streamed.onnx")
    data = (tmp_path / "streamed.onnx").read_bytes()
    assert written.size == len(data)
    assert data == compile_graph(typed, seed=3).SerializeToString()
