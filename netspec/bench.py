"""``netspec bench``: onnxruntime latency, throughput and session-creation time of models at
several batch sizes, and their achieved FLOP rate against the device's measured GEMM peak.

Conventions: latencies are wall-clock seconds of one ``run`` call (inputs already in place: on
CUDA, inputs and outputs are bound on the device with IO binding, so no host copies are timed),
summarised over the timed iterations after the warm-up ones; p90 is numpy's linear-interpolated
90th percentile. Throughput is batch / median latency. Achieved FLOP/s is the model's FLOPs at
that batch (netspec's count, DESIGN.md §5) / median latency; the GEMM peak is the best float32
FLOP rate onnxruntime reaches on a square MatMul on the same device and thread count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netspec.diagnostics import UsageError, error
from netspec.progress import QUIET, Progress
from netspec.runtime import RuntimeFailure, Session, create_session, random_feeds
from netspec.tables import render_csv_table, render_markdown_table, render_text_table

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from netspec.graph import Graph


# Side of the square float32 MatMul that measures the GEMM peak: large enough that the kernel,
# not the call overhead, dominates (1536: 7.2 GFLOP per run; 4096 on a GPU: 137 GFLOP). On the
# 2-core development machine 1024 measured ~10% under 1536, and ResNet-50's convolutions at
# batch 8 then showed 104% "of peak".
GEMM_SIZES = {"cpu": 1536, "cuda": 4096}
GEMM_WARMUP = 2
# The peak is the fastest run: enough runs, over long enough, that one of them has the cores to
# itself on a busy machine (with 5 runs in 0.3 s a loaded 2-core machine measured half its peak).
GEMM_MIN_RUNS, GEMM_MAX_RUNS, GEMM_MIN_SECONDS = 10, 100, 1.0


@dataclass(frozen=True)
class GemmPeak:
    """The best float32 GEMM rate of onnxruntime on ``device``: an [n, n] input times a
    constant [n, n] weight (2·n³ FLOPs per run), the fastest of ``runs`` timed runs."""

    device: str
    threads: int | None
    size: int
    runs: int
    best_seconds: float

    @property
    def flop_per_second(self) -> float:
        return 2 * self.size**3 / self.best_seconds


@dataclass(frozen=True)
class Latency:
    """Summary of per-run wall-clock seconds: median, 90th percentile, minimum, maximum."""

    median: float
    p90: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        values = np.asarray(samples, dtype=np.float64)
        return cls(
            median=float(np.median(values)),
            p90=float(np.percentile(values, 90)),
            minimum=float(values.min()),
            maximum=float(values.max()),
        )


@dataclass(frozen=True)
class BenchResult:
    """One model at one batch size. ``flops`` is None for an .onnx file (netspec counts only
    what it compiles)."""

    name: str
    source: str
    batch: int
    device: str
    threads: int | None
    warmup: int
    iterations: int
    session_seconds: float
    latency: Latency
    flops: int | None
    peak: GemmPeak

    @property
    def throughput(self) -> float:
        """Images per second at the median latency."""
        return self.batch / self.latency.median

    @property
    def achieved_flop_per_second(self) -> float | None:
        return None if self.flops is None else self.flops / self.latency.median

    @property
    def peak_fraction(self) -> float | None:
        achieved = self.achieved_flop_per_second
        return None if achieved is None else achieved / self.peak.flop_per_second

    def as_row(self) -> dict[str, object]:
        """The JSON/CSV record: seconds as milliseconds, FLOP rates in GFLOP/s."""
        achieved = self.achieved_flop_per_second
        return {
            "model": self.name,
            "source": self.source,
            "batch": self.batch,
            "device": self.device,
            "threads": self.threads,
            "warmup": self.warmup,
            "iterations": self.iterations,
            "session_ms": self.session_seconds * 1e3,
            "median_ms": self.latency.median * 1e3,
            "p90_ms": self.latency.p90 * 1e3,
            "min_ms": self.latency.minimum * 1e3,
            "max_ms": self.latency.maximum * 1e3,
            "throughput": self.throughput,
            "flops": self.flops,
            "achieved_gflops": None if achieved is None else achieved / 1e9,
            "gemm_size": self.peak.size,
            "gemm_peak_gflops": self.peak.flop_per_second / 1e9,
            "peak_fraction": self.peak_fraction,
        }


def unique_names(names: Sequence[str], sources: Sequence[str]) -> list[str]:
    """Display names: a model's own name, with its file's stem added where two models share it."""
    repeated = {n for n in names if names.count(n) > 1}
    return [f"{n} ({Path(s).stem})" if n in repeated else n for n, s in zip(names, sources, strict=True)]


def _gemm_model(size: int) -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from netspec.export.onnx import DEFAULT_OPSET, ir_version_for

    weight = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm_peak",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
        initializer=[numpy_helper.from_array(weight, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)])
    model.ir_version = ir_version_for(DEFAULT_OPSET)
    onnx.checker.check_model(model)
    return model


def session_runner(session: Session, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    """A no-argument call that runs ``session`` once on ``feeds``; on CUDA through IO binding.

    NOTE: on CUDA the inputs are copied to the GPU once and the outputs stay there, so the
    timing is the model's, not PCIe transfers'. On CPU a plain ``run`` is as fast.
    """
    if session.device == "cuda":
        run, _ = io_bound_runner(session, feeds, "cuda")
        return run
    names = [o.name for o in session.session.get_outputs()]
    return lambda: session.session.run(names, feeds)


def io_bound_runner(
    session: Session, feeds: dict[str, np.ndarray], device: str
) -> tuple[Callable[[], object], onnxruntime.IOBinding]:
    """A run call with ``feeds`` bound once on ``device`` (``cuda`` or ``cpu``) and outputs
    allocated there by onnxruntime, and the binding (its outputs are the last run's)."""
    import onnxruntime

    ort_session = session.session
    binding = ort_session.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, onnxruntime.OrtValue.ortvalue_from_numpy(value, device, 0))
    for output in ort_session.get_outputs():
        binding.bind_output(output.name, device, 0)
    return (lambda: ort_session.run_with_iobinding(binding)), binding


