"""Diagnostics for bad specs (DESIGN.md §3, requirement 10): each mistake gives one error whose
message names the offending value and what was expected, at the line and column of the mistake,
rendered as ``file:line:col: error: ...`` with the source line and a caret."""

from __future__ import annotations

from pathlib import Path

import pytest

from netspec.diagnostics import Diagnostic, NetspecError, SourceFile, SourceSpan, TraceFrame, printable
from netspec.elaborate import elaborate, load_spec, read_source
from netspec.infer import infer_shapes

pytestmark = pytest.mark.unit

HEAD = "input data: [N, 3, 32, 32]\n"


def compile_error(text: str, path: str = "t.net") -> NetspecError:
    """The error that elaborating and inferring ``text`` raises."""
    with pytest.raises(NetspecError) as caught:
        infer_shapes(elaborate(SourceFile(path, text)))
    return caught.value


def load_error(path: Path) -> NetspecError:
    with pytest.raises(NetspecError) as caught:
        infer_shapes(load_spec(path))
    return caught.value


def assert_points_at(err: NetspecError, message: str, line: int, column: int) -> Diagnostic:
    """The first diagnostic says ``message`` at ``line:column`` and renders with an excerpt whose
    caret sits under that column."""
    diagnostic = err.diagnostics[0]
    assert message in diagnostic.message, diagnostic.render()
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), diagnostic.render()
    rendered = err.render().splitlines()
    path = diagnostic.span.source.path
    assert rendered[0].startswith(f"{path}:{line}:{column}: error: "), rendered[0]
    source_line = diagnostic.span.source.line(line)
    gutter = f"  {line} | "
    assert rendered[1] == gutter + printable(source_line)  # control characters escaped
    caret = rendered[2]
    assert caret.index("^") == len(gutter) + column - 1, "\n".join(rendered[:3])
    assert set(caret[len(gutter) :].strip()) <= {"^", "~"}
    return diagnostic


