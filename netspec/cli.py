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
from netspec.diagnostics import NetspecError, error

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

MIN_OPSET, MAX_OPSET = 13, 21


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
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
    _add_phase_option(compile_)
    compile_.set_defaults(handler=command_compile)

    report = commands.add_parser("report", help="per-layer shapes, params, MACs, FLOPs, memory")
    report.add_argument("spec")
    report.add_argument("--format", choices=("text", "json", "csv", "md"), default="text")
    report.add_argument(
        "--batch", type=_positive_int, default=None, help="batch size N for the counts (default 1)"
    )
    _add_input_shape_option(report)
    _add_phase_option(report)
    report.set_defaults(handler=command_report)

    check = commands.add_parser("check", help="parse, elaborate and infer shapes; report errors")
    check.add_argument("specs", nargs="+", metavar="SPEC")
    _add_phase_option(check)
    check.set_defaults(handler=command_check)

    run = commands.add_parser("run", help="run a spec (random weights) or an .onnx model in onnxruntime")
    run.add_argument("model", metavar="SPEC|MODEL.onnx")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
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
    return parser


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", metavar="FILE", help="trained weights: .caffemodel or .npz (default: random)"
    )


def _trained_weights(args: argparse.Namespace, graph: Any) -> Any:
    """The arrays of ``--weights`` mapped onto ``graph``, or None for random weights."""
    if not args.weights:
        return None
    from netspec.infer import infer_shapes
    from netspec.weights import load_weights

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

    graph = load_graph(path, phase=args.phase, input_shapes=dict(getattr(args, "input_shapes", [])))
    for warning in graph.warnings:
        print(warning.render(), file=sys.stderr)
    return graph


def _spec_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def command_compile(args: argparse.Namespace) -> int:
    from netspec.compiler import compile_graph
    from netspec.export.onnx import check_model
    from netspec.output import write_atomic

    started = time.perf_counter()
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
    )
    check_model(model)
    output = args.output or Path(args.spec).with_suffix(".onnx").name
    data = model.SerializeToString()
    write_atomic(output, data)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {output} ({len(data) / 2**20:.1f} MiB, opset {model.opset_import[0].version}) "
        f"in {elapsed:.2f} s",
        file=sys.stderr,
    )
    return 0


def command_report(args: argparse.Namespace) -> int:
    from netspec.compiler import analyze
    from netspec.report import render, report_data

    graph = _load(args.spec, args)
    analysis = analyze(graph, batch=args.batch or 1, input_shapes=dict(args.input_shapes))
    sys.stdout.write(render(report_data(analysis), args.format))
    return 0


def command_check(args: argparse.Namespace) -> int:
    from netspec.compiler import analyze

    failures = 0
    for path in args.specs:
        try:
            analysis = analyze(_load(path, args))
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
            feeds[name] = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise error(f"cannot read the array for '{name}' from {path}: {exc}") from None
    return feeds


def command_run(args: argparse.Namespace) -> int:
    import numpy as np

    from netspec.output import write_atomic_with
    from netspec.runtime import create_session, random_feeds

    if args.model.endswith(".onnx"):
        if not os.path.exists(args.model):
            raise error(f"no such file: {args.model}")
        if args.weights:
            raise error("--weights applies to a spec; an .onnx model carries its own weights")
        model: bytes | str = args.model
    else:
        from netspec.compiler import compile_graph

        graph = _load(args.model, args)
        model = compile_graph(
            graph, batch=args.batch or 1, seed=args.seed, weights=_trained_weights(args, graph)
        ).SerializeToString()
    session = create_session(model, args.device)
    feeds = random_feeds(session, batch=args.batch or 1, seed=args.seed)
    feeds.update(_read_feeds(args.feeds, session.input_names))
    started = time.perf_counter()
    outputs = session.run(feeds)
    elapsed = time.perf_counter() - started
    print(f"device: {session.device}", file=sys.stderr)
    for name, value in outputs.items():
        print(
            f"{name}: {list(value.shape)} {value.dtype}  mean {float(value.mean()):.6g}  "
            f"std {float(value.std()):.6g}"
        )
    print(f"ran in {elapsed * 1000:.1f} ms on {session.device}", file=sys.stderr)
    if args.output:
        write_atomic_with(args.output, lambda handle: np.savez(handle, **outputs))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except NetspecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from netspec.runtime import RuntimeFailure

        if isinstance(exc, RuntimeFailure):
            print(f"netspec: error: {exc}", file=sys.stderr)
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
