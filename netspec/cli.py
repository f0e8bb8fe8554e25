"""The ``netspec`` command line. Heavy imports (onnx, onnxruntime, networkx) happen inside the
subcommand that needs them, so ``netspec --help`` starts fast.

Exit codes: 0 success, 1 spec or compile error, 2 usage error, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netspec import DISTRIBUTION, __version__
from netspec.collector import cycle_collector_paused
from netspec.diagnostics import NetspecError, UsageError, error, printable

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command its pipe closed

STDIN = "-"
SPEC_HELP = "a .net spec, a Caffe .prototxt, a zoo model's name (netspec zoo lists them) or - for stdin"

MIN_OPSET, MAX_OPSET = 13, 21

# netspec.report.FORMATS and netspec.runtime.DEVICES, spelled out here so that building the
# parser imports neither (tests/test_cli.py checks that they agree).
FORMATS = ("text", "json", "csv", "md")
DEVICES = ("auto", "cpu", "cuda")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a scope depth of 0 or more, got '{text}'")
    return value


def _opset(text: str) -> int:
    value = _positive_int(text)
    if not MIN_OPSET <= value <= MAX_OPSET:
        raise argparse.ArgumentTypeError(f"opset {value} is not supported (use {MIN_OPSET} to {MAX_OPSET})")
    return value


def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``data:1x3x224x224`` (or ``data:1,3,224,224``)."""
    name, sep, dims = text.partition(":")
    try:
        shape = tuple(int(d) for d in dims.replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME:1x3x224x224, got '{text}'")
    return name, shape


def _input_file(text: str) -> tuple[str, str]:
    """``data=FILE.npy``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, got '{text}'")
    return name, path


def _input_shape_or_file(text: str) -> tuple[str, str, Any]:
    """``data:1x3x224x224`` (a shape) or ``data=FILE.npy`` (an array), whichever separator
    comes first."""
    colon, equals = text.find(":"), text.find("=")
    if equals != -1 and (colon == -1 or equals < colon):
        return ("file", *_input_file(text))
    try:
        return ("shape", *_input_shape(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected NAME:1x3x224x224 (a shape) or NAME=FILE.npy (an array), got '{text}'"
        ) from None


def _add_input_shape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        dest="input_shapes",
        metavar="NAME:SHAPE",
        type=_input_shape,
        action="append",
        default=[],
        help="override an input's shape, e.g. data:1x3x299x299",
    )


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand takes."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the results: no notes, no progress"
    )
    _add_input_rules_options(parser)


def _progress(args: argparse.Namespace) -> Any:
    from netspec.progress import Progress

    return Progress(quiet=args.quiet)


def _note(args: argparse.Namespace, text: str) -> None:
    """A line for the person at the terminal (stderr), unless ``--quiet``."""
    if not args.quiet:
        print(text, file=sys.stderr)


class _VersionAction(argparse.Action):
    """``--version``: netspec's distribution and version, and those of onnx and onnxruntime
    with the execution providers that really load (imported only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from netspec.runtime import RuntimeFailure, loadable_providers, onnxruntime_distributions

        lines = [f"netspec {__version__} (distribution {DISTRIBUTION})"]
        try:
            import onnx

            lines.append(f"onnx {onnx.__version__}")
        except ImportError as exc:
            lines.append(f"onnx: not importable ({exc})")
        installed = onnxruntime_distributions()
        runtime = ", ".join(f"{name} {version}" for name, version in installed.items()) or "not installed"
        lines.append(f"onnxruntime: {runtime}")
        try:
            lines.append(f"execution providers: {', '.join(loadable_providers()) or 'none'}")
        except RuntimeFailure as exc:
            lines.append(f"execution providers: none ({exc})")
        print("\n".join(lines))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netspec",
        description="A declarative graph compiler for convolutional networks: .net specs to "
        "shapes, counts and ONNX.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the versions of netspec, onnx, onnxruntime and exit"
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    compile_ = commands.add_parser("compile", help="compile a spec to an ONNX model")
    compile_.add_argument("spec", help=SPEC_HELP)
    compile_.add_argument(
        "-o", "--output", help="the .onnx file to write, - for stdout (default: SPEC's name with .onnx)"
    )
    batch = compile_.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=_positive_int, default=None, help="fix the batch size N (default 1)")
    batch.add_argument(
        "--dynamic-batch", action="store_true", help="keep the batch dimension symbolic (dim_param N)"
    )
    _add_input_shape_option(compile_)
    _add_weights_option(compile_)
    compile_.add_argument(
        "--seed", type=int, default=0, help="seed of the random initial weights (default 0)"
    )
    compile_.add_argument(
        "--opset", type=_opset, default=None, help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET}, default 21)"
    )
    _add_numerics_options(compile_)
    _add_phase_option(compile_)
    compile_.set_defaults(handler=command_compile)

    report = commands.add_parser("report", help="per-layer shapes, params, MACs, FLOPs, memory")
    report.add_argument("spec", help=SPEC_HELP)
    report.add_argument("--format", choices=(*FORMATS, "html"), default="text")
    report.add_argument(
        "-o",
        "--output",
        help="write the report to this file (default: stdout, also -); html is one offline file",
    )
    report.add_argument(
        "--depth",
        type=_depth,
        default=0,
        help="collapse template scopes deeper than K into one row each (default 0: every layer)",
    )
    report.add_argument(
        "--batch", type=_positive_int, default=None, help="batch size N for the counts (default 1)"
    )
    _add_input_shape_option(report)
    _add_dtype_option(report, "element type the weight and memory bytes are counted in")
    _add_phase_option(report)
    report.set_defaults(handler=command_report)

    check = commands.add_parser("check", help="parse, elaborate and infer shapes; report errors")
    check.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    _add_phase_option(check)
    check.set_defaults(handler=command_check)

    run = commands.add_parser("run", help="run a spec (random weights) or an .onnx model in onnxruntime")
    run.add_argument("model", metavar="SPEC|MODEL.onnx")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument(
        "--input",
        dest="inputs",
        metavar="NAME=FILE.npy|NAME:SHAPE",
        type=_input_shape_or_file,
        action="append",
        default=[],
        help="an input array (default: random normal; its batch is the model's when the spec's "
        "batch is symbolic), or an input's shape",
    )
    run.add_argument(
        "--batch", type=_positive_int, default=None, help="batch size for random inputs (default 1)"
    )
    _add_weights_option(run)
    run.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    run.add_argument("-o", "--output", help="write the outputs to this .npz file")
    _add_numerics_options(run)
    reference = run.add_mutually_exclusive_group()
    reference.add_argument(
        "--reference",
        action="store_true",
        help="run the spec in netspec's own float64 numpy reference executor instead of onnxruntime",
    )
    reference.add_argument(
        "--check-reference",
        action="store_true",
        help="run both and print each output's max relative error; exit 3 above --tolerance",
    )
    run.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest max relative error --check-reference accepts (default 1e-4; 5e-2 for float16)",
    )
    _add_phase_option(run)
    run.set_defaults(handler=command_run)

    convert = commands.add_parser(
        "convert", help="write a Caffe prototxt or an ONNX model (and its weights) as an idiomatic .net spec"
    )
    convert.add_argument("model", metavar="MODEL.prototxt|MODEL.onnx")
    convert.add_argument("-o", "--output", help="the .net file to write (default: MODEL's name with .net)")
    convert.add_argument(
        "--no-templates",
        action="store_true",
        help="write every layer on its own line, without folding repeated blocks into templates",
    )
    _add_input_shape_option(convert)
    _add_phase_option(convert)
    convert.set_defaults(handler=command_convert)

    viz = commands.add_parser("viz", help="draw the layer graph (DOT; SVG or PNG through Graphviz)")
    viz.add_argument("spec", help=SPEC_HELP)
    viz.add_argument("-o", "--output", help="OUT.dot, OUT.svg or OUT.png (default: SPEC's name with .svg)")
    viz.add_argument(
        "--depth", type=_depth, default=0, help="collapse template scopes deeper than K into one node each"
    )
    viz.add_argument("--batch", type=_positive_int, default=None, help="batch size N (default 1)")
    _add_input_shape_option(viz)
    _add_phase_option(viz)
    viz.set_defaults(handler=command_viz)
    _add_bench_parsers(commands)
    _add_weights_parser(commands)
    _add_serve_parser(commands)
    _add_zoo_parser(commands)
    for subcommand in commands.choices.values():
        _add_common_options(subcommand)
    return parser


