"""A spec cannot run code or read files outside the include rules, and weight loading executes
nothing (issue 6, DESIGN.md §3): includes resolve relative to the including file or an
``--include-path`` folder; absolute paths and escapes from the spec's folder are refused unless
``--allow-any-include``; expressions go through netspec's own evaluator; npz files are read
without pickle."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main
from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError
from netspec.limits import DEFAULT_INCLUDE_RULES, IncludeRules

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "netspec"
HEAD = "input data: [N, 3, 8, 8]\n"
LIBRARY = "template act(x) {\n  ReLU relu {}\n}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """project/main.net beside project/lib/, and a folder outside the project."""
    (tmp_path / "project" / "lib").mkdir(parents=True)
    (tmp_path / "project" / "lib" / "act.net").write_text(LIBRARY)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "act.net").write_text(LIBRARY)
    return tmp_path


def spec(tree: Path, include: str) -> Path:
    path = tree / "project" / "main.net"
    path.write_text(f'{HEAD}include "{include}"\nact a(1)\n')
    return path


def load_error(path: Path, rules: IncludeRules = DEFAULT_INCLUDE_RULES) -> str:
    with pytest.raises(NetspecError) as caught:
        load_graph(path, includes=rules)
    return caught.value.diagnostics[0].message


def test_includes_inside_the_spec_folder_are_read(tree: Path) -> None:
    graph = load_graph(spec(tree, "lib/act.net"))
    assert [n.name for n in graph.nodes] == ["data", "a.relu"]


def test_dot_dot_that_stays_inside_the_spec_folder_is_allowed(tree: Path) -> None:
    (tree / "project" / "lib" / "wrap.net").write_text('include "../lib/act.net"\n')
    assert [n.name for n in load_graph(spec(tree, "lib/wrap.net")).nodes] == ["data", "a.relu"]


def test_dot_dot_escape_is_refused(tree: Path) -> None:
    message = load_error(spec(tree, "../shared/act.net"))
    real = (tree / "shared" / "act.net").resolve()
    assert message == (
        f"include '../shared/act.net' resolves to {real}, outside the spec's folder "
        f"{(tree / 'project').resolve()}"
    )


def test_absolute_include_is_refused(tree: Path) -> None:
    target = (tree / "project" / "lib" / "act.net").resolve()
    assert load_error(spec(tree, str(target))) == f"include of the absolute path '{target}' is not allowed"


def test_symlink_out_of_the_spec_folder_is_refused(tree: Path) -> None:
    os.symlink(tree / "shared" / "act.net", tree / "project" / "lib" / "link.net")
    assert "outside the spec's folder" in load_error(spec(tree, "lib/link.net"))


def test_search_path_finds_and_allows_a_library_folder(tree: Path) -> None:
    path = spec(tree, "act.net")
    assert load_error(path).startswith("cannot find included file 'act.net'")
    rules = IncludeRules(search_path=(tree / "shared",))
    assert [n.name for n in load_graph(path, includes=rules).nodes] == ["data", "a.relu"]
    # A '..' escape into a search-path folder is inside the allowed folders.
    assert len(load_graph(spec(tree, "../shared/act.net"), includes=rules).nodes) == 2


def test_allow_any_include_lifts_the_rules(tree: Path) -> None:
    absolute = str((tree / "shared" / "act.net").resolve())
    rules = IncludeRules(allow_any=True)
    assert len(load_graph(spec(tree, absolute), includes=rules).nodes) == 2
    assert len(load_graph(spec(tree, "../shared/act.net"), includes=rules).nodes) == 2


def test_include_rules_on_the_command_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = spec(tree, "../shared/act.net")
    assert main(["check", str(path)]) == 1
    assert "outside the spec's folder" in capsys.readouterr().err
    assert main(["check", str(path), "--include-path", str(tree / "shared")]) == 0
    assert main(["check", str(path), "--allow-any-include"]) == 0
    assert capsys.readouterr().out.count(": ok (") == 2


def test_a_device_file_is_not_read_even_when_any_include_is_allowed(tree: Path) -> None:
    path = spec(tree, "/dev/zero")
    message = load_error(path, IncludeRules(allow_any=True))
    assert message == "cannot find included file '/dev/zero' (looked for /dev/zero)"


def test_include_depth_is_capped(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"f{i}.net").write_text(f'include "f{i + 1}.net"\n')
    (tmp_path / "f40.net").write_text(HEAD)
    assert load_error(tmp_path / "f0.net") == "includes nest more than 32 files deep"


def test_expressions_cannot_reach_python(tmp_path: Path) -> None:
    path = tmp_path / "evil.net"
    path.write_text(HEAD + 'let x = __import__("os")\n')
    with pytest.raises(NetspecError) as caught:
        load_graph(path)
    assert caught.value.diagnostics[0].message == "unknown function '__import__'"


def test_no_dynamic_code_execution_in_the_package() -> None:
    """No eval/exec/compile/__import__ and no pickle anywhere in netspec; every np.load says
    allow_pickle=False."""
    forbidden_calls = {"eval", "exec", "compile", "__import__"}
    forbidden_modules = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in forbidden_calls, f"{source}:{node.lineno}"
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules, source
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in forbidden_modules, source
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "np"
            ):
                keywords = {k.arg: k.value for k in node.keywords}
                flag = keywords.get("allow_pickle")
                assert isinstance(flag, ast.Constant) and flag.value is False, f"{source}:{node.lineno}"


class _Touch:
    """Unpickling this creates a file: the proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.path),))  # type: ignore[return-value]


def test_a_pickled_npz_is_refused_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("tiny.net").write_text("input data: [N, 4]\nInnerProduct fc { num_output: 2 }\n")
    marker = tmp_path / "pickle-ran"
    payload = np.empty(1, dtype=object)
    payload[0] = _Touch(marker)
    np.savez("evil.npz", **{"fc.weight": payload})
    assert pickle.dumps(payload)  # the file really holds a pickle
    assert main(["compile", "tiny.net", "--weights", "evil.npz", "-o", "tiny.onnx"]) == 1
    err = capsys.readouterr().err
    assert "evil.npz: an array in the file is pickled Python objects, which netspec does not load" in err
    assert not marker.exists()
    assert not Path("tiny.onnx").exists()


def test_only_regular_files_of_a_sane_size_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.net"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.net"
    with huge.open("wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: no disk is used
    for path, message in (
        (Path("/dev/zero"), "/dev/zero is not a regular file"),
        (fifo, f"{fifo} is not a regular file"),  # opening it would wait for a writer
        (tmp_path, f"{tmp_path} is not a regular file"),
        (huge, f"{huge} is larger than 1,048,576 bytes, the limit for a spec (max_source_bytes)"),
    ):
        with pytest.raises(NetspecError) as caught:
            load_graph(path)
        assert caught.value.diagnostics[0].message == message
