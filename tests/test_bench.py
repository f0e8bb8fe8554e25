"""``netspec bench``: the JSON/CSV/text contract, the statistics, the GEMM peak model, and the
progress bar. No timed assertions: only orderings, positivity and exact relations."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netspec.bench import GEMM_SIZES, GemmPeak, Latency, _gemm_model
from netspec.cli import main
from netspec.compiler import load_graph
from netspec.progress import Progress
from netspec.typed import bind

ZOO = Path(__file__).resolve().parent.parent / "zoo"
LENET = str(ZOO / "lenet5.net")
CHEAP = ["--warmup", "1", "--iterations", "3"]

ROW_KEYS = (
    "model",
    "source",
    "batch",
    "device",
    "threads",
    "warmup",
    "iterations",
    "session_ms",
    "median_ms",
    "p90_ms",
    "min_ms",
    "max_ms",
    "throughput",
    "flops",
    "achieved_gflops",
    "gemm_size",
    "gemm_peak_gflops",
    "peak_fraction",
)


@pytest.fixture(scope="module")
def lenet_rows() -> list[dict[str, object]]:
    """One bench run of LeNet-5 at batches 1 and 2, as JSON (shared: each run measures the peak)."""
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", capture)
        assert main(["bench", LENET, "--batch", "1,2", *CHEAP, "--format", "json"]) == 0
    return json.loads(capture.getvalue())


@pytest.mark.unit
def test_latency_percentiles_by_hand() -> None:
    # numpy's linear percentile: p90 of 1..10 sits at position 0.9·9 = 8.1 -> 9 + 0.1·(10 − 9).
    latency = Latency.of([float(v) for v in (7, 1, 10, 3, 5, 2, 9, 4, 8, 6)])
    assert (latency.median, latency.minimum, latency.maximum) == (5.5, 1.0, 10.0)
    assert latency.p90 == pytest.approx(9.1)


@pytest.mark.unit
def test_gemm_peak_rate() -> None:
    # 2·n³ FLOPs per run: 2·1024³ = 2,147,483,648 in 10 ms is 214.7483648 GFLOP/s.
    peak = GemmPeak(device="cpu", threads=None, size=1024, runs=5, best_seconds=0.01)
    assert peak.flop_per_second == pytest.approx(214.7483648e9)


@pytest.mark.ort
def test_gemm_model_multiplies_like_numpy_float64() -> None:
    from onnx import numpy_helper

    from netspec.runtime import create_session

    model = _gemm_model(48)
    b = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    a = np.random.default_rng(5).standard_normal((48, 48)).astype(np.float32)
    session = create_session(model.SerializeToString(), "cpu")
    (c,) = session.run({"a": a}).values()
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.ort
def test_bench_json_schema(lenet_rows: list[dict[str, object]]) -> None:
    assert [(r["model"], r["batch"]) for r in lenet_rows] == [("LeNet-5", 1), ("LeNet-5", 2)]
    flops_at_1 = bind(load_graph(LENET), batch=1).counts.totals.flops
    for row in lenet_rows:
        assert list(row) == list(ROW_KEYS)
        assert row["warmup"] == 1 and row["iterations"] == 3 and row["threads"] is None
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["max_ms"]
        for key in ("session_ms", "throughput", "achieved_gflops", "gemm_peak_gflops", "peak_fraction"):
            assert row[key] > 0, key
        # FLOPs scale with the batch; the derived figures follow from the measured median.
        assert row["flops"] == flops_at_1 * row["batch"]
        assert row["throughput"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3))
        assert row["achieved_gflops"] == pytest.approx(row["flops"] / (row["median_ms"] / 1e3) / 1e9)
        assert row["peak_fraction"] == pytest.approx(row["achieved_gflops"] / row["gemm_peak_gflops"])
        assert row["gemm_size"] in GEMM_SIZES.values()


@pytest.mark.ort
def test_auto_device_is_cpu_without_a_gpu(lenet_rows: list[dict[str, object]]) -> None:
    if shutil.which("nvidia-smi") is not None:
        pytest.skip("a GPU driver is present: auto may pick CUDA")
    assert {row["device"] for row in lenet_rows} == {"cpu"}
    assert {row["gemm_size"] for row in lenet_rows} == {GEMM_SIZES["cpu"]}


@pytest.mark.ort
def test_bench_text_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", LENET, *CHEAP, "--threads", "1", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("device cpu, 1 thread; GEMM peak ")
    size = GEMM_SIZES["cpu"]
    assert f"float32 MatMul {size}x{size} by {size}x{size}" in text
    header = text.splitlines()[2].split()
    assert header[:3] == ["model", "batch", "session"]
    assert text.splitlines()[4].split()[:2] == ["LeNet-5", "1"]

    assert main(["bench", LENET, *CHEAP, "--threads", "1", "--device", "cpu", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",") == list(ROW_KEYS)
    assert len(lines) == 2 and lines[1].startswith("LeNet-5,")


@pytest.mark.ort
def test_bench_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "lenet.onnx"
    assert main(["compile", LENET, "-o", str(model), "--batch", "1"]) == 0
    capsys.readouterr()
    # A fixed batch of 1 cannot run at batch 2: a usage error, nothing on stdout.
    assert main(["bench", str(model), "--batch", "2", *CHEAP, "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "fixed batch of 1" in captured.err and "--dynamic-batch" in captured.err
    assert main(["bench", str(model), *CHEAP, "--device", "cpu", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "lenet" and row["flops"] is None and row["achieved_gflops"] is None


@pytest.mark.unit
def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.net"
    broken.write_text("input data: [N, 3, 8, 8]\nConvolution c { num_output: 2  kernal_size: 3 }\n")
    assert main(["bench", str(broken)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "did you mean 'kernel_size'" in captured.err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", LENET, "--warmup", "-1"])
    assert exit_info.value.code == 2
    assert "expected 0 or a positive integer, got '-1'" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing.onnx")]) == 1
    assert "no such file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    assert main(["bench", str(garbage)]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", LENET, "--batch", "1,0"])
    assert exit_info.value.code == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.unit
def test_progress_is_drawn_by_tqdm_on_a_terminal_only_and_not_when_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import netspec.progress

    monkeypatch.setattr(netspec.progress, "SHOW_AFTER_SECONDS", 0.0)
    terminal = _Terminal()
    with Progress(terminal).steps("resnet50 batch 1", 10) as advance:
        advance(5)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rresnet50 batch 1:") and "/10 [" in drawn
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[1].strip() == ""  # wiped at the end
    for stream, quiet in ((io.StringIO(), False), (_Terminal(), True)):
        with Progress(stream, quiet=quiet).steps("slow", 10) as advance:
            advance(5)
        assert stream.getvalue() == ""


@pytest.mark.unit
def test_progress_waits_before_drawing() -> None:
    terminal = _Terminal()
    with Progress(terminal).steps("quick", 10) as advance:
        advance(10)
    assert terminal.getvalue() == ""


@pytest.mark.ort
def test_io_binding_runs_like_a_plain_run() -> None:
    # The CUDA path binds inputs and outputs on the device; the same binding code on the CPU
    # device must give the outputs of a plain run.
    from netspec.bench import io_bound_runner
    from netspec.compiler import compile_graph
    from netspec.runtime import create_session, random_feeds

    session = create_session(compile_graph(bind(load_graph(LENET), batch=2)).SerializeToString(), "cpu")
    feeds = random_feeds(session, batch=2)
    run, binding = io_bound_runner(session, feeds, "cpu")
    run()
    (bound,) = binding.copy_outputs_to_cpu()
    (plain,) = session.run(feeds).values()
    np.testing.assert_array_equal(bound, plain)


@pytest.mark.ort
def test_the_gpu_check_script_dry_runs_on_the_cpu() -> None:
    """tools/device_check.py runs where no GPU is (``--device cpu``): a GPU machine is lent
    rarely, so a script broken by a change elsewhere must fail here, not there."""
    root = ZOO.parent
    done = subprocess.run(
        [sys.executable, "tools/device_check.py", "lenet5", "--device", "cpu", "--batch", "1", *CHEAP],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| lenet5 | float32 | 1 |" in done.stdout and "all within tolerance" in done.stdout