# Each case: the spec, a substring of the message, line, column, and a substring of the hint
# (or None where the case has no hint to check).
CASES = [
    pytest.param(
        HEAD + "Convolution c1 { num_output = 8 }\n",
        "unexpected '='; expected ':' or '{'",
        2,
        29,
        "fields are written 'key: value'",
        id="syntax-error-with-hint",
    ),
    pytest.param(
        HEAD + "let width: 3\n",
        "unexpected ':'; expected '='",
        2,
        10,
        "constants and keyword arguments are written 'name = value'",
        id="let-written-with-colon",
    ),
    pytest.param(
        HEAD + 'Convolution c1 { name: "abc }\n',
        "unterminated string",
        2,
        24,
        "close the string on the same line",
        id="unterminated-string",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8 @ }\n",
        "unexpected character '@'",
        2,
        32,
        None,
        id="unexpected-character",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 3\n",
        "unexpected end of file; expected ',', ';', '}' or a name",
        2,
        47,
        "the '{' at line 2, column 16 is not closed",
        id="unexpected-end-of-file",
    ),
    pytest.param(
        HEAD + "let width = \n",
        "unexpected end of file; expected an expression",
        2,
        13,
        None,
        id="end-of-file-in-expression",
    ),
    pytest.param(
        HEAD + "ReLU r {}\n}\n",
        "unexpected '}'; expected the end of the file or a statement",
        3,
        1,
        "this '}' closes no open '{'",
        id="stray-closing-brace",
    ),
    pytest.param(
        HEAD + "repeat 2 as i { ReLU layer{i +} {} }\n",
        "unexpected end of the '{...}' in a name; expected an expression",
        2,
        31,
        None,
        id="bad-name-interpolation",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 99999999999999999999999  kernel_size: 3 }\n",
        "the integer 99999999999999999999999 is too large; integers are limited to 2**62",
        2,
        30,
        None,
        id="huge-integer",
    ),
    pytest.param(
        HEAD + "Convolutoin c1 { num_output: 8  kernel_size: 3 }\n",
        "unknown layer type or template 'Convolutoin'; did you mean 'Convolution'?",
        2,
        1,
        None,
        id="unknown-layer-type",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernal_size: 3 }\n",
        "Convolution has no parameter 'kernal_size'; did you mean 'kernel_size'?",
        2,
        33,
        None,
        id="unknown-parameter",
    ),
    pytest.param(
        HEAD + "ReLU r { slope: 0.1 }\n",
        "ReLU has no parameter 'slope'",
        2,
        10,
        "ReLU parameters: negative_slope",
        id="unknown-parameter-without-close-match",
    ),
    pytest.param(
        HEAD + 'Convolution c1 { num_output: "8"  kernel_size: 3 }\n',
        "Convolution parameter 'num_output': expected a positive integer, got string \"8\"",
        2,
        30,
        None,
        id="string-for-int",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8.5  kernel_size: 3 }\n",
        "Convolution parameter 'num_output': expected a positive integer, got number 8.5",
        2,
        30,
        None,
        id="float-for-int",
    ),
    pytest.param(
        HEAD + "ReLU r { negative_slope: true }\n",
        "ReLU parameter 'negative_slope': expected a number, got boolean true",
        2,
        26,
        None,
        id="bool-for-float",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 0 }\n",
        "Convolution parameter 'kernel_size': expected a positive integer or a list [h, w] of them, "
        "got integer 0",
        2,
        46,
        None,
        id="kernel-size-zero",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 3  pad: -1 }\n",
        "Convolution parameter 'pad': expected a non-negative integer, [h, w], or [top, left, bottom, "
        "right], got integer -1",
        2,
        54,
        None,
        id="negative-pad",
    ),
    pytest.param(
        HEAD + "Dropout d { dropout_ratio: 1.5 }\n",
        "Dropout parameter 'dropout_ratio': expected a number from 0.0 to 1.0, got number 1.5",
        2,
        28,
        None,
        id="ratio-out-of-range",
    ),
    pytest.param(
        HEAD + "Pooling p { pool: MAXX  kernel_size: 2 }\n",
        "Pooling parameter 'pool': expected one of MAX, AVE, got 'MAXX'",
        2,
        19,
        "did you mean 'MAX'?",
        id="unknown-enum-word",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8 }\n",
        "Convolution needs parameter 'kernel_size'",
        2,
        1,
        None,
        id="missing-required-parameter",
    ),
    pytest.param(
        HEAD + "Convolution c1 { }\n",
        "Convolution needs parameters 'num_output', 'kernel_size'",
        2,
        1,
        None,
        id="missing-required-parameters",
    ),
    pytest.param(
        HEAD + "Convolution c1 { bottom: dat  num_output: 8  kernel_size: 3 }\n",
        "no tensor named 'dat' exists at this point",
        2,
        26,
        "did you mean 'data'?",
        id="missing-input-tensor",
    ),
    pytest.param(
        HEAD + "ReLU a {}\nConcat c { bottom: [a, dta] }\n",
        "no tensor named 'dta' exists at this point",
        3,
        24,
        "did you mean 'data'?",
        id="missing-input-tensor-in-list",
    ),
    pytest.param(
        HEAD + "ReLU a {}\nConcat c { bottom: a  bottom: dta }\n",
        "no tensor named 'dta' exists at this point",
        3,
        31,
        "did you mean 'data'?",
        id="missing-input-tensor-repeated-field",
    ),
    pytest.param(
        HEAD + "ReLU r { bottom: 3 }\n",
        "expected a tensor name, got integer 3",
        2,
        18,
        None,
        id="bottom-not-a-name",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 3 }\nReLU c1 {}\n",
        "duplicate name 'c1': a layer of that name is already defined at t.net:2:1",
        3,
        1,
        "every layer needs a unique name in its scope",
        id="duplicate-layer-name",
    ),
    pytest.param(
        HEAD + "Convolution a { num_output: 4  kernel_size: 1 }\n"
        "Convolution b { bottom: data  num_output: 8  kernel_size: 1 }\n"
        "Eltwise add { bottom: [a, b] }\n",
        "Eltwise 'add': needs inputs of one shape (inputs [N, 4, 32, 32], [N, 8, 32, 32])",
        4,
        1,
        "Eltwise does not broadcast",
        id="eltwise-shape-mismatch",
    ),
    pytest.param(
        HEAD + "Convolution a { num_output: 4  kernel_size: 1 }\n"
        "Convolution b { bottom: data  num_output: 8  kernel_size: 3 }\n"
        "Concat cat { bottom: [a, b] }\n",
        "Concat 'cat': needs inputs that agree on every axis except the concatenation axis 1 "
        "(inputs [N, 4, 32, 32], [N, 8, 30, 30])",
        4,
        1,
        None,
        id="concat-shape-mismatch",
    ),
    pytest.param(
        HEAD + "Eltwise add { }\n",
        "Eltwise takes at least 2 inputs, got 1",
        2,
        1,
        "without 'bottom:' a layer reads only",
        id="eltwise-with-one-input",
    ),
    pytest.param(
        HEAD + "ReLU r { bottom: [data, data] }\n",
        "ReLU takes exactly 1 input, got 2",
        2,
        1,
        None,
        id="too-many-inputs",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 3  group: 2 }\n",
        "Convolution 'c1': group 2 does not divide the 3 input channels",
        2,
        56,
        None,
        id="group-does-not-divide-input-channels",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8  kernel_size: 3  group: 3 }\n",
        "Convolution 'c1': group 3 does not divide num_output 8",
        2,
        56,
        None,
        id="group-does-not-divide-output-channels",
    ),
    pytest.param(
        "input data: [N, 3, 4, 4]\nConvolution c1 { num_output: 8  kernel_size: 7 }\n",
        "Convolution 'c1' produces a non-positive size: input [N, 3, 4, 4] gives output [N, 8, -2, -2]",
        2,
        1,
        "the input is too small for this kernel/stride/padding",
        id="non-positive-output-size",
    ),
    pytest.param(
        HEAD + "Pooling p { kernel_size: 2  pad: 2 }\n",
        "Pooling 'p': padding [2, 2, 2, 2] must be smaller than the kernel [2, 2]",
        2,
        34,
        None,
        id="pooling-pad-not-smaller-than-kernel",
    ),
    pytest.param(
        HEAD + "template t(a, b) { ReLU r {} }\nt x(1, 2, 3)\n",
        "template 't' takes 2 arguments, got 3",
        3,
        11,
        "t(a, b)",
        id="too-many-template-arguments",
    ),
    pytest.param(
        HEAD + "template t(a, b) { ReLU r {} }\nt x(1, c = 2)\n",
        "template 't' has no parameter 'c'",
        3,
        8,
        "t(a, b)",
        id="unknown-keyword-argument",
    ),
    pytest.param(
        HEAD + "template t(width, b) { ReLU r {} }\nt x(1, widht = 2)\n",
        "template 't' has no parameter 'widht'",
        3,
        8,
        "did you mean 'width'?",
        id="misspelt-keyword-argument",
    ),
    pytest.param(
        HEAD + "template t(a, b) { ReLU r {} }\nt x(1)\n",
        "template 't' needs argument 'b'",
        3,
        1,
        "t(a, b)",
        id="missing-template-argument",
    ),
    pytest.param(
        HEAD + "template t(a, b) { ReLU r {} }\nt x(a = 1, 2)\n",
        "a positional argument follows a keyword argument",
        3,
        12,
        None,
        id="positional-after-keyword",
    ),
    pytest.param(
        HEAD + "template t(a) { ReLU r {} }\nt x(1, a = 2)\n",
        "argument 'a' is given twice",
        3,
        8,
        None,
        id="argument-given-twice",
    ),
    pytest.param(
        HEAD + "template t(a) { ReLU r {} }\nt x(1) { stride: 2 }\n",
        "a template instance takes only 'bottom' in '{ }', not 'stride'",
        3,
        10,
        "t x(stride=...)",
        id="template-instance-with-fields",
    ),
    pytest.param(
        HEAD + "template t(a) { ReLU r {} }\nt { }\n",
        "an instance of template 't' needs a name",
        3,
        1,
        None,
        id="anonymous-template-instance",
    ),
    pytest.param(
        HEAD + "template t(a) { ReLU r {} }\ntemplate t(b) { ReLU r {} }\n",
        "template 't' is already defined at t.net:2:1",
        3,
        1,
        None,
        id="template-defined-twice",
    ),
    pytest.param(
        HEAD + "template ReLU(a) { Sigmoid s {} }\n",
        "template 'ReLU' would hide the layer type of that name",
        2,
        1,
        None,
        id="template-hides-layer-type",
    ),
    pytest.param(
        HEAD + "template t(a, a) { ReLU r {} }\n",
        "template 't' has two parameters named 'a'",
        2,
        15,
        None,
        id="duplicate-template-parameter",
    ),
    pytest.param(
        HEAD + "template t(a) { t inner(a) }\nt x(1)\n",
        "templates nest more than 64 deep (is 't' recursive?)",
        2,
        17,
        None,
        id="template-recursion",
    ),
    pytest.param(
        HEAD + "repeat -1 as i { ReLU r{i} {} }\n",
        "repeat needs a non-negative integer count, got integer -1",
        2,
        8,
        None,
        id="repeat-negative",
    ),
    pytest.param(
        HEAD + "repeat 1.5 as i { ReLU r{i} {} }\n",
        "repeat needs a non-negative integer count, got number 1.5",
        2,
        8,
        None,
        id="repeat-non-integer",
    ),
    pytest.param(
        HEAD + "repeat depth { ReLU {} }\n",
        "repeat needs a non-negative integer count, got name 'depth'",
        2,
        8,
        None,
        id="repeat-unbound-name",
    ),
    pytest.param(
        HEAD + "repeat 200001 { ReLU {} }\n",
        "a loop of 200001 iterations exceeds the limit of 100000",
        2,
        8,
        None,
        id="repeat-too-many",
    ),
    pytest.param(
        HEAD + "for c in 3 { ReLU r{c} {} }\n",
        "for needs a list to iterate over, got integer 3",
        2,
        10,
        None,
        id="for-over-non-list",
    ),
    pytest.param(
        HEAD + 'if "yes" { ReLU r {} }\n',
        'a condition must be true or false, got string "yes"',
        2,
        4,
        None,
        id="condition-not-boolean",
    ),
    pytest.param(
        HEAD + 'nmae: "net"\n',
        "unknown setting 'nmae'",
        2,
        1,
        "did you mean 'name'?",
        id="unknown-header-setting",
    ),
    pytest.param(
        HEAD + "output: prob\nReLU relu {}\n",
        "no tensor named 'prob' exists at this point",
        2,
        9,
        None,
        id="output-names-missing-tensor",
    ),
    pytest.param(
        "ReLU relu {}\n",
        "this layer has no input: nothing precedes it",
        1,
        1,
        "declare an input first",
        id="no-input-at-top-of-file",
    ),
    pytest.param(
        HEAD + "ReLU r { bottom: in }\n",
        "no tensor named 'in' exists at this point",
        2,
        18,
        "'in' is a template's input",
        id="in-outside-template",
    ),
    pytest.param(
        HEAD + "ReLU r(0.1) {}\n",
        "ReLU is a layer type, not a template; its parameters go inside '{ }'",
        2,
        1,
        None,
        id="layer-type-with-arguments",
    ),
    pytest.param(
        HEAD + 'ReLU r { filler { type: "msra" } }\n',
        "'filler' is a block; only Caffe-style '*_param' blocks may group parameters",
        2,
        10,
        "write 'filler: value'",
        id="block-field-not-param",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: 8 / 0  kernel_size: 3 }\n",
        "division by zero: the right operand of '/' is 0",
        2,
        34,
        None,
        id="division-by-zero-in-field",
    ),
    pytest.param(
        HEAD + "Convolution c1 { num_output: mx(8, 4)  kernel_size: 3 }\n",
        "unknown function 'mx'",
        2,
        30,
        "did you mean 'max'?",
        id="unknown-function",
    ),
    pytest.param(
        "input data: [N, 3, 0, 4]\n",
        "Input parameter 'shape': expected a list of positive integers or dimension names, "
        "got list [N, 3, 0, 4]",
        1,
        13,
        None,
        id="input-zero-dimension",
    ),
    pytest.param(
        HEAD + "input data: [N, 3, 8, 8]\n",
        "duplicate name 'data': a layer of that name is already defined at t.net:1:1",
        2,
        1,
        None,
        id="duplicate-input",
    ),
]


