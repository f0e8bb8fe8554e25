"""Running netspec on a spec, a Caffe file or a weights file from the internet (issue 13): what
the diagnostics catalogue (tests/test_catalogue.py) cannot hold because it is not a located spec
error — weight files, output targets, signals, the source-size cap, resource bounds in a child
process, include confinement through symlinks, the bytes of the model. Each case runs the
command line as a user would and checks the exit code, the message, that no traceback is shown,
and that nothing was written (or the old output was left as it was)."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main

pytestmark = pytest.mark.unit

HEAD = "input data: [N, 3, 8, 8]\n"
CONV = HEAD + "Convolution c { num_output: 2  kernel_size: 3 }\n"
OLD = b"an older output that a failed command must leave alone"
SHAPES = {"c.weight": (2, 3, 3, 3), "c.bias": (2,)}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("spec.net").write_text(CONV)
    Path("out.onnx").write_bytes(OLD)
    return tmp_path


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def good_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# ------------------------------------------------------------------ 1. include confinement


def test_an_include_is_read_from_the_path_that_was_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'lib/sub/../t.net' where lib/sub is a symlink: resolved, it is inner/t.net (inside);
    normalized, it would be lib/t.net, a symlink to a file outside. The file read must be the
    one checked, and nothing of the outside file may be shown."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "lib").mkdir(parents=True)
    (project / "inner" / "x").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.net").write_text("SECRET-PASSWORD {\n")
    (project / "inner" / "t.net").write_text("ReLU inside {}\n")
    os.symlink(project / "inner" / "x", project / "lib" / "sub")
    os.symlink(outside / "secret.net", project / "lib" / "t.net")
    spec = project / "main.net"
    spec.write_text(HEAD + 'include "lib/sub/../t.net"\n')
    code, err = run_cli(["check", str(spec)], capsys)
    assert code == 0, err
    assert "SECRET" not in err
    # The direct symlink to the outside file is refused, and its text is not echoed.
    spec.write_text(HEAD + 'include "lib/t.net"\n')
    code, err = run_cli(["check", str(spec)], capsys)
    assert code == 1 and "outside the spec's folder" in err and "SECRET" not in err


# ------------------------------------------------------------------ 2, 11, 12. output targets


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_target_that_is_not_a_regular_file_is_refused_before_any_work(
    folder: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "fifo":
        target = folder / "pipe"
        os.mkfifo(target)
    elif kind == "directory":
        target = folder / "out.d"
        target.mkdir()
    else:
        target = Path("/dev/null")
    before = os.stat(target)
    code, err = run_cli(["compile", "spec.net", "-o", str(target)], capsys)
    assert code == 2
    assert err.startswith(f"netspec compile: error: the output {target} is "), err
    after = os.stat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_is_reported_and_the_old_output_kept(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = files(folder)
    monkeypatch.setattr("netspec.output.os.fsync", full)
    code, err = run_cli(["compile", "spec.net", "-o", "out.onnx"], capsys)
    assert code == 3
    assert err.strip().splitlines()[-1] == "netspec: error: cannot write out.onnx: No space left on device"
    assert Path("out.onnx").read_bytes() == OLD
    assert files(folder) == before


def test_a_missing_folder_is_reported(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files(folder)
    code, err = run_cli(["compile", "spec.net", "-o", "absent/out.onnx"], capsys)
    assert code == 2
    assert err.strip() == (
        "netspec compile: error: cannot write 'absent/out.onnx': the folder 'absent' does not exist"
    )
    assert files(folder) == before


def test_sigterm_while_writing_removes_the_temporary_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import netspec.output

    real = netspec.output.write_model_pieces

    def interrupted(model: object, handle: io.BufferedWriter) -> int:
        handle.write(b"x" * 1000)
        os.kill(os.getpid(), signal.SIGTERM)
        return real(model, handle)  # type: ignore[arg-type]

    before = files(folder)
    monkeypatch.setattr(netspec.output, "write_model_pieces", interrupted)
    code, _ = run_cli(["compile", "spec.net", "-o", "out.onnx"], capsys)
    assert code == 143
    assert Path("out.onnx").read_bytes() == OLD
    assert files(folder) == before
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is lifted again


# ------------------------------------------------------------------ 5. source size


def test_a_spec_past_the_source_cap_is_refused_unread(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("big.net").write_text(HEAD + "ReLU r {}\n" + "#" * 2**20 + "\n")
    before = files(folder)
    code, err = run_cli(["compile", "big.net", "-o", "out.onnx"], capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        "error: big.net is larger than 1,048,576 bytes, the limit for a spec (max_source_bytes)"
    )
    assert "--limit max_source_bytes=VALUE" in err
    assert files(folder) == before and Path("out.onnx").read_bytes() == OLD
    code, _ = run_cli(["check", "big.net", "--limit", "max_source_bytes=2000000"], capsys)
    assert code == 0


def test_includes_count_towards_the_source_cap(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("lib.net").write_text("# " + "x" * 600_000 + "\n")
    Path("other.net").write_text("# " + "y" * 600_000 + "\n")
    Path("main.net").write_text(HEAD + 'include "lib.net"\ninclude "other.net"\nReLU r {}\n')
    code, err = run_cli(["check", "main.net"], capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        "main.net:3:1: error: the spec and its includes hold more than 1,048,576 characters of text "
        "in all (max_source_bytes)"
    )


# ------------------------------------------------------------------ 4, 5. work stays bounded

RESOURCE_CASES = {
    "a loop of long ranges": HEAD + "repeat 100000 { let x = range(1000000) }\n",
    "long lists compared in a loop": HEAD
    + "let a = range(1000000)\nrepeat 100000 { if a == a { ReLU {} } }\n",
    "200 long lists": HEAD + "".join(f"let a{i} = range(1000000)\n" for i in range(200)),
    "a constant list named by many layers": HEAD
    + "let a = range(1000000)\nrepeat 50000 as i { Reshape r{i} { bottom: data  shape: a } }\n",
    "long names": HEAD
    + 'let s0 = "aaaaaaaaaaaaaaaa"\n'
    + "".join(f"let s{i} = s{i - 1} + s{i - 1}\n" for i in range(1, 25))
    + "repeat 400 as i { ReLU {s24}{i} {} }\n",
    "deep scopes": HEAD
    + "template t(d) {\n  if d > 0 {\n    t "
    + "a" * 90
    + "(d - 1)\n    t b(d - 1)\n  }\n  ReLU r {}\n}\nt top(60)\n",
    "a spec just under the source cap": HEAD
    + "".join(f"ReLU r{i} {{}}\n" for i in range(60_000))[: 2**20 - 100],
    "a list literal just under the token cap": HEAD + "let a = [" + "1, " * 49_900 + "1]\n",
    "a list literal past the token cap": HEAD + "let a = [" + "1, " * 300_000 + "1]\n",
}


@pytest.mark.parametrize("text", RESOURCE_CASES.values(), ids=RESOURCE_CASES.keys())
def test_costly_specs_are_refused_within_10_s_of_cpu_and_1_gib(tmp_path: Path, text: str) -> None:
    """In a child process capped at 10 s of CPU time and 1 GiB of address space beyond the
    interpreter's start: a clear refusal (exit 1, naming the limit) or a result, never the caps."""
    import resource

    spec = tmp_path / "spec.net"
    spec.write_text(text)

    def caps() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (10, 10))
        resource.setrlimit(resource.RLIMIT_AS, (2**30 + 2**29, 2**30 + 2**29))

    completed = subprocess.run(
        [sys.executable, "-m", "netspec", "check", str(spec)],
        capture_output=True,
        text=True,
        preexec_fn=caps,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr and "out of memory" not in completed.stderr
    if completed.returncode == 1:
        assert "--limit " in completed.stderr, completed.stderr[:2000]


def test_name_interpolation_is_linear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import resource

    spec = tmp_path / "spec.net"
    spec.write_text(HEAD + "ReLU a" + "{1}" * 30_000 + " {}\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    code, err = run_cli(["check", str(spec)], capsys)
    assert code == 0, err
    # Quadratic, this took minutes; linear, about a second (the bound is for loaded machines).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - before < 20


# ------------------------------------------------------------------ 7, 10, 13. weight files


def write_bomb(path: Path) -> None:
    """An npz whose c.weight member inflates to 200 MB of zeros (the file is a few hundred KB)."""
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    header += b"{'descr': '<f4', 'fortran_order': False, 'shape': (50000000,), }".ljust(117) + b"\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("c.weight.npy", "w", force_zip64=True) as member:
            member.write(header)
            zeros = bytes(2**20)
            for _ in range(200):
                member.write(zeros)
        archive.writestr("c.bias.npy", npz_member(np.zeros(2, np.float32)))


def npz_member(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def corrupt(path: Path) -> None:
    data = bytearray(npz_bytes(good_arrays()))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def polyglot(path: Path) -> None:
    """A file that is a PNG in front and a zip behind: is_zipfile says yes."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100) + npz_bytes(good_arrays()))


def odd_member(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in good_arrays().items():
            archive.writestr(f"{name}.npy", npz_member(array))
        archive.writestr("notes.txt", "hello")


def lying_header(path: Path) -> None:
    """A member whose .npy header claims far more elements than the member holds."""
    array = good_arrays()
    member = npz_member(array["c.weight"]).replace(b"(2, 3, 3, 3)", b"(9, 9, 9, 9)")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("c.weight.npy", member)
        archive.writestr("c.bias.npy", npz_member(array["c.bias"]))


def with_nan(path: Path) -> None:
    arrays = good_arrays()
    arrays["c.bias"][1] = np.nan
    path.write_bytes(npz_bytes(arrays))


def with_huge_float64(path: Path) -> None:
    arrays: dict[str, np.ndarray] = dict(good_arrays())
    arrays["c.weight"] = arrays["c.weight"].astype(np.float64)
    arrays["c.weight"][0, 0, 0, 0] = 1e300
    path.write_bytes(npz_bytes(arrays))


def fp8_safetensors(path: Path) -> None:
    header = json.dumps(
        {
            "c.weight": {"dtype": "F8_E4M3", "shape": [2, 3, 3, 3], "data_offsets": [0, 54]},
            "c.bias": {"dtype": "F32", "shape": [2], "data_offsets": [54, 62]},
        }
    ).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(62))


def safetensors_layout(header: dict[str, object], data: bytes, declared: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if declared is None else declared) + text + data


def gap_safetensors(path: Path) -> None:
    path.write_bytes(
        safetensors_layout(
            {
                "c.weight": {"dtype": "F32", "shape": [2, 3, 3, 3], "data_offsets": [8, 224]},
                "c.bias": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "hidden": {"dtype": "F32", "shape": [1], "data_offsets": [232, 236]},
            },
            bytes(236),
        )
    )


def trailing_safetensors(path: Path) -> None:
    header = {
        "c.weight": {"dtype": "F32", "shape": [2, 3, 3, 3], "data_offsets": [0, 216]},
        "c.bias": {"dtype": "F32", "shape": [2], "data_offsets": [216, 224]},
    }
    path.write_bytes(safetensors_layout(header, bytes(224) + b"PK\x03\x04 another format's bytes"))


def short_tensor_safetensors(path: Path) -> None:
    header = {
        "c.weight": {"dtype": "F32", "shape": [2, 3, 3, 3], "data_offsets": [0, 200]},
        "c.bias": {"dtype": "F32", "shape": [2], "data_offsets": [200, 208]},
    }
    path.write_bytes(safetensors_layout(header, bytes(208)))


def huge_header_safetensors(path: Path) -> None:
    path.write_bytes(safetensors_layout({}, b"", declared=2**62))


def twice_named_safetensors(path: Path) -> None:
    entry = '{"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'
    text = f'{{"c.bias": {entry}, "c.bias": {entry}}}'.encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8))


WEIGHT_FILES = {
    "zip-bomb": (
        "w.npz",
        write_bomb,
        "w.npz: the member 'c.weight.npy' declares 209,715,328 bytes, more than the array 'c.weight' "
        "of the net can hold (66,400 at most); nothing was read",
    ),
    "corrupt": ("w.npz", corrupt, "cannot read weights from w.npz: not a readable npz archive"),
    "polyglot": ("w.npz", polyglot, None),
    "odd-member": (
        "w.npz",
        odd_member,
        "cannot read weights from w.npz: the member 'notes.txt' is not an .npy array",
    ),
    "lying-header": ("w.npz", lying_header, "w.npz: the array 'c.weight' claims shape [9, 9, 9, 9]"),
    "nan": ("w.npz", with_nan, "w.npz: the array 'c.bias' holds NaN or infinite values"),
    "float64-past-float32": (
        "w.npz",
        with_huge_float64,
        "w.npz: the array 'c.weight' holds values past float32's range (about 3.4e38)",
    ),
    "fp8": (
        "w.safetensors",
        fp8_safetensors,
        "w.safetensors: array 'c.weight' has dtype F8_E4M3, which netspec does not read",
    ),
    "safetensors-gap": (
        "w.safetensors",
        gap_safetensors,
        "cannot read weights from w.safetensors: not a safetensors file ('hidden' starts at byte 232 "
        "of the data, not 224)",
    ),
    "safetensors-trailing-bytes": (
        "w.safetensors",
        trailing_safetensors,
        "cannot read weights from w.safetensors: not a safetensors file "
        "(the header's tensors take 224 bytes; the file has 251 after it)",
    ),
    "safetensors-short-tensor": (
        "w.safetensors",
        short_tensor_safetensors,
        "cannot read weights from w.safetensors: not a safetensors file "
        "('c.weight' holds 200 bytes; F32 [2, 3, 3, 3] is 216)",
    ),
    "safetensors-huge-header": (
        "w.safetensors",
        huge_header_safetensors,
        "cannot read weights from w.safetensors: not a safetensors file "
        "(its header size 4,611,686,018,427,387,904 is past the file's end",
    ),
    "safetensors-name-twice": (
        "w.safetensors",
        twice_named_safetensors,
        "cannot read weights from w.safetensors: not a safetensors file (the header names 'c.bias' twice)",
    ),
}


@pytest.mark.parametrize(("name", "make", "message"), WEIGHT_FILES.values(), ids=WEIGHT_FILES.keys())
def test_bad_weight_files_are_refused_with_their_reason(
    folder: Path, name: str, make: object, message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    import resource

    make(folder / name)  # type: ignore[operator]
    before = files(folder)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning may leak
        code, err = run_cli(["compile", "spec.net", "--weights", name, "-o", "out.onnx"], capsys)
    assert code in ((0, 1) if message is None else (1,)), err
    if message is not None:
        assert err.startswith(f"error: {message}"), err
        assert Path("out.onnx").read_bytes() == OLD
    assert "RuntimeWarning" not in err
    assert files(folder) == before
    # The bomb is refused from the zip directory: nothing near its 200 MB is inflated.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # KiB


def test_good_weights_still_load(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("w.npz").write_bytes(npz_bytes(good_arrays()))
    code, err = run_cli(["compile", "spec.net", "--weights", "w.npz", "-o", "out.onnx"], capsys)
    assert code == 0, err


@pytest.mark.ort
def test_run_input_must_be_one_npy_array(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("x.npz").write_bytes(npz_bytes({"data": np.zeros((1, 3, 8, 8), np.float32)}))
    code, err = run_cli(["run", "spec.net", "--input", "data=x.npz"], capsys)
    assert code == 1
    assert (
        err.splitlines()[0]
        == "error: cannot read the array for 'data' from x.npz: it is not one numeric array"
    )


# ------------------------------------------------------------------ 14, 16. text and bytes


def test_bom_and_old_line_ends_compile(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("bom.net").write_bytes(b"\xef\xbb\xbf" + CONV.encode())
    Path("mac.net").write_bytes(CONV.replace("\n", "\r").encode())
    Path("dos.net").write_bytes(CONV.replace("\n", "\r\n").encode())
    for spec in ("bom.net", "mac.net", "dos.net"):
        code, err = run_cli(["check", spec], capsys)
        assert code == 0, err


def test_the_model_depends_on_the_spec_not_the_path_typed(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("sub").mkdir()
    assert run_cli(["compile", "spec.net", "-o", "a.onnx"], capsys)[0] == 0
    assert run_cli(["compile", "./sub/../spec.net", "-o", "b.onnx"], capsys)[0] == 0
    assert run_cli(["compile", str(folder / "spec.net"), "-o", "c.onnx"], capsys)[0] == 0
    assert Path("a.onnx").read_bytes() == Path("b.onnx").read_bytes() == Path("c.onnx").read_bytes()


# ------------------------------------------------------------------ 17. real Caffe files

SEGNET_HEAD = (
    'name: "segnet"\nlayer { name: "data" type: "DenseImageData" top: "data" top: "label"\n'
    '  dense_image_data_param { source: "train.txt" batch_size: 1 } }\n'
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
    "  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n"
)
LEGACY = (
    'name: "v1"\ninput: "data"\ninput_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'
    'layers { name: "c" type: CONVOLUTION bottom: "data" top: "c"\n'
    "  convolution_param { num_output: 4 kernel_size: 3 } }\n"
    'layers { name: "c" type: RELU bottom: "c" top: "c" }\n'
    'layers { name: "crop" type: CROP bottom: "data" bottom: "c" top: "crop" }\n'
)


def test_a_fork_data_layer_is_an_input_when_its_shape_is_given(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("segnet.prototxt").write_text(SEGNET_HEAD)
    code, err = run_cli(["compile", "segnet.prototxt", "--input", "data:1x3x360x480", "-o", "s.onnx"], capsys)
    assert code == 0, err
    # Without the shape, the hint says how to give it.
    code, err = run_cli(["check", "segnet.prototxt"], capsys)
    assert code == 1 and "--input data:1x3x224x224 and netspec reads it as an input" in err


def test_legacy_fork_enums_and_repeated_layer_names_compile(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    Path("v1.prototxt").write_text(LEGACY)
    code, err = run_cli(["compile", "v1.prototxt", "-o", "v1.onnx"], capsys)
    assert code == 0, err
    assert "v1.prototxt:6:16: warning: the layer name 'c' is used again" in err
    model = onnx.load("v1.onnx")
    names = [node.name for node in model.graph.node]
    assert len(names) == len(set(names))
    assert {"c", "c_2", "crop"} <= set(names)


def test_a_member_without_a_name_is_refused() -> None:
    """Found by tools/fuzz.py (a mutated npz): zipfile's ZipInfo.is_dir fails on an empty name."""
    from netspec.diagnostics import NetspecError
    from netspec.weightfile import read_npz

    path = Path(__file__).parent / "data" / "untrusted" / "nameless_member.npz"
    with pytest.raises(NetspecError) as caught:
        read_npz(str(path), {"c.weight": 54})
    assert caught.value.diagnostics[0].message.endswith("the member '' is not an .npy array")
