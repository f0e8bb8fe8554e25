"""The expression evaluator (netspec.expr): exact values, precedence, short-circuits and errors."""

from __future__ import annotations

import pytest

from netspec.diagnostics import NetspecError, SourceSpan
from netspec.expr import INTEGER_LIMIT, Symbol, TensorRef, Value, describe, evaluate, render
from netspec.parse import parse_expression

pytestmark = pytest.mark.unit


def value(text: str, **bindings: Value) -> Value:
    """``text`` evaluated with ``bindings``; other names are Symbols, as in a spec."""

    def lookup(name: str, span: SourceSpan) -> Value:
        return bindings[name] if name in bindings else Symbol(name)

    return evaluate(parse_expression(text), lookup)


def failure(text: str, **bindings: Value) -> NetspecError:
    with pytest.raises(NetspecError) as caught:
        value(text, **bindings)
    return caught.value


def same(actual: Value, expected: Value) -> bool:
    """Equal and of the same type (3 and 3.0 differ, True and 1 differ)."""
    if isinstance(expected, tuple):
        return (
            isinstance(actual, tuple)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals
        ("42", 42),
        ("0.5", 0.5),
        (".25", 0.25),
        ("1e3", 1000.0),
        ("2.5e-1", 0.25),
        ('"text"', "text"),
        ("'single'", "single"),
        (r'"a\"b"', 'a"b'),
        ("true", True),
        ("false", False),
        ("[]", ()),
        ("[1, 2, 3,]", (1, 2, 3)),
        # arithmetic: integers stay integers except under true division
        ("1 + 2", 3),
        ("7 - 10", -3),
        ("6 * 7", 42),
        ("7 / 2", 3.5),
        ("6 / 3", 2.0),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7.5 // 2", 3.0),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("2 ** 0.5", 2**0.5),
        ("1.5 * 2", 3.0),
        # precedence and associativity
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("64 / 4 / 2", 8.0),
        ("10 // 4 * 4", 8),
        ("8 // 3 % 2", 0),
        ("2 * 3 ** 2", 18),
        ("2 ** 3 ** 2", 512),
        ("-2 ** 2", -4),
        ("-3 ** 2", -9),
        ("(-3) ** 2", 9),
        ("- -3", 3),
        ("+4", 4),
        ("1 + 2 < 4", True),
        ("not 1 == 2", True),
        ("not true or true", True),
        ("not (true or true)", False),
        ("true or false and false", True),
        ("(true or false) and false", False),
        # comparisons
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 4", False),
        ("4 >= 5", False),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ('"a" == "a"', True),
        ('1 == "1"', False),
        ("[1, 2] == [1, 2]", True),
        ("MAX == MAX", True),
        ("MAX == AVE", False),
        ('MAX == "MAX"', True),
        ('"relu" != relu', False),
        ('[MAX, 1] == ["MAX", 1]', True),
        # conditional values (right-associative)
        ("true ? 1 : 2", 1),
        ("false ? 1 : 2", 2),
        ("false ? 1 : true ? 2 : 3", 2),
        ("1 < 2 ? 10 : 20", 10),
        # lists
        ("[1, 2] + [3]", (1, 2, 3)),
        ("[1, 2, 3][0]", 1),
        ("[1, 2, 3][-1]", 3),
        ("[[1, 2], [3, 4]][1][0]", 3),
        ('"ab" + "cd"', "abcd"),
        # functions
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("min([4, 2, 8])", 2),
        ("max([4, 2], 9)", 9),
        ("sum([1, 2, 3])", 6),
        ("sum([])", 0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("int(3.9)", 3),
        ("int(-3.9)", -3),
        ("float(2)", 2.0),
        ("floor(3.7)", 3),
        ("floor(-3.2)", -4),
        ("ceil(3.2)", 4),
        ("round(2.4)", 2),
        ("round(2.5)", 2),
        ("round(3.5)", 4),
        ("sqrt(16)", 4.0),
        ("log2(8)", 3.0),
        ("ceil(log2(48))", 6),  # RegNet's width rule quantises by log2
        ("log(1)", 0.0),
        ("len([1, 2, 3])", 3),
        ('len("abcd")', 4),
        ("range(3)", (0, 1, 2)),
        ("range(1, 4)", (1, 2, 3)),
        ("range(10, 0, -4)", (10, 6, 2)),
        ("str(3)", "3"),
        ("max(1, 2,)", 2),
    ],
)
def test_value(text: str, expected: Value) -> None:
    assert same(value(text), expected), value(text)


def test_names_use_bindings_and_fall_back_to_symbols() -> None:
    assert same(value("planes * 4", planes=64), 256)
    assert same(value("widths[s]", widths=(64, 128), s=1), 128)
    assert value("MAX") == Symbol("MAX")
    assert value("layer1.0.conv1") == Symbol("layer1.0.conv1")
    assert value("x", x=TensorRef("conv1")) == TensorRef("conv1")
    assert value("i == 0 ? in : concat", i=0, **{"in": TensorRef("stem")}) == TensorRef("stem")


def test_interpolated_name_is_a_symbol() -> None:
    assert value("concat{i}", i=3) == Symbol("concat3")
    assert value("layer{s + 1}.{i}", s=0, i=2) == Symbol("layer1.2")


def test_and_or_short_circuit() -> None:
    assert value("false and 1 / 0 == 1") is False
    assert value("true or 1 / 0 == 1") is True
    assert value("x > 0 and 10 // x == 5", x=0) is False


