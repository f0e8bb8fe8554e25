"""Language features of issue 15: quoted names (any character a reference implementation uses,
'-' in torchvision's RegNet), indexing inside name interpolations, functions defined in a spec,
values carried across loop iterations (``set``), and a template's own scope name as a value;
each with its diagnostics."""

from __future__ import annotations

import pytest

from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.infer import infer_shapes

pytestmark = pytest.mark.unit

HEAD = "input data: [N, 3, 8, 8]\n"


def names(text: str) -> list[str]:
    return [node.name for node in elaborate(SourceFile("t.net", HEAD + text)).nodes[1:]]


def failure(text: str) -> NetspecError:
    with pytest.raises(NetspecError) as caught:
        infer_shapes(elaborate(SourceFile("t.net", HEAD + text)), {"N": 1})
    return caught.value


def test_quoted_names_hold_any_character_and_interpolate() -> None:
    text = (
        "template Unit(c) { Convolution `a-b` { num_output: c  kernel_size: 1 }  ReLU `r-{c}` }\n"
        "for s in range(2) { Unit `trunk_output.block{s + 1}.block{s + 1}-0`(4) }\n"
        "Eltwise add { bottom: [`trunk_output.block1.block1-0.r-4`, `trunk_output.block2.block2-0`] }\n"
    )
    assert names(text) == [
        "trunk_output.block1.block1-0.a-b",
        "trunk_output.block1.block1-0.r-4",
        "trunk_output.block2.block2-0.a-b",
        "trunk_output.block2.block2-0.r-4",
        "add",
    ]


def test_a_plain_name_is_the_same_name_quoted() -> None:
    assert names("ReLU `relu`\nReLU r2 { bottom: relu }\n") == ["relu", "r2"]


def test_interpolations_index_lists() -> None:
    text = "let widths = [4, 6]\nfor s in range(2) { ReLU stage{s}.w{widths[s]} }\n"
    assert names(text) == ["stage0.w4", "stage1.w6"]
    assert names("let w = [[1, 2], [3, 4]]\nReLU `r{w[1][0] * 2}`\n") == ["r6"]


def test_functions_defined_in_a_spec() -> None:
    text = (
        "def make_divisible(v, d = 8) = max(d, int(v + d / 2) // d * d)\n"
        "def twice(x) = 2 * x\n"
        "def fact(n) = n <= 1 ? 1 : n * fact(n - 1)\n"
        "Convolution c { num_output: make_divisible(twice(fact(3)) * 1.5)  kernel_size: 1 }\n"
        "Convolution d { num_output: make_divisible(37, 4)  kernel_size: 1 }\n"
    )
    graph = elaborate(SourceFile("t.net", HEAD + text))
    assert graph.node("c").layer.params.num_output == 16  # 12·1.5 = 18 -> 16
    assert graph.node("d").layer.params.num_output == 36


def test_a_function_sees_its_parameters_and_top_level_constants_only() -> None:
    text = (
        "let base = 10\ndef f(x) = x + base\n"
        "template T(base) { Convolution c { num_output: f(1)  kernel_size: 1 } }\nT t(99)\n"
    )
    graph = elaborate(SourceFile("t.net", HEAD + text))
    assert graph.node("t.c").layer.params.num_output == 11


def test_a_template_knows_its_scope_name() -> None:
    text = (
        'template T() { if scope == "b.1" { ReLU last }  Sigmoid s }\n'
        "repeat 2 as i { T b.{i}() }\n"
        'template U(scope) { ReLU `{scope}` }\nU u("given")\n'
    )
    assert names(text) == ["b.0.s", "b.1.last", "b.1.s", "u.given"]


def test_set_carries_values_across_iterations_and_instances() -> None:
    text = (
        "let channels = 4\nlet block = 0\n"
        "template B(c) { Convolution conv { num_output: c  kernel_size: 1 }  set block = block + 1 }\n"
        "for s in range(3) {\n"
        "  repeat 2 as i { B `blocks.{block}`(channels) }\n"
        "  set channels = channels * 2\n"
        "}\n"
        "Convolution last { num_output: channels + block  kernel_size: 1 }\n"
    )
    graph = elaborate(SourceFile("t.net", HEAD + text))
    widths = {node.name: node.layer.params.num_output for node in graph.nodes[1:]}
    assert widths == {
        "blocks.0.conv": 4,
        "blocks.1.conv": 4,
        "blocks.2.conv": 8,
        "blocks.3.conv": 8,
        "blocks.4.conv": 16,
        "blocks.5.conv": 16,
        "last": 32 + 6,
    }


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("ReLU `abc\n", "unterminated quoted name", 2, 6),
        ("ReLU ``\n", "empty quoted name", 2, 6),
        ("let a = [1]\nReLU `x{a[3]}`\n", "index 3 is outside the list of 1 items", 3, 11),
        ("def f(x) = x\nReLU r { negative_slope: f(1, 2) }\n", "f() takes 1 argument, got 2", 3, 26),
        ("def f(x, y = 1) = x\nReLU r { negative_slope: f() }\n", "f() takes 1 to 2 arguments, got 0", 3, 26),
        (
            "def f(x) = f(x)\nReLU r { negative_slope: f(1) }\n",
            "f() calls spec functions more than 32 deep",
            2,
            12,
        ),
        ("def max(x) = x\n", "'max' is a built-in function and cannot be redefined", 2, 1),
        ("let g = 2\ndef g(x) = x\n", "'g' is already defined", 3, 1),
        ("def f(x, x) = x\n", "function 'f' has two parameters named 'x'", 2, 1),
        ("let k = 3\nReLU r { negative_slope: k(1) }\n", "'k' is integer 3, not a function", 3, 26),
        (
            "def f(x) = x + y\nReLU r { negative_slope: f(1) }\n",
            "operator '+' needs a number, got name 'y'",
            2,
            16,
        ),
        ("set width = 3\n", "set needs a top-level constant 'width' to change", 2, 1),
        (
            "repeat 2 as i { set i = 1 }\n",
            "'i' is a local name here; set changes top-level constants only",
            2,
            17,
        ),
    ],
)
def test_diagnostics(text: str, message: str, line: int, column: int) -> None:
    err = failure(text)
    diagnostic = err.diagnostics[0]
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), str(err)