def _limit_setting(text: str) -> tuple[str, int]:
    """``max_layers=500000`` (underscores allowed in the number)."""
    from netspec.limits import Limits

    name, sep, number = text.partition("=")
    try:
        value = int(number.replace("_", ""))
    except ValueError:
        value = 0
    if not sep or not name or value < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=POSITIVE_INTEGER, got '{text}'")
    if name not in Limits.names():
        raise argparse.ArgumentTypeError(f"unknown limit '{name}' (limits: {', '.join(Limits.names())})")
    return name, value


def _add_input_rules_options(parser: argparse.ArgumentParser) -> None:
    """Options that relax the caps and include rules of netspec.limits (docs/language.md)."""
    parser.add_argument(
        "--limit",
        dest="limits",
        metavar="NAME=VALUE",
        type=_limit_setting,
        action="append",
        default=[],
        help="raise one of the caps on spec size, e.g. max_layers=500000 (see docs/language.md)",
    )
    parser.add_argument(
        "--include-path",
        dest="include_path",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder includes may also be found in and read from (repeatable)",
    )
    parser.add_argument(
        "--allow-any-include",
        action="store_true",
        help="let includes read any file (absolute paths, '..' out of the spec's folder)",
    )


def _limits(args: argparse.Namespace) -> Any:
    from netspec.limits import DEFAULT_LIMITS

    return DEFAULT_LIMITS.with_settings(dict(args.limits))