def time_runs(
    run: Callable[[], object], warmup: int, iterations: int, label: str, progress: Progress = QUIET
) -> list[float]:
    """Seconds of each of ``iterations`` runs after ``warmup`` untimed ones."""
    samples = []
    try:
        with progress.steps(label, warmup + iterations) as advance:
            for index in range(warmup + iterations):
                started = time.perf_counter()
                run()
                elapsed = time.perf_counter() - started
                if index >= warmup:
                    samples.append(elapsed)
                advance(1)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeFailure(f"onnxruntime failed to run {label}: {exc}") from None
    return samples


def measure_gemm_peak(device: str, threads: int | None) -> GemmPeak:
    """The GEMM peak on ``device`` (auto resolves to the device a session really gets)."""
    probe = create_session(_gemm_model(GEMM_SIZES["cpu"]).SerializeToString(), device, threads)
    size = GEMM_SIZES[probe.device]
    session = (
        probe
        if size == GEMM_SIZES["cpu"]
        else create_session(_gemm_model(size).SerializeToString(), probe.device, threads)
    )
    feeds = {"a": np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)}
    run = session_runner(session, feeds)
    time_runs(run, GEMM_WARMUP, 0, "GEMM peak")
    samples: list[float] = []
    while len(samples) < GEMM_MAX_RUNS and (len(samples) < GEMM_MIN_RUNS or sum(samples) < GEMM_MIN_SECONDS):
        samples += time_runs(run, 0, 1, "GEMM peak")
    return GemmPeak(session.device, threads, size, len(samples), min(samples))


@dataclass(frozen=True)
class _Benchable:
    """A model ready to benchmark at one batch: serialized ONNX (or a path) and its FLOPs."""

    model: bytes | str
    flops: int | None


@dataclass(frozen=True)
class ModelSource:
    """One SPEC argument: a .net or .prototxt spec (its graph, compiled with random weights in
    memory at each batch) or an .onnx file used as it is (``graph`` None)."""

    path: str
    name: str
    graph: Graph | None
    fixed_batches: tuple[tuple[str, int], ...] = ()  # (input, batch) of an .onnx file
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --input NAME:SHAPE of a spec

    @classmethod
    def onnx_file(cls, path: str) -> ModelSource:
        """An .onnx file; its inputs' fixed batch sizes are read now, so that a batch it cannot
        run is refused before any timing."""
        import onnx

        if not Path(path).is_file():
            raise error(f"no such file: {path}")
        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise error(f"cannot read {path} as an ONNX model: {exc}") from None
        stored = {initializer.name for initializer in model.graph.initializer}
        fixed = []
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            if value.name not in stored and dims and dims[0].HasField("dim_value"):
                fixed.append((value.name, dims[0].dim_value))
        return cls(path, Path(path).stem, None, tuple(fixed))

    @classmethod
    def spec(
        cls, path: str, graph: Graph, input_shapes: Mapping[str, tuple[int, ...]] | None = None
    ) -> ModelSource:
        return cls(
            path, graph.name or Path(path).stem, graph, input_shapes=tuple((input_shapes or {}).items())
        )

    def at_batch(self, batch: int) -> _Benchable:
        if self.graph is None:
            return _Benchable(self.path, None)
        from netspec.compiler import compile_graph
        from netspec.typed import bind

        typed = bind(self.graph, batch, dict(self.input_shapes))
        return _Benchable(compile_graph(typed).SerializeToString(), typed.counts.totals.flops)

    def check_batch(self, batch: int) -> None:
        """An .onnx file with a fixed batch runs only at that batch."""
        for name, fixed in self.fixed_batches:
            if fixed != batch:
                raise UsageError(
                    f"{self.path}: input '{name}' has a fixed batch of {fixed}, so it cannot "
                    f"run at batch {batch} (compile it with --dynamic-batch, or pass --batch {fixed})"
                )