@pytest.mark.parametrize(("text", "message", "line", "column", "hint"), CASES)
def test_bad_spec(text: str, message: str, line: int, column: int, hint: str | None) -> None:
    diagnostic = assert_points_at(compile_error(text), message, line, column)
    if hint is not None:
        assert diagnostic.hint is not None and hint in diagnostic.hint, diagnostic.render()
        assert f"  hint: {diagnostic.hint}" in diagnostic.render()


def test_at_least_twenty_distinct_cases() -> None:
    assert len({case.values[1] for case in CASES}) >= 20


# ------------------------------------------------------------------------------- templates


def test_unknown_parameter_in_template_has_the_instantiation_trace() -> None:
    """DESIGN.md's example, error and note line for line."""
    text = (
        "input data: [N, 3, 56, 56]\n"
        "template basic(planes) {\n"
        "  Convolution conv1 { num_output: planes  kernal_size: 3 }\n"
        "}\n"
        "repeat 2 as i {\n"
        "  basic layer2.{i}(64)\n"
        "}\n"
    )
    err = compile_error(text, "zoo/resnet18.net")
    diagnostic = assert_points_at(
        err, "Convolution has no parameter 'kernal_size'; did you mean 'kernel_size'?", 3, 43
    )
    assert err.render().splitlines() == [
        "zoo/resnet18.net:3:43: error: Convolution has no parameter 'kernal_size'; "
        "did you mean 'kernel_size'?",
        "  3 |   Convolution conv1 { num_output: planes  kernal_size: 3 }",
        "    |                                           ^~~~~~~~~~~",
        "  note: in template 'basic' instantiated at zoo/resnet18.net:6:3 (repeat i=0, scope layer2.0)",
    ]
    assert [(f.template, f.scope, f.loop_bindings) for f in diagnostic.trace] == [
        ("basic", "layer2.0", (("repeat i", 0),))
    ]