def _include_rules(args: argparse.Namespace) -> Any:
    from netspec.limits import IncludeRules

    return IncludeRules(tuple(Path(p) for p in args.include_path), args.allow_any_include)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got '{text}'")
    return int(text)


def _batch_list(text: str) -> list[int]:
    """``1,8,32``."""
    return [_positive_int(part) for part in text.split(",")]


def _add_bench_parsers(commands: Any) -> None:
    """``netspec bench`` and ``netspec compare`` (logic in netspec/bench.py, compare.py, plot.py)."""
    bench = commands.add_parser("bench", help="onnxruntime latency and throughput of models")
    bench.add_argument("specs", nargs="+", metavar="SPEC", help=f"{SPEC_HELP}; or an .onnx model")
    bench.add_argument(
        "--batch", type=_batch_list, default=[1], help="batch sizes, comma-separated (default 1)"
    )
    bench.add_argument("--device", choices=DEVICES, default="auto")
    bench.add_argument("--warmup", type=_non_negative_int, default=3, help="untimed runs first (default 3)")
    bench.add_argument("--iterations", type=_positive_int, default=20, help="timed runs (default 20)")
    bench.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime intra-op threads")
    bench.add_argument("--format", choices=FORMATS, default="text")
    _add_input_shape_option(bench)
    bench.add_argument(
        "--profile",
        action="store_true",
        help="per-layer time table from onnxruntime's profiler (slowest first, with %% and GFLOP/s)",
    )
    bench.add_argument(
        "--depth", type=_depth, default=0, help="with --profile: fold layers into scopes K deep"
    )
    _add_phase_option(bench)
    bench.set_defaults(handler=command_bench)

    compare = commands.add_parser("compare", help="models side by side; the efficiency plot")
    compare.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    compare.add_argument(
        "--sort", default=None, help="order by a column: name (ascending) or a number (descending)"
    )
    compare.add_argument("--format", choices=FORMATS, default="text")
    compare.add_argument(
        "--batch", type=_positive_int, default=None, help="batch size N for the counts (default 1)"
    )
    compare.add_argument("--bench", action="store_true", help="add measured latency and throughput")
    compare.add_argument("--device", choices=DEVICES, default="auto", help="for --bench")
    compare.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw the efficiency chart, .png/.svg/.pdf (needs netspec-compiler[plot])",
    )
    compare.add_argument(
        "--y",
        choices=("params", "top1"),
        default="params",
        help="the chart's y axis: params (the efficiency chart, default) or top1 (published accuracy)",
    )
    compare.add_argument(
        "--x",
        choices=("macs", "latency"),
        default="macs",
        help="the chart's x axis: macs (default) or latency (measured: needs --bench; with --y top1)",
    )
    _add_input_shape_option(compare)
    _add_phase_option(compare)
    compare.set_defaults(handler=command_compare)


def _model_source(path: str, args: argparse.Namespace) -> Any:
    from netspec.bench import ModelSource

    if path.endswith(".onnx"):
        return ModelSource.onnx_file(path)
    return ModelSource.spec(path, _load(path, args), dict(args.input_shapes))


