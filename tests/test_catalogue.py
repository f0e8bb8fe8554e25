"""The diagnostics catalogue (issue 6): one case per kind of user error, in .net specs and in
Caffe files, run through the command line as a user would (``netspec compile SPEC -o OUT``).

Each case asserts the whole first line of the diagnostic (``file:line:col: error: message``),
exit code 1, no Python traceback, an existing output file left byte for byte as it was, and no
other file written. The column is derived from the text itself (an occurrence of the marker
``at`` on that line), not from netspec. tests/test_diagnostics.py holds the many variants
of each kind through the Python API (messages, hints, traces, rendering)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from netspec.cli import main

pytestmark = pytest.mark.unit

HEAD = "input data: [N, 3, 8, 8]\n"
CAFFE_HEAD = 'name: "x"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
OLD_OUTPUT = b"an existing model that a failed compile must leave alone"
DEEP = 20_000


@dataclass(frozen=True)
class Case:
    """A spec (``files``: name -> content, the first one compiled), the message of the first
    diagnostic, where it points (``line`` of ``where``, column of the ``nth`` occurrence of ``at`` on
    it; at the line's end when ``at`` is None), an optional hint substring, and extra CLI
    arguments."""

    files: dict[str, str | bytes]
    message: str
    line: int
    at: str | None
    hint: str | None = None
    where: str | None = None
    args: tuple[str, ...] = ()
    nth: int = 1

    @property
    def spec(self) -> str:
        return next(iter(self.files))


def net(
    text: str | bytes, message: str, line: int, at: str | None, hint: str | None = None, **kw: object
) -> Case:
    return Case({"spec.net": text}, message, line, at, hint, **kw)  # type: ignore[arg-type]


def caffe(text: str, message: str, line: int, at: str | None, hint: str | None = None, nth: int = 1) -> Case:
    return Case({"model.prototxt": text}, message, line, at, hint, nth=nth)


CATALOGUE = {
    # ------------------------------------------------------------------ lexical
    "stray-character": net(
        HEAD + "Convolution c { num_output: 8 $ kernel_size: 3 }\n", "unexpected character '$'", 2, "$"
    ),
    "unterminated-string": net(
        HEAD + 'Convolution c { name: "abc }\n', "unterminated string", 2, '"', "close the string"
    ),
    "not-utf8": net(
        (HEAD + "ReLU r {}\n# caf\xe9\n").encode("latin-1"), "the file is not valid UTF-8", 3, "\ufffd"
    ),
    "nul-byte": net(
        (HEAD + "ReLU r {\0}\n").encode(), "the file contains a NUL byte", 2, "\0", "binary file"
    ),
    # ------------------------------------------------------------------ syntax
    "missing-closing-brace": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 3\nReLU r {}\n",
        "unexpected name 'r'; expected ':' or '{'",
        3,
        "r ",
        "the '{' at line 2, column 15 is not closed; is a '}' missing before this line?",
    ),
    "equals-instead-of-colon": net(
        HEAD + "Convolution c { num_output = 8 }\n",
        "unexpected '='; expected ':' or '{'",
        2,
        "=",
        "fields are written 'key: value'",
    ),
    "missing-colon": net(
        HEAD + "Convolution c { num_output 8  kernel_size: 3 }\n",
        "unexpected integer '8'; expected ':' or '{'",
        2,
        "8",
        "is the ':' missing?",
    ),
    "unbalanced-brackets": net(
        HEAD + "ReLU a {}\nReLU b { bottom: data }\nEltwise e { bottom: [a, b }\n",
        "unexpected '}'; expected ')', ',' or ']'",
        4,
        "}",
        "the '[' at line 4, column 21 is not closed",
    ),
    "unclosed-parenthesis": net(
        HEAD + "let c = (2 + 3\nConvolution c { num_output: c  kernel_size: 3 }\n",
        "unexpected name 'Convolution'; expected ')'",
        3,
        "Convolution",
        "the '(' at line 2, column 9 is not closed",
    ),
    "bracket-closed-twice": net(
        HEAD + "let c = (2 + 3)]\n",
        "unexpected ']'; expected '}', the end of the file or a statement",
        2,
        "]",
        "this ']' closes no open '['",
    ),
    "end-of-file-inside-block": net(
        HEAD + "Convolution c { num_output: 8",
        "unexpected end of file; expected ',', ';', '}' or a name",
        2,
        None,
        "the '{' at line 2, column 15 is not closed",
    ),
    # ------------------------------------------------------------------ names and values
    "unknown-layer-type": net(
        HEAD + "Convolutoin c { num_output: 8 }\n",
        "unknown layer type or template 'Convolutoin'; did you mean 'Convolution'?",
        2,
        "Convolutoin",
    ),
    "unknown-parameter": net(
        HEAD + "Convolution c { num_output: 8  kernal_size: 3 }\n",
        "Convolution has no parameter 'kernal_size'; did you mean 'kernel_size'?",
        2,
        "kernal_size",
    ),
    "wrong-value-type": net(
        HEAD + 'Convolution c { num_output: "eight"  kernel_size: 3 }\n',
        "Convolution parameter 'num_output': expected a positive integer, got string \"eight\"",
        2,
        '"eight"',
    ),
    "unknown-enum-word": net(
        HEAD + "Pooling p { pool: MAXX  kernel_size: 2 }\n",
        "Pooling parameter 'pool': expected one of MAX, AVE, got 'MAXX'",
        2,
        "MAXX",
        "did you mean 'MAX'?",
    ),
    "integer-too-large": net(
        HEAD + "Convolution c { num_output: 10**100  kernel_size: 3 }\n", "10 ** 100 is too large", 2, "10**"
    ),
    "float-too-large": net(HEAD + "let x = 1e400\n", "the number 1e400 is too large", 2, "1e400"),
    # ------------------------------------------------------------------ out-of-range values
    "kernel-size-zero": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 0 }\n",
        "Convolution parameter 'kernel_size': expected a positive integer or a list [h, w] of them, "
        "got integer 0",
        2,
        "0",
    ),
    "negative-stride": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 3  stride: -1 }\n",
        "Convolution parameter 'stride': expected a positive integer or a list [h, w] of them, "
        "got integer -1",
        2,
        "-1",
    ),
    "group-not-dividing-channels": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 3  group: 2 }\n",
        "Convolution 'c': group 2 does not divide the 3 input channels",
        2,
        "2 }",
    ),
    "softmax-axis-outside-tensor": net(
        HEAD + "Softmax s { axis: 4 }\n",
        "Softmax 's': axis 4 is out of range for the 4-D input [1, 3, 8, 8] (valid: -4 to 3)",
        2,
        "4",
    ),
    "unknown-param-field": net(
        HEAD + "Convolution c { num_output: 4  kernel_size: 3  param { lr_mul: 0 } }\n",
        "a param block has no field 'lr_mul'; did you mean 'lr_mult'?",
        2,
        "lr_mul",
    ),
    "shared-array-shape-mismatch": net(
        HEAD
        + 'Convolution a { bottom: data  num_output: 4  kernel_size: 3  param { name: "w" } }\n'
        + 'Convolution b { bottom: data  num_output: 5  kernel_size: 3  param { name: "w" } }\n',
        "layer 'b' shares the array 'w' with layer 'a', but its weight is [5, 3, 3, 3] where 'a' "
        "has [4, 3, 3, 3]",
        3,
        "Convolution",
        "need the same shape",
    ),
    # ------------------------------------------------------------------ tensors and shapes
    "missing-tensor": net(
        HEAD + "Eltwise e { bottom: [data, nope] }\n",
        "no tensor named 'nope' exists at this point",
        2,
        "nope",
    ),
    "duplicated-name": net(
        HEAD + "ReLU r {}\nReLU r {}\n",
        "duplicate name 'r': a layer of that name is already defined at spec.net:2:1",
        3,
        "ReLU",
    ),
    "shape-mismatch": net(
        HEAD + "Convolution c { num_output: 4  kernel_size: 1 }\nEltwise e { bottom: [data, c] }\n",
        "Eltwise 'e': needs inputs of one shape (inputs [1, 3, 8, 8], [1, 4, 8, 8])",
        3,
        "Eltwise",
        "Eltwise does not broadcast",
    ),
    "non-positive-output-size": net(
        HEAD + "Convolution c { num_output: 4  kernel_size: 9 }\n",
        "Convolution 'c' produces a non-positive size: input [1, 3, 8, 8] gives output [1, 4, 0, 0]",
        2,
        "Convolution",
    ),
    "unbound-symbolic-dimension": net(
        "input data: [N, C, 8, 8]\nReLU r {}\n",
        "input 'data' has the symbolic dimension 'C', which the batch size does not fix (it sets N)",
        1,
        "input",
    ),
    # ------------------------------------------------------------------ files, templates, limits
    "empty-file": net("", "the spec defines no layers", 1, None),
    "only-comments": net("# nothing yet\n", "the spec defines no layers", 1, "#"),
    "include-cycle": Case(
        {
            "spec.net": HEAD + 'include "a.net"\n',
            "a.net": 'include "b.net"\n',
            "b.net": '\ninclude "a.net"\n',
        },
        "include cycle: spec.net -> a.net -> b.net -> a.net",
        2,
        "include",
        where="b.net",
    ),
    "missing-include": net(
        HEAD + 'include "lib/none.net"\n',
        "cannot find included file 'lib/none.net' (looked for lib/none.net, and in netspec's zoo)",
        2,
        "include",
    ),
    "absolute-include": net(
        HEAD + 'include "/etc/hostname"\n',
        "include of the absolute path '/etc/hostname' is not allowed",
        2,
        "include",
        "--allow-any-include",
    ),
    "template-recursion": net(
        HEAD + "template t(x) {\n  t inner(x)\n}\nt a(1)\n",
        "templates nest more than 64 deep (is 't' recursive?)",
        3,
        "t inner",
    ),
    "repeat-count-over-the-limit": net(
        HEAD + "repeat 1000000 { ReLU {} }\n",
        "a loop of 1000000 iterations exceeds the limit of 100000",
        2,
        "1000000",
        "--limit max_repeat=VALUE",
    ),
    "layer-count-over-a-lowered-limit": net(
        HEAD + "repeat 3 { ReLU {} }\n",
        "the network exceeds the limit of 3 layers",
        2,
        "ReLU",
        "--limit max_layers=VALUE",
        args=("--limit", "max_layers=3"),
    ),
    "expansion-over-a-lowered-limit": net(
        # 20 outer iterations, then 20 more per inner loop: the fifth inner loop passes 100
        HEAD + "repeat 20 {\n  repeat 20 {}\n}\n",
        "the spec expands to more than 100 loop iterations and template instances in all",
        3,
        "20",
        "--limit max_expansions=VALUE",
        args=("--limit", "max_expansions=100"),
    ),
    "tensor-over-the-size-limit": net(
        "input data: [N, 100000, 100000, 100000]\nReLU r {}\n",
        "Input 'data' produces the tensor [1, 100000, 100000, 100000] of 1,000,000,000,000,000 elements, "
        "more than the limit of 17,179,869,184",
        1,
        "input",
        "--limit max_tensor_elements=VALUE",
    ),
    "weights-over-the-size-limit": net(
        "input data: [N, 4096]\nInnerProduct fc { num_output: 4096 }\n",
        "the weights reach 16,781,312 elements at InnerProduct 'fc', more than the limit of 1,000,000",
        2,
        "InnerProduct",
        "--limit max_weight_elements=VALUE",
        args=("--limit", "max_weight_elements=1000000"),
    ),
    "brackets-nested-20000-deep": net(
        HEAD + "let a = " + "[" * DEEP + "]" * DEEP + "\n",
        "the file nests brackets, blocks or operators more than 100 levels deep",
        2,
        "[",
        nth=99,  # the file and the 'let' are the first two of the 100 levels
    ),
    # ------------------------------------------------------------------ Caffe prototxt
    "caffe-unknown-type": caffe(
        CAFFE_HEAD + 'layer { name: "r" type: "ReLUU" bottom: "data" top: "r" }\n',
        "layer 'r' has type 'ReLUU', which netspec does not support; did you mean 'ReLU'?",
        4,
        '"ReLUU"',
    ),
    "caffe-bad-syntax": caffe(
        CAFFE_HEAD + 'layer { name = "r" type: "ReLU" bottom: "data" top: "r" }\n',
        "unexpected character '='",
        4,
        "=",
        "fields are written 'key: value'",
    ),
    "caffe-unclosed-message": caffe(
        CAFFE_HEAD.replace("8 }", "8") + 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n',
        "unexpected end of file; expected ',', ';', '}' or a name",
        4,
        None,
        "the '{' at line 3, column 13 is not closed",
    ),
    "caffe-missing-bottom": caffe(
        CAFFE_HEAD + 'layer { name: "r" type: "ReLU" bottom: "dta" top: "r" }\n',
        "layer 'r' reads blob 'dta', which no earlier layer writes; did you mean 'data'?",
        4,
        '"dta"',
    ),
    "caffe-integer-too-large": caffe(
        CAFFE_HEAD + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        "  convolution_param { num_output: 99999999999999999999999 kernel_size: 3 } }\n",
        "the integer 99999999999999999999999 is too large; integers are limited to 2**62",
        5,
        "999",
    ),
    "caffe-empty-file": caffe("", "the file defines no layers for phase TEST", 1, None),
    # ------------------------------------------------------------------ untrusted input (issue 13)
    "whole-float-past-the-integer-limit": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 3  stride: 1e19 }\n",
        "Convolution parameter 'stride': expected a positive integer or a list [h, w] of them, "
        "got number 1e+19",
        2,
        "1e19",
    ),
    "whole-float-dilation": net(
        HEAD + "Convolution c { num_output: 8  kernel_size: 3  dilation: 1e19 }\n",
        "Convolution parameter 'dilation': expected a positive integer or a list [h, w] of them, "
        "got number 1e+19",
        2,
        "1e19",
    ),
    "range-of-a-whole-float-past-the-limit": net(
        HEAD + "let x = range(1e19)\n",
        "the value 1e+19 is too large; integers are limited to 2**62",
        2,
        "range",
    ),
    "range-longer-than-sys-maxsize": net(
        HEAD + "let x = range(-2**62, 2**62)\n",
        "range() of 9223372036854775808 values is too large",
        2,
        "range",
    ),
    "caffe-whole-float-stride": caffe(
        CAFFE_HEAD + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        "  convolution_param { num_output: 4 kernel_size: 3 stride: 1e19 } }\n",
        "Convolution parameter 'stride': expected a positive integer or a list [h, w] of them, "
        "got number 1e+19",
        5,
        "1e19",
    ),
    "same-top-twice": net(
        "input data: [N, 4, 8, 8]\nSlice s { top: [a, a] }\n",
        "'top:' names the tensor 'a' twice; a layer's outputs need distinct names",
        2,
        "[a, a]",
    ),
    "caffe-same-top-twice": caffe(
        CAFFE_HEAD + 'layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "a" }\n',
        "layer 's' names the top 'a' twice; a layer's tops need distinct names",
        4,
        '"a"',
        nth=2,
    ),
    "caffe-input-layer-same-top-twice": caffe(
        'name: "x"\nlayer { name: "in" type: "Input" top: "d" top: "d"\n'
        "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n",
        "layer 'in' names the top 'd' twice; a layer's tops need distinct names",
        2,
        '"d"',
        nth=2,
    ),
    "terminal-escape-in-a-string": net(
        HEAD + 'let s = "\x1b[2J\x1b]0;owned\x07"\nConvolution c { num_output: s  kernel_size: 3 }\n',
        "Convolution parameter 'num_output': expected a positive integer, got string "
        '"\\x1b[2J\\x1b]0;owned\\x07"',
        3,
        "s ",
    ),
    "loop-of-long-ranges": net(
        HEAD + "repeat 100000 { let x = range(1000000) }\n",
        "the spec's expressions exceed the evaluation budget of 10,000,000 steps, list items and "
        "string characters in all",
        2,
        "range",
        "--limit max_evaluation=VALUE",
    ),
    "comparing-long-lists-in-a-loop": net(
        HEAD + "let a = range(1000000)\nrepeat 100000 { if a == a { ReLU {} } }\n",
        "the spec's expressions exceed the evaluation budget of 10,000,000 steps, list items and "
        "string characters in all",
        3,
        "a == a",
        "--limit max_evaluation=VALUE",
    ),
    "many-long-lists": net(
        HEAD + "".join(f"let a{i} = range(1000000)\n" for i in range(200)),
        "the spec's expressions exceed the evaluation budget of 10,000,000 steps, list items and "
        "string characters in all",
        11,
        "range",
        "--limit max_evaluation=VALUE",
    ),
    "long-layer-names": net(
        HEAD
        + 'let s0 = "aaaaaaaaaaaaaaaa"\n'
        + "".join(f"let s{i} = s{i - 1} + s{i - 1}\n" for i in range(1, 25))
        + "repeat 400 as i { ReLU {s24}{i} {} }\n",
        "the spec's expressions exceed the evaluation budget of 10,000,000 steps, list items and "
        "string characters in all",
        21,
        "s18 + s18",
        "--limit max_evaluation=VALUE",
    ),
    "weights-past-the-default-limit": net(
        "input data: [N, 65536]\nInnerProduct fc { num_output: 262144 }\n",
        "the weights reach 17,180,131,328 elements at InnerProduct 'fc', more than the limit of 536,870,912",
        2,
        "InnerProduct",
        "--limit max_weight_elements=VALUE",
    ),
    "byte-order-mark": net(
        ("\ufeff" + HEAD + "Convolutoin c { num_output: 8 }\n").encode(),
        "unknown layer type or template 'Convolutoin'; did you mean 'Convolution'?",
        2,
        "Convolutoin",
    ),
    "caffe-byte-order-mark": Case(
        {
            "model.prototxt": (
                "\ufeff" + CAFFE_HEAD + 'layer { name: "r" type: "ReLUU" bottom: "data" top: "r" }\n'
            ).encode()
        },
        "layer 'r' has type 'ReLUU', which netspec does not support; did you mean 'ReLU'?",
        4,
        '"ReLUU"',
    ),
    "old-mac-line-ends": net(
        (HEAD + "ReLU r {}\nConvolutoin c { num_output: 8 }\n").replace("\n", "\r").encode(),
        "unknown layer type or template 'Convolutoin'; did you mean 'Convolution'?",
        3,
        "Convolutoin",
    ),
    "else-without-if": net(
        HEAD + "ReLU r {}\nelse {\n  ReLU q {}\n}\n",
        "'else' without 'if': an 'else' block must follow the '}' of an 'if' or 'elif' block",
        3,
        "else",
    ),
    "unclosed-brace-in-a-name": net(
        HEAD + "repeat 2 as i {\n  ReLU r{i {}\n}\n",
        "the '{' of an interpolation in a name is not closed",
        3,
        "{i",
        "name{expr}",
    ),
    "caffe-zero-dim": caffe(
        'name: "x"\ninput: "data"\ninput_shape { dim: 1 dim: 0 dim: 8 dim: 8 }\n'
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n',
        "input 'data' has the dimension 0 in its shape [1, 0, 8, 8]; dimensions are positive integers",
        3,
        "0",
    ),
    "caffe-unknown-data-layer": caffe(
        'name: "x"\nlayer { name: "data" type: "DenseImageData" top: "data" top: "label" }\n'
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n',
        "layer 'data' has type 'DenseImageData', which netspec does not support",
        2,
        '"DenseImageData"',
        "--input data:1x3x224x224",
    ),
}


def _expected_column(case: Case, text: str) -> int:
    line = text.splitlines()[case.line - 1] if text else ""
    if case.at is None:
        return len(line) + 1
    index = -1
    for _ in range(case.nth):
        index = line.index(case.at, index + 1)
    return index + 1


@pytest.mark.parametrize("case", CATALOGUE.values(), ids=CATALOGUE.keys())
def test_catalogue(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in case.files.items():
        Path(name).write_bytes(content if isinstance(content, bytes) else content.encode())
    Path("out.onnx").write_bytes(OLD_OUTPUT)
    before = sorted(p.name for p in tmp_path.iterdir())

    code = main(["compile", case.spec, "-o", "out.onnx", *case.args])

    stderr = capsys.readouterr().err
    where = case.where or case.spec
    shown = Path(where).read_bytes().decode("utf-8", errors="replace")
    column = _expected_column(case, shown)
    assert code == 1, stderr
    assert stderr.splitlines()[0] == f"{where}:{case.line}:{column}: error: {case.message}", stderr
    if case.hint is not None:
        hints = [line for line in stderr.splitlines() if line.startswith("  hint: ")]
        assert hints and case.hint in hints[0], stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert Path("out.onnx").read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_catalogue_covers_every_kind_the_issue_names() -> None:
    kinds = [
        *("stray-character", "unterminated-string", "not-utf8", "nul-byte"),
        *("missing-closing-brace", "equals-instead-of-colon", "missing-colon", "unbalanced-brackets"),
        *("unknown-layer-type", "unknown-parameter", "wrong-value-type"),
        *(
            "kernel-size-zero",
            "negative-stride",
            "group-not-dividing-channels",
            "softmax-axis-outside-tensor",
        ),
        *("missing-tensor", "duplicated-name", "shape-mismatch", "non-positive-output-size"),
        *("include-cycle", "missing-include", "template-recursion", "empty-file"),
        *("caffe-unknown-type", "caffe-bad-syntax", "caffe-missing-bottom"),
    ]
    assert set(kinds) <= set(CATALOGUE)


def test_a_missing_spec_file_is_an_error_without_a_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.net"
    assert main(["compile", str(missing), "-o", str(tmp_path / "out.onnx")]) == 1
    assert capsys.readouterr().err.strip() == f"error: no such file: {missing}"
    assert list(tmp_path.iterdir()) == []


def test_a_raised_limit_lets_the_spec_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.net"
    spec.write_text(HEAD + "repeat 3 { ReLU {} }\n")
    assert main(["check", str(spec), "--limit", "max_layers=3"]) == 1
    assert main(["check", str(spec), "--limit", "max_layers=4"]) == 0
    assert capsys.readouterr().out == f"{spec}: ok (3 layers, 0 params, 0 MACs)\n"


def test_an_unknown_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "x.net", "--limit", "max_layrs=10"])
    assert exit_info.value.code == 2
    assert "argument --limit: unknown limit 'max_layrs'" in capsys.readouterr().err