def test_trace_names_the_failing_iteration() -> None:
    """The note of DESIGN.md's example, where only the second block of a stage fails."""
    text = (
        "input data: [N, 64, 56, 56]\n"
        "template basic(inplanes, planes) {\n"
        "  if inplanes == planes {\n"
        "    Convolution conv1 { num_output: planes  kernal_size: 3 }\n"
        "  } else {\n"
        "    Convolution conv1 { num_output: planes  kernel_size: 3  stride: 2 }\n"
        "  }\n"
        "}\n"
        "repeat 2 as i { basic layer2.{i}(i == 0 ? 64 : 128, 128) }\n"
    )
    err = compile_error(text, "zoo/resnet18.net")
    assert_points_at(err, "Convolution has no parameter 'kernal_size'; did you mean 'kernel_size'?", 4, 45)
    assert err.render().splitlines()[-1] == (
        "  note: in template 'basic' instantiated at zoo/resnet18.net:9:17 (repeat i=1, scope layer2.1)"
    )


def test_trace_from_an_included_template_shows_both_files(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text(
        "template basic(planes) {\n  Convolution conv1 { num_output: planes  kernal_size: 3 }\n}\n"
    )
    (tmp_path / "resnet18.net").write_text(
        'include "lib/blocks.net"\ninput data: [N, 3, 56, 56]\nfor i in [0, 1] {\n  basic layer2.{i}(64)\n}\n'
    )
    err = load_error(tmp_path / "resnet18.net")
    diagnostic = assert_points_at(err, "Convolution has no parameter 'kernal_size'", 2, 43)
    assert diagnostic.span is not None
    assert Path(diagnostic.span.source.path).name == "blocks.net"
    note = err.render().splitlines()[-1]
    assert note.startswith("  note: in template 'basic' instantiated at ")
    assert note.endswith("resnet18.net:4:3 (for i=0, scope layer2.0)")


def test_nested_template_trace_is_innermost_first() -> None:
    text = (
        "input data: [N, 3, 8, 8]\n"
        "template unit(c) { Convolution conv { num_output: c  kernel_size: 3  stride: 0 } }\n"
        "template stage(c) { repeat 2 as j { unit {j}(c) } }\n"
        "stage layer1(8)\n"
    )
    err = compile_error(text)
    assert_points_at(err, "Convolution parameter 'stride': expected a positive integer", 2, 78)
    assert err.render().splitlines()[3:] == [
        "  note: in template 'unit' instantiated at t.net:3:37 (repeat j=0, scope layer1.0)",
        "  note: in template 'stage' instantiated at t.net:4:1 (scope layer1)",
    ]


def test_shape_error_inside_template_has_the_trace() -> None:
    text = (
        "input data: [N, 3, 8, 8]\n"
        "template block(c) {\n"
        "  Convolution conv { num_output: c  kernel_size: 1 }\n"
        "  Eltwise add { bottom: [conv, in] }\n"
        "}\n"
        "block b1(3)\n"
        "block b2(4)\n"
    )
    err = compile_error(text)
    assert_points_at(
        err, "Eltwise 'b2.add': needs inputs of one shape (inputs [N, 4, 8, 8], [N, 3, 8, 8])", 4, 3
    )
    assert err.render().splitlines()[-1] == "  note: in template 'block' instantiated at t.net:7:1 (scope b2)"


def test_recursive_template_trace_is_elided_in_the_middle() -> None:
    err = compile_error(HEAD + "template t(a) { t inner(a) }\nt x(1)\n")
    notes = [line for line in err.render().splitlines() if line.startswith("  note:")]
    assert len(notes) == 9
    assert notes[4] == "  note: (56 more instantiations not shown)"
    assert notes[-1] == "  note: in template 't' instantiated at t.net:3:1 (scope x)"
    assert len(err.diagnostics[0].trace) == 64


# ------------------------------------------------------------------------------- files


def test_nul_byte() -> None:
    err = compile_error(HEAD + "ReLU r {}\0\n")
    assert_points_at(err, "the file contains a NUL byte", 2, 10)
    assert err.diagnostics[0].hint == "is this a binary file rather than a spec?"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.net"
    path.write_bytes(b"input data: [N, 3, 8, 8]\n# caf\xe9\nReLU r {}\n")
    with pytest.raises(NetspecError) as caught:
        read_source(path)
    assert_points_at(caught.value, "the file is not valid UTF-8", 2, 6)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NetspecError) as caught:
        read_source(tmp_path / "absent.net")
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.message == f"no such file: {tmp_path / 'absent.net'}"
    assert diagnostic.span is None


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "let x = 1\n"])
def test_empty_spec(text: str) -> None:
    err = compile_error(text)
    diagnostic = err.diagnostics[0]
    assert diagnostic.message == "the spec defines no layers"
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (1, 1)
    assert err.render().startswith("t.net:1:1: error: the spec defines no layers")
    assert diagnostic.hint == "start with an input: 'input data: [N, 3, 224, 224]'"