def command_bench_profile(args: argparse.Namespace) -> int:
    from netspec.bench import unique_names
    from netspec.profile import profile_model, render_profiles

    for path in args.specs:
        if path.endswith(".onnx"):
            raise UsageError(f"{path}: --profile needs a spec (.net or .prototxt) to name the layers")
    graphs = [_load(path, args) for path in args.specs]
    names = unique_names(
        [g.name or Path(p).stem for g, p in zip(graphs, args.specs, strict=True)], args.specs
    )
    profiles = [
        profile_model(
            graph,
            name,
            batch=batch,
            device=args.device,
            threads=args.threads,
            warmup=args.warmup,
            runs=args.iterations,
            depth=args.depth,
            input_shapes=dict(args.input_shapes),
        )
        for graph, name in zip(graphs, names, strict=True)
        for batch in args.batch
    ]
    sys.stdout.write(render_profiles(profiles, args.format))
    return 0


def command_bench(args: argparse.Namespace) -> int:
    from netspec.bench import render_results, run_benchmarks

    if args.profile:
        return command_bench_profile(args)
    sources = [_model_source(path, args) for path in args.specs]
    results = run_benchmarks(
        sources,
        args.batch,
        device=args.device,
        warmup=args.warmup,
        iterations=args.iterations,
        threads=args.threads,
        progress=_progress(args),
    )
    sys.stdout.write(render_results(results, args.format))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from netspec.compare import check_sort_key, compare_graphs, render_rows, sort_rows

    if args.plot:
        from netspec.plot import check_plot_axes, check_plot_output

        check_plot_output(args.plot)
        check_plot_axes(args.x, args.y, args.bench)
    elif (args.x, args.y) != ("macs", "params"):
        raise UsageError("--x and --y choose the axes of the --plot chart: add --plot OUT.png")
    if args.sort:
        check_sort_key(args.sort, args.bench)
    graphs = [_load(path, args) for path in args.specs]
    rows = compare_graphs(
        args.specs,
        graphs,
        batch=args.batch or 1,
        bench=args.bench,
        device=args.device,
        progress=_progress(args),
        limits=_limits(args),
        input_shapes=dict(args.input_shapes),
    )
    if args.sort:
        rows = sort_rows(rows, args.sort)
    if args.plot:
        from netspec.plot import plot_efficiency, plotted_rows

        plotted, left_out = plotted_rows(rows, args.y)
        if left_out:
            _note(args, f"left out of the chart (no published ImageNet top-1): {', '.join(left_out)}")
        plot_efficiency(plotted, args.plot, args.x, args.y)
        _note(args, f"wrote {args.plot}")
    sys.stdout.write(render_rows(rows, args.format))
    return 0


def _add_dtype_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help=f"{meaning} (default float32)"
    )


def _add_numerics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-bn",
        action="store_true",
        help="keep BatchNormalization nodes and residual scales (default: BatchNorm, a Caffe Scale "
        "after it, Eltwise coefficients and layer scales are folded into the convolution or fully "
        "connected layer before them wherever that is exact)",
    )
    _add_dtype_option(parser, "element type of the model's weights, inputs and outputs")


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="trained weights: .safetensors, .npz (by parameter name) or .caffemodel (default: random)",
    )


def _trained_weights(args: argparse.Namespace, typed: Any) -> Any:
    """The arrays of ``--weights`` mapped onto the typed graph, or None for random weights."""
    if not args.weights:
        return None
    from netspec.weightfile import load_weights

    return load_weights(args.weights, typed)


def _add_phase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--phase",
        choices=("TEST", "TRAIN"),
        default="TEST",
        help="which phase of a Caffe file to read (default TEST: the inference net)",
    )


def _load(spec: str, args: argparse.Namespace) -> Any:
    """Read the SPEC argument (a file, a zoo model's name, or - for stdin); print its warnings
    to stderr."""
    from netspec.compiler import load_graph, load_source
    from netspec.elaborate import read_stdin

    options = {
        "phase": args.phase,
        "input_shapes": dict(getattr(args, "input_shapes", [])),
        "includes": _include_rules(args),
    }
    if spec == STDIN:
        graph = load_source(read_stdin(_limits(args)), _limits(args), **options)
    else:
        graph = load_graph(spec, _limits(args), **options)
    for warning in graph.warnings:
        print(warning.render(), file=sys.stderr)
    return graph