def test_conditional_evaluates_only_the_chosen_branch() -> None:
    assert same(value("true ? 1 : 1 / 0"), 1)
    assert same(value("false ? [1][5] : 2"), 2)


def test_describe_and_render() -> None:
    assert describe(3) == "integer 3"
    assert describe(2.5) == "number 2.5"
    assert describe(True) == "boolean true"
    assert describe("a") == 'string "a"'
    assert describe(Symbol("MAX")) == "name 'MAX'"
    assert describe((1, "a")) == 'list [1, "a"]'
    assert render((1, False, "x", Symbol("N"))) == '[1, false, "x", N]'


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("1 / 0", "division by zero: the right operand of '/' is 0", 5),
        ("1 // 0", "division by zero: the right operand of '//' is 0", 6),
        ("5 % 0.0", "division by zero: the right operand of '%' is 0.0", 5),
        ("(-8) ** 0.5", "(-8) ** 0.5 is not a real number", 1),
        ("0 ** -1", "0 ** (-1) divides by zero", 1),
        ("foo(1)", "unknown function 'foo'", 1),
        ("mx(1, 2)", "unknown function 'mx'", 1),
        ('1 + "a"', "operator '+' needs a number, got string \"a\"", 5),
        ("[1] * 2", "operator '*' needs a number, got list [1]", 1),
        ("true + 1", "operator '+' needs a number, got boolean true", 1),
        ('"a" < 1', "operator '<' needs a number, got string \"a\"", 1),
        ("-MAX", "operator '-' needs a number, got name 'MAX'", 2),
        ('not "x"', 'a condition must be true or false, got string "x"', 5),
        ("[1] ? 1 : 2", "a condition must be true or false, got list [1]", 1),
        ("[1, 2][5]", "index 5 is outside the list of 2 items", 8),
        ("[1, 2][0.5]", "expected an integer, got 0.5", 8),
        ("3[0]", "only lists can be indexed, not integer 3", 1),
        ("len(3)", "len() takes a list or a string, got integer 3", 1),
        ("len(1, 2)", "len() takes exactly one argument, got 2", 1),
        ("str()", "str() takes exactly one argument, got 0", 1),
        ("abs(1, 2)", "abs() takes exactly one argument, got 2", 1),
        ("min()", "min() needs at least one number", 1),
        ('max(1, "a")', 'max() takes numbers, got string "a"', 1),
        ("sqrt(-1)", "sqrt() is not defined for integer -1", 1),
        ("log(0)", "log() is not defined for integer 0", 1),
        ("log2(-2.5)", "log2() is not defined for number -2.5", 1),
        ("range(0, 5, 0)", "range() needs a non-zero step, got 0", 1),
        ("range(1, 2, 3, 4)", "range() takes 1 to 3 arguments, got 4", 1),
        ("range(2000000)", "range() of 2000000 values is too large", 1),
        ("2 ** 100", "2 ** 100 is too large", 1),
        ("2 ** 63", "the value 9223372036854775808 is too large; integers are limited to 2**62", 1),
        ("4611686018427387904 * 2", "the value 9223372036854775808 is too large", 1),
        ("99999999999999999999999", "the integer 99999999999999999999999 is too large", 1),
        ("1" * 5000, "the integer of 5000 digits is too large", 1),
        ("1e999", "the number 1e999 is too large", 1),
        ("1e300 * 1e300", "the value is too large for a floating-point number (got inf)", 1),
        ("10.0 ** 400", "10.0 ** 400 is too large", 1),
        ("floor(1e308 * 10)", "the value is too large for a floating-point number", 7),
        ("int(1e300)", "an integer of 301 digits is too large", 1),
    ],
)
def test_error(text: str, message: str, column: int) -> None:
    diagnostic = failure(text).diagnostics[0]
    assert message in diagnostic.message
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (1, column)


def test_unknown_function_suggests_the_closest_name() -> None:
    assert failure("mx(1, 2)").diagnostics[0].hint == "did you mean 'max'?"
    assert failure("floot(2.5)").diagnostics[0].hint == "did you mean 'floor'?"


def test_unknown_function_without_a_close_name_lists_the_functions() -> None:
    hint = failure("zzz(1)").diagnostics[0].hint
    assert hint is not None
    assert hint.startswith("functions: abs, ceil, float, floor, int, len, log, log2, max, min")


def test_integer_limit_is_inclusive() -> None:
    assert value(str(INTEGER_LIMIT)) == INTEGER_LIMIT
    assert value("2 ** 62") == INTEGER_LIMIT
    assert value("-(2 ** 62)") == -INTEGER_LIMIT


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("1 +", "unexpected end of the expression; expected an expression", 4),
        ("(1 + 2", "unexpected end of the expression; expected ')'", 7),
        ("1 ? 2", "unexpected end of the expression; expected ':'", 6),
        ("1 < 2 < 3", "unexpected '<'", 7),
        ("1 $ 2", "unexpected character '$'", 3),
    ],
)
def test_syntax_error(text: str, message: str, column: int) -> None:
    diagnostic = failure(text).diagnostics[0]
    assert message in diagnostic.message
    assert diagnostic.span is not None
    assert diagnostic.span.column == column


@pytest.mark.unit
def test_a_list_value_is_still_a_tuple() -> None:
    from netspec.expr import make_list

    # Its bookkeeping does not hide tuple's own methods (``count`` once did).
    value = make_list((1, 2, 2, (3, 2)))
    assert value.count(2) == 2 and value.index((3, 2)) == 3
    assert (value.depth, value.total) == (2, 6)