def test_include_cycle(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "main.net").write_text('input data: [N, 4]\ninclude "lib/a.net"\n')
    (tmp_path / "lib" / "a.net").write_text('# a\ninclude "b.net"\n')
    (tmp_path / "lib" / "b.net").write_text('include "a.net"\n')
    err = load_error(tmp_path / "main.net")
    diagnostic = assert_points_at(err, "include cycle: main.net -> a.net -> b.net -> a.net", 1, 1)
    assert diagnostic.span is not None
    assert Path(diagnostic.span.source.path).name == "b.net"
    assert diagnostic.hint == "a file cannot include itself, directly or through the files it includes"


def test_file_including_itself(tmp_path: Path) -> None:
    (tmp_path / "self.net").write_text('input data: [N, 4]\ninclude "self.net"\n')
    assert_points_at(load_error(tmp_path / "self.net"), "include cycle: self.net -> self.net", 2, 1)


def test_missing_include(tmp_path: Path) -> None:
    (tmp_path / "main.net").write_text('input data: [N, 4]\ninclude "lib/nope.net"\n')
    err = load_error(tmp_path / "main.net")
    expected = tmp_path / "lib" / "nope.net"
    assert_points_at(
        err, f"cannot find included file 'lib/nope.net' (looked for {expected}, and in netspec's zoo)", 2, 1
    )