def _bind(args: argparse.Namespace, graph: Any, dtype: str = "float32", batch: int | None = None) -> Any:
    """``graph`` bound at ``batch`` (default ``--batch``, else 1) with the ``--input`` shapes,
    within the ``--limit`` caps: the command's one typed graph."""
    from netspec.typed import bind

    return bind(graph, batch or args.batch or 1, dict(args.input_shapes), dtype=dtype, limits=_limits(args))


def _output_name(spec: str, suffix: str) -> str:
    """The default output file: the spec file's (or zoo model's) name with ``suffix``, in the
    current folder; ``model`` for a spec read from stdin."""
    stem = "model" if spec == STDIN else Path(spec).stem
    return stem + suffix


def command_compile(args: argparse.Namespace) -> int:
    from netspec.compiler import lower_graph
    from netspec.export.onnx import check_model
    from netspec.output import check_output_path, write_model, write_model_to_stream

    started = time.perf_counter()
    output = args.output or _output_name(args.spec, ".onnx")
    if output != STDIN:
        check_output_path(output)
    from netspec.typed import bind

    graph = _load(args.spec, args)
    batch = None if args.dynamic_batch else (args.batch or 1)
    typed = bind(graph, batch, dict(args.input_shapes), dtype=args.dtype, limits=_limits(args))
    lowered = lower_graph(
        typed,
        _trained_weights(args, typed),
        seed=args.seed,
        opset=args.opset,
        fold_bn=not args.keep_bn,
        progress=_progress(args),
    )
    model = lowered.model
    check_model(model)
    if output == STDIN:
        size = write_model_to_stream(lowered, sys.stdout.buffer)
        _note(
            args,
            f"wrote the model to stdout ({size / 2**20:.1f} MiB) in {time.perf_counter() - started:.2f} s",
        )
        return 0
    written = write_model(lowered, output, progress=_progress(args))
    elapsed = time.perf_counter() - started
    if written.data_path is not None:
        _note(
            args,
            f"note: the weights pass protobuf's 2 GiB limit; they are in {written.data_path} "
            f"({written.data_size / 2**30:.2f} GiB), which must stay beside {output}",
        )
    _note(
        args,
        f"wrote {output} ({written.size / 2**20:.1f} MiB, opset {model.opset_import[0].version}) "
        f"in {elapsed:.2f} s",
    )
    return 0


def _write_text_output(args: argparse.Namespace, text: str) -> None:
    """``text`` to ``-o FILE`` (atomically), or to stdout without ``-o`` or with ``-o -``."""
    if not args.output or args.output == STDIN:
        sys.stdout.write(text)
        return
    from netspec.output import write_atomic

    write_atomic(args.output, text)
    _note(args, f"wrote {args.output}")


def command_report(args: argparse.Namespace) -> int:
    from netspec.report import render, report_data

    if args.output and args.output != STDIN:
        from netspec.output import check_output_path  # only here: it imports tempfile and shutil

        check_output_path(args.output)
    analysis = _bind(args, _load(args.spec, args), args.dtype)
    if args.format == "html":
        from netspec.web import render_html

        text = render_html(report_data(analysis, depth=0), depth=args.depth, source=args.spec)
    else:
        text = render(report_data(analysis, depth=args.depth), args.format)
    _write_text_output(args, text)
    return 0


def command_viz(args: argparse.Namespace) -> int:
    from netspec.viz import check_picture_output, graph_dot, write_picture

    output = args.output or _output_name(args.spec, ".svg")
    check_picture_output(output)
    analysis = _bind(args, _load(args.spec, args))
    write_picture(graph_dot(analysis, depth=args.depth), output)
    _note(args, f"wrote {output}")
    return 0


def command_check(args: argparse.Namespace) -> int:
    from netspec.typed import bind

    failures = 0
    with _progress(args).steps("check", len(args.specs)) as advance:
        for path in args.specs:
            advance(1)
            try:
                analysis = bind(_load(path, args), limits=_limits(args))
            except NetspecError as exc:
                failures += 1
                print(exc.render(), file=sys.stderr)
                continue
            totals = analysis.counts.totals
            print(f"{path}: ok ({totals.layers} layers, {totals.params:,} params, {totals.macs:,} MACs)")
    return EXIT_SPEC_ERROR if failures else 0