def run_benchmarks(
    sources: Sequence[ModelSource],
    batches: Sequence[int],
    *,
    device: str = "auto",
    warmup: int = 3,
    iterations: int = 20,
    threads: int | None = None,
    progress: Progress = QUIET,
) -> list[BenchResult]:
    """Benchmark every model at every batch, in argument order. The GEMM peak is measured
    first; it also settles which device ``auto`` means, so every session runs on the same one."""
    for source in sources:
        for batch in batches:
            source.check_batch(batch)
    peak = measure_gemm_peak(device, threads)
    names = unique_names([s.name for s in sources], [s.path for s in sources])
    results = []
    for source, name in zip(sources, names, strict=True):
        for batch in batches:
            benchable = source.at_batch(batch)
            started = time.perf_counter()
            session = create_session(benchable.model, peak.device, threads)
            session_seconds = time.perf_counter() - started
            run = session_runner(session, random_feeds(session, batch=batch))
            samples = time_runs(run, warmup, iterations, f"{name} batch {batch}", progress)
            results.append(
                BenchResult(
                    name=name,
                    source=source.path,
                    batch=batch,
                    device=session.device,
                    threads=threads,
                    warmup=warmup,
                    iterations=iterations,
                    session_seconds=session_seconds,
                    latency=Latency.of(samples),
                    flops=benchable.flops,
                    peak=peak,
                )
            )
    return results


def _peak_line(peak: GemmPeak) -> str:
    if peak.threads:
        threads = f"{peak.threads} thread{'s' if peak.threads > 1 else ''}"
    else:
        threads = "onnxruntime's default threads"
    n = peak.size
    return (
        f"device {peak.device}, {threads}; GEMM peak {peak.flop_per_second / 1e9:,.1f} GFLOP/s "
        f"(float32 MatMul {n}x{n} by {n}x{n} in onnxruntime, best of {peak.runs} runs)"
    )


def _milliseconds(seconds: float) -> str:
    """Three significant digits below 100 ms (0.0507, 4.12, 60.1), whole milliseconds above."""
    value = seconds * 1e3
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _text_rows(results: Sequence[BenchResult]) -> tuple[list[str], list[list[str]], set[int]]:
    header = [
        "model",
        "batch",
        "session ms",
        "median ms",
        "p90 ms",
        "min ms",
        "max ms",
        "images/s",
        "GFLOP/s",
        "of peak",
    ]
    rows = []
    for r in results:
        achieved, fraction = r.achieved_flop_per_second, r.peak_fraction
        rows.append(
            [
                r.name,
                str(r.batch),
                _milliseconds(r.session_seconds),
                *(
                    _milliseconds(s)
                    for s in (r.latency.median, r.latency.p90, r.latency.minimum, r.latency.maximum)
                ),
                f"{r.throughput:,.1f}",
                "-" if achieved is None else f"{achieved / 1e9:,.1f}",
                "-" if fraction is None else f"{fraction:.1%}",
            ]
        )
    return header, rows, set(range(1, len(header)))


def render_results(results: Sequence[BenchResult], fmt: str) -> str:
    """``results`` as text (a peak line and a table), Markdown, CSV or JSON (a list of rows)."""
    records = [r.as_row() for r in results]
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    if fmt == "csv":
        return render_csv_table(list(records[0]), [list(record.values()) for record in records])
    header, rows, numeric = _text_rows(results)
    peak_line = _peak_line(results[0].peak)
    if fmt == "md":
        return f"_{peak_line}_\n\n" + render_markdown_table(header, rows, numeric)
    return peak_line + "\n\n" + render_text_table(header, rows, numeric)
