"""Fuzzing the front end (issue 6): grammar-aware mutations of every zoo spec and Caffe test file,
and random bytes, go through the entry points the CLI uses; only netspec's own diagnostics may
escape, and every input must finish within a bound (a guard against hangs, not a benchmark).

The mutations live in tools/fuzz.py, which runs the same checks for as long as one likes. Here
hypothesis draws a bounded, derandomized set of examples so that the suite stays fast and
repeatable."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netspec.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import fuzz

pytestmark = pytest.mark.unit

SEEDS = fuzz.corpus()
DIAGNOSTIC_START = re.compile(r"(?:\S+:\d+:\d+: )?error: ")
# Generous: the slowest zoo spec analyses in well under a second; a bound this wide only
# catches runaway inputs, never a slow machine.
TIME_BOUND_S = 30.0

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def workspace() -> Iterator[fuzz.Workspace]:
    folder = fuzz.Workspace()
    yield folder
    folder.close()


def assert_only_diagnostics(path: Path) -> None:
    finding = fuzz.run_input(path, TIME_BOUND_S)
    assert finding is None, f"{path.read_bytes()[:2000]!r}\n{finding}"


def test_the_corpus_holds_the_zoo_and_the_caffe_files() -> None:
    names = {seed.name for seed in SEEDS}
    assert {"resnet50.net", "densenet121.net", "lenet.prototxt", "vgg19_legacy_v1.prototxt"} <= names


@settings(FUZZ_SETTINGS, max_examples=150)
@given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=False), rounds=st.integers(1, 4))
def test_mutated_specs_give_results_or_diagnostics(
    workspace: fuzz.Workspace, seed: fuzz.Seed, rng: object, rounds: int
) -> None:
    data = fuzz.mutant(seed, rng, rounds)  # type: ignore[arg-type]
    assert_only_diagnostics(workspace.write(data, seed.suffix))


@settings(FUZZ_SETTINGS, max_examples=40)
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".net", ".prototxt"]))
def test_random_bytes_give_diagnostics(workspace: fuzz.Workspace, data: bytes, suffix: str) -> None:
    assert_only_diagnostics(workspace.write(data, suffix))


@settings(FUZZ_SETTINGS, max_examples=10)
@given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=False))
def test_the_command_line_reports_mutants_as_spec_errors(
    workspace: fuzz.Workspace, seed: fuzz.Seed, rng: object
) -> None:
    path = workspace.write(fuzz.mutant(seed, rng, 2), seed.suffix)  # type: ignore[arg-type]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), fuzz.time_bound(TIME_BOUND_S):
        code = main(["check", str(path)])
    assert code in (0, 1), err.getvalue()
    assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue()
    if code == 1:  # a located diagnostic (in the file or one it includes), or a file-level one
        assert DIAGNOSTIC_START.match(err.getvalue()), err.getvalue()
    else:
        assert out.getvalue().startswith(f"{path}: ok (")


def test_the_fuzz_tool_runs_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import resource

    address_space = resource.getrlimit(resource.RLIMIT_AS)
    assert fuzz.main(["--seconds", "1", "--seed", "3", "--crashes", str(tmp_path / "crashes")]) == 0
    assert resource.getrlimit(resource.RLIMIT_AS) == address_space  # its memory cap is lifted again
    summary = capsys.readouterr().out
    assert " inputs in " in summary and summary.strip().endswith("0 findings")
    assert not (tmp_path / "crashes").exists()