def _read_feeds(pairs: Sequence[tuple[str, str]], expected: Sequence[str]) -> dict[str, Any]:
    import numpy as np

    feeds = {}
    for name, path in pairs:
        if name not in expected:
            raise error(
                f"--input names '{name}', which is not an input of the model (inputs: {', '.join(expected)})"
            )
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise error(f"cannot read the array for '{name}' from {path}: {exc}") from None
        if not isinstance(loaded, np.ndarray) or loaded.dtype.kind not in "fiub":
            if hasattr(loaded, "close"):
                loaded.close()
            raise error(
                f"cannot read the array for '{name}' from {path}: it is not one numeric array",
                hint="--input NAME=FILE takes an .npy file written by np.save",
            )
        feeds[name] = loaded.astype(np.float32)
    return feeds


def _split_run_inputs(args: argparse.Namespace) -> None:
    """``run --input`` takes arrays (NAME=FILE.npy) and shapes (NAME:SHAPE) in one option."""
    args.feeds = [(name, value) for kind, name, value in args.inputs if kind == "file"]
    args.input_shapes = [(name, value) for kind, name, value in args.inputs if kind == "shape"]


def command_run(args: argparse.Namespace) -> int:
    import numpy as np

    from netspec.output import write_atomic_with

    _split_run_inputs(args)
    check = None
    if args.model.endswith(".onnx"):
        outputs, device, elapsed = _run_onnx_file(args)
    else:
        outputs, device, elapsed, check = _run_spec(args)
    _note(args, f"device: {device}")
    for name, value in outputs.items():
        print(
            f"{name}: {list(value.shape)} {value.dtype}  mean {float(value.mean(dtype=np.float64)):.6g}  "
            f"std {float(value.std(dtype=np.float64)):.6g}"
        )
    _note(args, f"ran in {elapsed * 1000:.1f} ms on {device}")
    if args.output:
        write_atomic_with(args.output, lambda handle: np.savez(handle, **outputs))
    if args.check_reference and check is not None:
        return _check_reference(args, outputs, *check)
    return 0


def _run_onnx_file(args: argparse.Namespace) -> tuple[dict[str, Any], str, float]:
    from netspec.runtime import create_session, random_feeds

    if not os.path.exists(args.model):
        raise error(f"no such file: {args.model}")
    spec_only = {
        "--weights": args.weights,
        "--keep-bn": args.keep_bn,
        "--dtype": args.dtype != "float32",
        "--reference": args.reference,
        "--check-reference": args.check_reference,
        "--input NAME:SHAPE": args.input_shapes,
    }
    for option, given in spec_only.items():
        if given:
            raise error(f"{option} applies to a spec; an .onnx model is run as it is")
    session = create_session(args.model, args.device)
    feeds = random_feeds(session, batch=args.batch or 1, seed=args.seed)
    feeds.update(_read_feeds(args.feeds, session.input_names))
    started = time.perf_counter()
    outputs = session.run(feeds)
    return outputs, session.device, time.perf_counter() - started


def _feed_batch(graph: Any, feeds: dict[str, Any]) -> int | None:
    """The batch of the given arrays, for inputs whose declared first dimension is symbolic;
    None when no such array is given."""
    batches = {}
    for node in graph.input_nodes:
        tensor = node.outputs[0]
        declared = node.layer.params.shape
        if tensor in feeds and declared and isinstance(declared[0], str) and feeds[tensor].ndim:
            batches[tensor] = feeds[tensor].shape[0]
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"'{name}' {batch}" for name, batch in batches.items())
        raise error(f"the --input arrays have different batch sizes ({sizes})")
    return next(iter(batches.values()), None)


def _run_spec(args: argparse.Namespace) -> tuple[dict[str, Any], str, float, tuple[Any, Any, Any] | None]:
    """Run a spec in onnxruntime, or with --reference in the float64 reference executor. The
    graph, weights and inputs onnxruntime ran are returned for --check-reference."""
    from netspec.verify import REFERENCE_DEVICE, sample_inputs
    from netspec.weights import initialize_weights

    graph = _load(args.model, args)
    given = _read_feeds(args.feeds, [node.outputs[0] for node in graph.input_nodes])
    batch = args.batch or _feed_batch(graph, given) or 1
    typed = _bind(args, graph, args.dtype, batch)  # sizes checked before weights are made
    types = typed.types
    for name, array in given.items():
        if array.shape != types[name].dims:
            raise error(
                f"the --input array for '{name}' has shape {list(array.shape)}; the model's input "
                f"'{name}' is {list(types[name].dims)} at batch {batch}",
                hint="give an array of that shape, or --input NAME:SHAPE to change the input's shape",
            )
    weights = _trained_weights(args, typed)
    if weights is None:
        weights = initialize_weights(typed, args.seed)
    feeds = {**sample_inputs(typed, args.seed), **given}
    if args.reference:
        from netspec.reference import run_reference

        started = time.perf_counter()
        outputs = run_reference(graph, weights, feeds)
        return outputs, REFERENCE_DEVICE, time.perf_counter() - started, None

    from netspec.compiler import compile_graph
    from netspec.runtime import create_session

    model = compile_graph(typed, weights, fold_bn=not args.keep_bn)
    session = create_session(model.SerializeToString(), args.device)
    feeds = session.as_inputs(feeds)
    started = time.perf_counter()
    outputs = session.run(feeds)
    elapsed = time.perf_counter() - started
    return outputs, session.device, elapsed, (graph, weights, feeds)


