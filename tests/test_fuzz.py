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


@pytest.fixture(scope="module")
def weight_seeds() -> dict[str, bytes]:
    import random

    return fuzz.weight_seeds(random.Random(0))


@settings(FUZZ_SETTINGS, max_examples=60)
@given(suffix=st.sampled_from([".npz", ".safetensors"]), rng=st.randoms(use_true_random=False))
def test_mutated_weight_files_give_results_or_diagnostics(
    workspace: fuzz.Workspace, weight_seeds: dict[str, bytes], suffix: str, rng: object
) -> None:
    data = fuzz.mutate_bytes(weight_seeds[suffix], rng)  # type: ignore[arg-type]
    path = workspace.write(data, suffix)
    finding = fuzz.run_input(path, TIME_BOUND_S, fuzz.load_weights_check)
    assert finding is None, finding


def test_the_valid_weight_seeds_load(workspace: fuzz.Workspace, weight_seeds: dict[str, bytes]) -> None:
    for suffix, data in weight_seeds.items():
        fuzz.load_weights_check(workspace.write(data, suffix))


@pytest.mark.parametrize(
    ("mutation", "seed_name", "telltale"),
    [
        (fuzz.duplicate_top, "lenet.prototxt", re.compile(r'(top: "\w+") \1|top: \[zt, zt\]')),
        (fuzz.control_characters, "resnet18.net", re.compile(r"[\x1b\x07\x08\r\x9b\u202e]")),
        (fuzz.misplaced_brace, "resnet18.net", re.compile(r"else \{|zz\{|elif 1")),
        (fuzz.line_ends, "resnet18.net", re.compile(r"\ufeff|\r")),
        (fuzz.costly_expression, "resnet18.net", re.compile(r"range\(1000000\)|zs|zz \+ zz")),
        (fuzz.extreme_number, "resnet18.net", None),
    ],
)
def test_issue_13_strategies_make_their_inputs_and_only_diagnostics_follow(
    workspace: fuzz.Workspace, mutation: object, seed_name: str, telltale: re.Pattern[str] | None
) -> None:
    """Each strategy added for issue 13 (duplicate tops, control characters, a stray 'else' or
    an unclosed interpolation, BOM and CR line ends, costly expressions, whole floats past
    2**62) produces what it is for, and netspec answers it with a result or a diagnostic."""
    import random

    seed = next(s for s in SEEDS if s.name == seed_name)
    for number in range(6):
        text = mutation(seed.text, random.Random(number))  # type: ignore[operator]
        if telltale is not None:
            assert telltale.search(text), text[:500]
        data = text.encode("utf-8", errors="surrogateescape")
        assert_only_diagnostics(workspace.write(data, seed.suffix))


def test_a_raw_control_character_in_a_rendering_is_a_finding() -> None:
    from netspec.diagnostics import NetspecError

    class Raw(NetspecError):
        def render(self) -> str:
            return "spec.net:1:1: error: \x1b[2J"

    assert fuzz.unsafe_rendering(Raw([])) is not None
    assert fuzz.unsafe_rendering(NetspecError([])) is None