def test_error_in_included_file_points_into_it(tmp_path: Path) -> None:
    (tmp_path / "lib.net").write_text("let x = 1\nReLU r { negative_slope: [1][3] }\n")
    (tmp_path / "main.net").write_text('input data: [N, 4]\ninclude "lib.net"\n')
    err = load_error(tmp_path / "main.net")
    diagnostic = assert_points_at(err, "index 3 is outside the list of 1 items", 2, 30)
    assert diagnostic.span is not None
    assert Path(diagnostic.span.source.path).name == "lib.net"


# ------------------------------------------------------------------------------- rendering


def test_render_expands_tabs_under_the_caret() -> None:
    source = SourceFile("t.net", "\tReLU r { bad: 1 }\n")
    diagnostic = Diagnostic("message", SourceSpan(source, 1, 11, 1, 14))
    assert diagnostic.render().splitlines() == [
        "t.net:1:11: error: message",
        "  1 |     ReLU r { bad: 1 }",
        "    |              ^~~",
    ]


def test_render_without_span_hint_and_notes() -> None:
    frame = TraceFrame("t", SourceSpan(SourceFile("a.net", "x\n"), 1, 1, 1, 2), "", ())
    diagnostic = Diagnostic("bad", None, hint="do this", notes=("see that",), trace=(frame,))
    assert diagnostic.render().splitlines() == [
        "error: bad",
        "  hint: do this",
        "  note: see that",
        "  note: in template 't' instantiated at a.net:1:1",
    ]


# ------------------------------------------------------------------------------ the error family


def test_every_error_for_a_person_shares_one_root() -> None:
    from netspec.diagnostics import NetspecException, UsageError
    from netspec.output import OutputError
    from netspec.runtime import RuntimeFailure

    for kind in (NetspecError, UsageError, RuntimeFailure, OutputError):
        assert issubclass(kind, NetspecException)
    assert issubclass(OutputError, OSError)  # callers that catch OSError still see it
    assert not issubclass(UsageError, NetspecError)  # the CLI exits 2 for it, not 1
    assert OutputError("cannot write x: disk full").render() == "cannot write x: disk full"


def test_a_spec_error_renders_only_when_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    from netspec.diagnostics import error

    rendered: list[Diagnostic] = []
    monkeypatch.setattr(Diagnostic, "render", lambda self: rendered.append(self) or self.message)
    caught = error("bad width", hint="use 4")
    assert rendered == []
    assert (caught.diagnostics[0].message, caught.diagnostics[0].hint) == ("bad width", "use 4")
    assert str(caught) == caught.render() == "bad width"
    assert pickle.loads(pickle.dumps(caught)).diagnostics == caught.diagnostics
