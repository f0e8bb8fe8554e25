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

from netspec import __version__
from netspec.diagnostics import NetspecError, UsageError, error, printable

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netspec",
        description="A declarative graph compiler for convolutional networks: .net specs to "
        "shapes, counts and ONNX.",
    )
    parser.add_argument("--version", action="version", version=f"netspec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    compile_ = commands.add_parser("compile", help="compile a spec to an ONNX model")
    compile_.add_argument("spec", help="a .net spec or a Caffe .prototxt")
    compile_.add_argument("-o", "--output", help="the .onnx file to write (default: SPEC's name with .onnx)")
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
    report.add_argument("spec")
    report.add_argument("--format", choices=FORMATS, default="text")
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
    check.add_argument("specs", nargs="+", metavar="SPEC")
    _add_phase_option(check)
    check.set_defaults(handler=command_check)

    run = commands.add_parser("run", help="run a spec (random weights) or an .onnx model in onnxruntime")
    run.add_argument("model", metavar="SPEC|MODEL.onnx")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument(
        "--input",
        dest="feeds",
        metavar="NAME=FILE.npy",
        type=_input_file,
        action="append",
        default=[],
        help="an input array (default: random normal)",
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

    convert = commands.add_parser("convert", help="write a Caffe prototxt as an idiomatic .net spec")
    convert.add_argument("model", metavar="MODEL.prototxt")
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
    viz.add_argument("spec")
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
    for subcommand in commands.choices.values():
        _add_input_rules_options(subcommand)
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
    bench.add_argument("specs", nargs="+", metavar="SPEC", help="a .net spec, a Caffe .prototxt or an .onnx")
    bench.add_argument(
        "--batch", type=_batch_list, default=[1], help="batch sizes, comma-separated (default 1)"
    )
    bench.add_argument("--device", choices=DEVICES, default="auto")
    bench.add_argument("--warmup", type=_non_negative_int, default=3, help="untimed runs first (default 3)")
    bench.add_argument("--iterations", type=_positive_int, default=20, help="timed runs (default 20)")
    bench.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime intra-op threads")
    bench.add_argument("--format", choices=FORMATS, default="text")
    _add_phase_option(bench)
    bench.set_defaults(handler=command_bench)

    compare = commands.add_parser("compare", help="models side by side; the efficiency plot")
    compare.add_argument("specs", nargs="+", metavar="SPEC", help=".net specs or Caffe .prototxt files")
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
        "--plot", metavar="OUT.png", help="draw the efficiency chart, .png/.svg/.pdf (needs netspec[plot])"
    )
    _add_phase_option(compare)
    compare.set_defaults(handler=command_compare)


def _model_source(path: str, args: argparse.Namespace) -> Any:
    from netspec.bench import ModelSource

    if path.endswith(".onnx"):
        return ModelSource.onnx_file(path)
    return ModelSource.spec(path, _load(path, args))


def command_bench(args: argparse.Namespace) -> int:
    from netspec.bench import progress_bar, render_results, run_benchmarks

    sources = [_model_source(path, args) for path in args.specs]
    results = run_benchmarks(
        sources,
        args.batch,
        device=args.device,
        warmup=args.warmup,
        iterations=args.iterations,
        threads=args.threads,
        progress=progress_bar(),
    )
    sys.stdout.write(render_results(results, args.format))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from netspec.bench import progress_bar
    from netspec.compare import check_sort_key, compare_graphs, render_rows, sort_rows

    if args.plot:
        from netspec.plot import check_plot_output

        check_plot_output(args.plot)
    if args.sort:
        check_sort_key(args.sort, args.bench)
    onnx_files = [path for path in args.specs if path.endswith(".onnx")]
    if onnx_files:
        raise UsageError(f"compare reads specs (.net, .prototxt), not ONNX models: {onnx_files[0]}")
    graphs = [_load(path, args) for path in args.specs]
    rows = compare_graphs(
        args.specs,
        graphs,
        batch=args.batch or 1,
        bench=args.bench,
        device=args.device,
        progress=progress_bar(),
        limits=_limits(args),
    )
    if args.sort:
        rows = sort_rows(rows, args.sort)
    if args.plot:
        from netspec.plot import plot_efficiency

        plot_efficiency(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    sys.stdout.write(render_rows(rows, args.format))
    return 0


def _add_dtype_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help=f"{meaning} (default float32)"
    )


def _add_numerics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fold-bn",
        action="store_true",
        help="fold BatchNorm (and Scale) into the convolution or fully connected layer before it",
    )
    _add_dtype_option(parser, "element type of the model's weights, inputs and outputs")


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="trained weights: .safetensors, .npz (by parameter name) or .caffemodel (default: random)",
    )


def _trained_weights(args: argparse.Namespace, graph: Any) -> Any:
    """The arrays of ``--weights`` mapped onto ``graph``, or None for random weights."""
    if not args.weights:
        return None
    from netspec.infer import infer_shapes
    from netspec.weightfile import load_weights

    types = infer_shapes(graph, {"N": 1}, dict(getattr(args, "input_shapes", [])))
    return load_weights(args.weights, graph, types)


def _add_phase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--phase",
        choices=("TEST", "TRAIN"),
        default="TEST",
        help="which phase of a Caffe file to read (default TEST: the inference net)",
    )


def _load(path: str, args: argparse.Namespace) -> Any:
    """Read a spec or Caffe file; print its warnings to stderr."""
    from netspec.compiler import load_graph

    graph = load_graph(
        path,
        _limits(args),
        phase=args.phase,
        input_shapes=dict(getattr(args, "input_shapes", [])),
        includes=_include_rules(args),
    )
    for warning in graph.warnings:
        print(warning.render(), file=sys.stderr)
    return graph