def _check_reference(
    args: argparse.Namespace, outputs: dict[str, Any], graph: Any, weights: Any, feeds: Any
) -> int:
    """Print each output's max relative error against the float64 reference; exit 3 above
    the tolerance."""
    from netspec.reference import run_reference
    from netspec.verify import TOLERANCES, compare_outputs

    tolerance = args.tolerance if args.tolerance is not None else TOLERANCES[args.dtype]
    errors = compare_outputs(outputs, run_reference(graph, weights, feeds))
    for name, value in errors.items():
        verdict = "ok" if value <= tolerance else "ABOVE TOLERANCE"
        print(f"{name}: max relative error vs reference {value:.3g} (tolerance {tolerance:g}) {verdict}")
    if any(value > tolerance for value in errors.values()):
        print(
            f"netspec: error: onnxruntime differs from the float64 reference by more than {tolerance:g}",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    return 0


def command_convert(args: argparse.Namespace) -> int:
    from netspec.compiler import is_onnx_path
    from netspec.convert import convert_caffe
    from netspec.output import write_atomic

    if is_onnx_path(args.model):
        return _convert_onnx(args)
    conversion = convert_caffe(
        args.model,
        phase=args.phase,
        input_shapes=dict(args.input_shapes),
        templates=not args.no_templates,
    )
    for warning in conversion.source.warnings:
        print(warning.render(), file=sys.stderr)
    output = args.output or Path(args.model).with_suffix(".net").name
    write_atomic(output, conversion.text)
    layers = sum(1 for node in conversion.source.nodes if node.inputs)
    templates = len(conversion.templates)
    print(
        f"wrote {output} ({conversion.text.count(chr(10))} lines for {layers} layers, "
        f"{templates} template{'s' if templates != 1 else ''})",
        file=sys.stderr,
    )
    return 0


def _convert_onnx(args: argparse.Namespace) -> int:
    """``netspec convert MODEL.onnx``: the spec, and MODEL.safetensors beside it."""
    from netspec.onnx_import import convert_onnx
    from netspec.output import write_atomic
    from netspec.weightfile import write_weights

    converted = convert_onnx(
        args.model, templates=not args.no_templates, input_shapes=dict(args.input_shapes)
    )
    conversion = converted.conversion
    output = args.output or Path(args.model).with_suffix(".net").name
    weights_path = str(Path(output).with_suffix(".safetensors"))
    write_weights(weights_path, converted.weights)
    write_atomic(output, conversion.text)
    layers = sum(1 for node in conversion.source.nodes if node.inputs)
    templates = len(conversion.templates)
    print(
        f"wrote {output} ({conversion.text.count(chr(10))} lines for {layers} layers, "
        f"{templates} template{'s' if templates != 1 else ''}) and {weights_path} "
        f"({len(converted.weights)} arrays)",
        file=sys.stderr,
    )
    return 0


def _add_weights_parser(commands: Any) -> None:
    """``netspec weights`` (logic in netspec/weightfile.py and netspec/weights.py)."""
    weights = commands.add_parser(
        "weights", help="list the arrays a weights file for a spec holds, or write initial values"
    )
    weights.add_argument("spec", help=SPEC_HELP)
    weights.add_argument("--format", choices=("text", "json"), default="text")
    weights.add_argument("--batch", type=_positive_int, default=None, help="batch size N (default 1)")
    _add_input_shape_option(weights)
    _add_phase_option(weights)
    weights.add_argument(
        "--init", action="store_true", help="write the initial values (each array's filler) to -o FILE"
    )
    weights.add_argument("-o", "--output", help="with --init: the .safetensors or .npz file to write")
    weights.add_argument("--seed", type=int, default=0, help="with --init: seed of the random values")
    weights.set_defaults(handler=command_weights)


def command_weights(args: argparse.Namespace) -> int:
    from netspec.weightfile import array_listing, render_listing, write_weights
    from netspec.weights import initialize_weights

    if args.init != bool(args.output):
        raise UsageError("--init and -o go together: netspec weights SPEC --init -o FILE")
    graph = _load(args.spec, args)
    typed = _bind(args, graph)
    if not args.init:
        sys.stdout.write(render_listing(graph.name, array_listing(typed), args.format))
        return 0
    arrays = initialize_weights(typed, args.seed)
    write_weights(args.output, arrays)
    print(f"wrote {args.output} ({len(arrays)} arrays, seed {args.seed})", file=sys.stderr)
    return 0


def _add_zoo_parser(commands: Any) -> None:
    """``netspec zoo`` (logic in netspec/zoo.py and netspec/catalog.py)."""
    zoo = commands.add_parser("zoo", help="list the zoo's models: name, title, params, MACs, figures' source")
    zoo.add_argument("--format", choices=FORMATS, default="text")
    zoo.add_argument(
        "--sort", default=None, help="order by name (ascending), params, macs, top1 or top5 (descending)"
    )
    zoo.set_defaults(handler=command_zoo)


def command_zoo(args: argparse.Namespace) -> int:
    from netspec.catalog import ZOO_SORT_KEYS, render_catalog, sort_zoo_rows, zoo_rows

    if args.sort and args.sort not in ZOO_SORT_KEYS:
        sort_zoo_rows([], args.sort)  # the usage error, before any work
    rows = zoo_rows(progress=_progress(args))
    if args.sort:
        rows = sort_zoo_rows(rows, args.sort)
    sys.stdout.write(render_catalog(rows, args.format))
    return 0


def _add_serve_parser(commands: Any) -> None:
    """``netspec serve`` (logic in netspec/web/server.py)."""
    serve = commands.add_parser(
        "serve", help="a local web page: edit a spec, see its diagnostics and report live"
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="the port to listen on (default 8765; 0: any free one)"
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the interface to listen on (default 127.0.0.1: this machine only; anything else warns)",
    )
    serve.set_defaults(handler=command_serve)


def command_serve(args: argparse.Namespace) -> int:
    from netspec.web.server import LOOPBACK_HOSTS, make_server

    if args.include_path or args.allow_any_include:
        raise UsageError("serve reads only the zoo and what the page sends; includes reach only the zoo")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"netspec serve: warning: listening on {args.host}, not 127.0.0.1: other machines can "
            "reach this page and have this machine compile what they send",
            file=sys.stderr,
        )
    try:
        server = make_server(args.host, args.port, _limits(args))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host, port = server.server_address[:2]
    assert isinstance(host, str)  # an AF_INET/AF_INET6 socket's host is text; only typeshed allows bytes
    shown = f"[{host}]" if ":" in host else host
    print(f"netspec serve: http://{shown}:{port}/ (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# Commands that only analyse: they build large, acyclic structures (AST, nodes, types, rows) and
# exit, so the cycle collector runs paused for the whole command (netspec.collector); at 4,209
# layers it spent ~30 ms of a report walking them.
ANALYSIS_COMMANDS = frozenset({"report", "check", "compare", "viz", "zoo"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ANALYSIS_COMMANDS:
            with cycle_collector_paused():
                return int(args.handler(args))
        return int(args.handler(args))
    except NetspecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC_ERROR
    except UsageError as exc:
        print(f"netspec {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader of stdout went away (``netspec compile m -o - | head -c 10``): stop quietly,
        # as a command killed by SIGPIPE does, and keep Python from failing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as exc:
        from netspec.output import Terminated

        return 143 if isinstance(exc, Terminated) else 130
    except MemoryError:
        print(
            "netspec: error: out of memory (the network's tensors or weights are too large for this "
            "machine; see --limit in docs/language.md)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    except Exception as exc:
        from netspec.output import OutputError
        from netspec.runtime import RuntimeFailure

        if isinstance(exc, RuntimeFailure | OutputError):
            print(f"netspec: error: {printable(str(exc))}", file=sys.stderr)
            return EXIT_RUNTIME
        if args.debug:
            raise
        print(
            f"netspec: internal error: {type(exc).__name__}: {exc}\n"
            "  (this is a bug in netspec; run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