def _analysis(args: argparse.Namespace, graph: Any, dtype: str = "float32") -> Any:
    """``graph`` analysed at ``--batch`` with the ``--input`` shapes, within the ``--limit`` caps."""
    from netspec.compiler import analyze

    return analyze(
        graph, batch=args.batch or 1, input_shapes=dict(args.input_shapes), dtype=dtype, limits=_limits(args)
    )


def _spec_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def command_compile(args: argparse.Namespace) -> int:
    from netspec.compiler import compile_graph
    from netspec.export.onnx import check_model
    from netspec.output import check_output_path, write_model

    started = time.perf_counter()
    output = args.output or Path(args.spec).with_suffix(".onnx").name
    check_output_path(output)
    graph = _load(args.spec, args)
    batch = None if args.dynamic_batch else (args.batch or 1)
    model = compile_graph(
        graph,
        batch=batch,
        input_shapes=dict(args.input_shapes),
        weights=_trained_weights(args, graph),
        seed=args.seed,
        opset=args.opset,
        spec_text=_spec_text(args.spec),
        fold_bn=args.fold_bn,
        dtype=args.dtype,
        limits=_limits(args),
    )
    check_model(model)
    written = write_model(model, output)
    elapsed = time.perf_counter() - started
    if written.data_path is not None:
        print(
            f"note: the weights pass protobuf's 2 GiB limit; they are in {written.data_path} "
            f"({written.data_size / 2**30:.2f} GiB), which must stay beside {output}",
            file=sys.stderr,
        )
    print(
        f"wrote {output} ({written.size / 2**20:.1f} MiB, opset {model.opset_import[0].version}) "
        f"in {elapsed:.2f} s",
        file=sys.stderr,
    )
    return 0


def command_report(args: argparse.Namespace) -> int:
    from netspec.report import render, report_data

    analysis = _analysis(args, _load(args.spec, args), args.dtype)
    sys.stdout.write(render(report_data(analysis, depth=args.depth), args.format))
    return 0


def command_viz(args: argparse.Namespace) -> int:
    from netspec.viz import check_picture_output, graph_dot, write_picture

    output = args.output or Path(args.spec).with_suffix(".svg").name
    check_picture_output(output)
    analysis = _analysis(args, _load(args.spec, args))
    write_picture(graph_dot(analysis, depth=args.depth), output)
    print(f"wrote {output}", file=sys.stderr)
    return 0


def command_check(args: argparse.Namespace) -> int:
    from netspec.compiler import analyze

    failures = 0
    for path in args.specs:
        try:
            analysis = analyze(_load(path, args), limits=_limits(args))
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


def command_run(args: argparse.Namespace) -> int:
    import numpy as np

    from netspec.output import write_atomic_with

    check = None
    if args.model.endswith(".onnx"):
        outputs, device, elapsed = _run_onnx_file(args)
    else:
        outputs, device, elapsed, check = _run_spec(args)
    print(f"device: {device}", file=sys.stderr)
    for name, value in outputs.items():
        print(
            f"{name}: {list(value.shape)} {value.dtype}  mean {float(value.mean(dtype=np.float64)):.6g}  "
            f"std {float(value.std(dtype=np.float64)):.6g}"
        )
    print(f"ran in {elapsed * 1000:.1f} ms on {device}", file=sys.stderr)
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
        "--fold-bn": args.fold_bn,
        "--dtype": args.dtype != "float32",
        "--reference": args.reference,
        "--check-reference": args.check_reference,
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


def _run_spec(args: argparse.Namespace) -> tuple[dict[str, Any], str, float, tuple[Any, Any, Any] | None]:
    """Run a spec in onnxruntime, or with --reference in the float64 reference executor. The
    graph, weights and inputs onnxruntime ran are returned for --check-reference."""
    from netspec.compiler import analyze
    from netspec.verify import REFERENCE_DEVICE, sample_inputs
    from netspec.weights import initialize_weights

    graph = _load(args.model, args)
    batch = args.batch or 1
    limits = _limits(args)
    types = analyze(graph, batch, limits=limits).types  # sizes checked before weights are made
    weights = _trained_weights(args, graph)
    if weights is None:
        weights = initialize_weights(graph, types, args.seed)
    feeds = sample_inputs(graph, types, args.seed)
    feeds.update(_read_feeds(args.feeds, list(feeds)))
    if args.reference:
        from netspec.reference import run_reference

        started = time.perf_counter()
        outputs = run_reference(graph, weights, feeds)
        return outputs, REFERENCE_DEVICE, time.perf_counter() - started, None

    from netspec.compiler import compile_graph
    from netspec.runtime import create_session

    model = compile_graph(
        graph, batch=batch, weights=weights, fold_bn=args.fold_bn, dtype=args.dtype, limits=limits
    )
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
    from netspec.convert import convert_caffe
    from netspec.output import write_atomic

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


def _add_weights_parser(commands: Any) -> None:
    """``netspec weights`` (logic in netspec/weightfile.py and netspec/weights.py)."""
    weights = commands.add_parser(
        "weights", help="list the arrays a weights file for a spec holds, or write initial values"
    )
    weights.add_argument("spec", help="a .net spec or a Caffe .prototxt")
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
    analysis = _analysis(args, graph)
    if not args.init:
        sys.stdout.write(render_listing(graph.name, array_listing(graph, analysis.types), args.format))
        return 0
    arrays = initialize_weights(graph, analysis.types, args.seed)
    write_weights(args.output, arrays)
    print(f"wrote {args.output} ({len(arrays)} arrays, seed {args.seed})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except NetspecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC_ERROR
    except UsageError as exc:
        print(f"netspec {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
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
