"""netspec's own evaluator for spec expressions: arithmetic, comparisons, conditionals and a
few pure functions over constants, template arguments and loop variables. Never Python eval.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netspec import ast
from netspec.diagnostics import NetspecError, SourceSpan, did_you_mean, error

# A value an expression can take. Unbound identifiers evaluate to a Symbol: an enum word such
# as MAX, or the name of a tensor, which the stage that reads the field interprets.


@dataclass(frozen=True)
class Symbol:
    """A bare word that names nothing bound: an enum value, a tensor or a layer's name."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TensorRef:
    """A tensor already resolved to its full name (template arguments that name tensors)."""

    name: str

    def __str__(self) -> str:
        return self.name


Value = int | float | bool | str | Symbol | TensorRef | tuple  # tuple of Values

# Any integer past this is a mistake in a spec, and computing with it could exhaust memory.
INTEGER_LIMIT = 2**62

# Lists are capped in depth and in the values they hold in all (a list counts once for every
# place it appears), strings in length: 'let b = [a, a]' or 'let c = b + b' repeated by a chain
# of constants would otherwise build values whose rendering or comparison exhausts time, memory
# or Python's stack.
MAX_LIST_DEPTH = 100
MAX_LIST_VALUES = 1_000_000
MAX_STRING_LENGTH = 10_000_000


class ListValue(tuple[object, ...]):
    """A list value: a tuple that knows how deep it nests and how many values it holds in all
    (a nested list counts once itself and once for each value in it), so that the caps are
    checked in time proportional to its own length."""

    depth: int
    # NOTE: not ``count``, which would hide tuple.count (a list's .count(x) must still work).
    total: int


class Budget:
    """What evaluating a spec's expressions may cost in all: one unit per expression step,
    per list item and string character created, and per value or character compared, rendered
    or walked. Every operation draws from the one budget, so that no spec can make the
    evaluator run for hours or fill memory while each single value stays under its cap
    (Limits.max_evaluation; --limit raises it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, units: int, span: SourceSpan | None) -> None:
        self.used += units
        if self.used > self.limit:
            raise error(
                f"the spec's expressions exceed the evaluation budget of {self.limit:,} steps, list "
                "items and string characters in all",
                span,
                hint="to allow it, raise the cap with --limit max_evaluation=VALUE",
            )


# The budget of an evaluation that is given none (netspec.limits.Limits.max_evaluation's default).
DEFAULT_EVALUATION_BUDGET = 10_000_000


def size(value: object) -> int:
    """What walking ``value`` costs: its values in all for a list, its length for a string."""
    if isinstance(value, ListValue):
        return value.total + 1
    if isinstance(value, tuple):
        return len(value) + 1
    if isinstance(value, str):
        return len(value) + 1
    return 1


def make_list(items: tuple[object, ...], span: SourceSpan | None = None) -> ListValue:
    """``items`` as a list value, or a diagnostic past MAX_LIST_DEPTH or MAX_LIST_VALUES."""
    depth, count = 1, 0
    for item in items:
        if isinstance(item, tuple):
            inner = item if isinstance(item, ListValue) else make_list(item, span)
            depth, count = max(depth, inner.depth + 1), count + inner.total + 1
        else:
            count += 1
    if depth > MAX_LIST_DEPTH:
        raise error(f"lists nest more than {MAX_LIST_DEPTH} deep", span)
    if count > MAX_LIST_VALUES:
        raise error(f"the list holds more than {MAX_LIST_VALUES:,} values in all", span)
    value = ListValue(items)
    value.depth, value.total = depth, count
    return value


Lookup = Callable[[str, SourceSpan], "Value"]


def as_integer(value: object) -> int | None:
    """``value`` as an integer when it is one (a whole float included) within INTEGER_LIMIT;
    None otherwise. NOTE: a whole float such as 1e19 is past the limit too: converting it
    without the check would let it past every integer bound of the spec."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and abs(value) <= INTEGER_LIMIT:
        return value
    return None


def _to_int(value: Value, span: SourceSpan) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"expected a number, got {describe(value)}", span)
    number = as_integer(value)
    if number is None:
        if isinstance(value, float) and not value.is_integer():
            raise error(f"expected an integer, got {value}", span)
        raise error(f"the value {value} is too large; integers are limited to 2**62", span)
    return number


def _range(*args: Value, span: SourceSpan) -> tuple:
    bounds = [_to_int(a, span) for a in args]
    if not 1 <= len(bounds) <= 3:
        raise error(f"range() takes 1 to 3 arguments, got {len(bounds)}", span)
    if len(bounds) == 3 and bounds[2] == 0:
        raise error("range() needs a non-zero step, got 0", span)
    result = range(*bounds)
    # NOTE: len() of a range past sys.maxsize values raises OverflowError; the comparison does not.
    length = max(0, -((result.start - result.stop) // result.step))
    if length > MAX_LIST_VALUES:
        raise error(f"range() of {length} values is too large", span)
    return make_list(tuple(result), span)


def _numeric(name: str, function: Callable[..., object]) -> Callable[..., Value]:
    def apply(*args: Value, span: SourceSpan) -> Value:
        values: list[Value] = []
        for a in args:
            if isinstance(a, tuple) and name in _VARIADIC:
                values.extend(a)
            else:
                values.append(a)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise error(f"{name}() takes numbers, got {describe(v)}", span)
        if name in _VARIADIC:
            if not values and name != "sum":
                raise error(f"{name}() needs at least one number", span)
        elif len(values) != 1:
            raise error(f"{name}() takes exactly one argument, got {len(values)}", span)
        try:
            return function(*values)  # type: ignore[return-value]  # math functions of numbers give numbers
        except (ValueError, OverflowError):
            raise error(f"{name}() is not defined for {describe(values[0])}", span) from None

    return apply


_VARIADIC = ("min", "max", "sum")


def _single(name: str, function: Callable[[Value, SourceSpan], Value]) -> Callable[..., Value]:
    """A one-argument function of any value, with the argument count checked."""

    def apply(*args: Value, span: SourceSpan) -> Value:
        if len(args) != 1:
            raise error(f"{name}() takes exactly one argument, got {len(args)}", span)
        return function(args[0], span)

    return apply


def _len(value: Value, span: SourceSpan) -> int:
    if not isinstance(value, (tuple, str)):
        raise error(f"len() takes a list or a string, got {describe(value)}", span)
    return len(value)


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "min": _numeric("min", min),
    "max": _numeric("max", max),
    "abs": _numeric("abs", abs),
    "sum": _numeric("sum", lambda *v: sum(v)),
    "int": _numeric("int", int),
    "float": _numeric("float", float),
    "floor": _numeric("floor", math.floor),
    "ceil": _numeric("ceil", math.ceil),
    "round": _numeric("round", round),
    "sqrt": _numeric("sqrt", math.sqrt),
    "log": _numeric("log", math.log),
    "log2": _numeric("log2", math.log2),
    "range": _range,
    "len": _single("len", _len),
    "str": _single("str", lambda value, span: _checked_string(str(value), span)),
}


_ARITHMETIC: dict[str, Callable[[object, object], object]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def describe(value: object) -> str:
    """A value as a person reads it in a message: its type and its text."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, (Symbol, TensorRef)):
        return f"name '{value.name}'"
    if isinstance(value, tuple):
        shown = render(value)
        return f"list {shown}" if len(shown) <= 200 else f"list {shown[:150]}... of {len(value)} items"
    return repr(value)


def render(value: Value) -> str:
    """A value written back in spec syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return f"[{', '.join(render(v) for v in value)}]"
    return str(value)


def truthy(value: Value, span: SourceSpan) -> bool:
    if isinstance(value, (bool, int, float)):
        return bool(value)
    raise error(f"a condition must be true or false, got {describe(value)}", span)


def evaluate(expr: ast.Expr, lookup: Lookup, budget: Budget | None = None) -> Value:
    """Evaluate ``expr``; ``lookup`` resolves identifiers (returning a Symbol when unbound).
    The work is drawn from ``budget`` (a fresh default one when None)."""
    return _evaluate(expr, lookup, Budget(DEFAULT_EVALUATION_BUDGET) if budget is None else budget)


def _evaluate(expr: ast.Expr, lookup: Lookup, budget: Budget) -> Value:
    # Budget.charge(1, ...) inlined and the commonest nodes first: deep specs evaluate tens of
    # thousands of these.
    budget.used += 1
    if budget.used > budget.limit:
        budget.charge(0, expr.span)
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Name):
        if expr.is_plain:
            return lookup(expr.parts[0], expr.span)  # type: ignore[arg-type]  # a plain name is one str part
        return Symbol(interpolate(expr, lookup, budget))
    if isinstance(expr, ast.Binary):
        return _binary(expr, lookup, budget)
    if isinstance(expr, ast.ListExpr):
        budget.charge(len(expr.items), expr.span)
        return make_list(tuple(_evaluate(item, lookup, budget) for item in expr.items), expr.span)
    if isinstance(expr, ast.Unary):
        operand = _evaluate(expr.operand, lookup, budget)
        if expr.op == "not":
            return not truthy(operand, expr.operand.span)
        number = _number(operand, expr.operand.span, expr.op)
        return -number if expr.op == "-" else number
    if isinstance(expr, ast.Conditional):
        condition = truthy(_evaluate(expr.condition, lookup, budget), expr.condition.span)
        return _evaluate(expr.if_true if condition else expr.if_false, lookup, budget)
    if isinstance(expr, ast.Call):
        function = FUNCTIONS.get(expr.function)
        if function is None:
            from netspec.functions import UserFunction  # spec functions (def f(x) = ...)

            defined = lookup(expr.function, expr.span)
            if isinstance(defined, UserFunction):
                arguments = [evaluate(a, lookup) for a in expr.args]
                value = defined.call(arguments, expr.span, getattr(lookup, "call_depth", 0))
                return _checked(value, expr.span)
            if not isinstance(defined, Symbol):
                raise error(f"'{expr.function}' is {describe(defined)}, not a function", expr.span)
            hint = did_you_mean(expr.function, FUNCTIONS)
            raise error(
                f"unknown function '{expr.function}'",
                expr.span,
                hint=hint or f"functions: {', '.join(sorted(FUNCTIONS))}",
            )
        args = [_evaluate(a, lookup, budget) for a in expr.args]
        # A function walks its list and string arguments and creates its result: both are paid.
        budget.charge(sum(size(a) for a in args), expr.span)
        result = _checked(function(*args, span=expr.span), expr.span)
        budget.charge(size(result), expr.span)
        return result
    if isinstance(expr, ast.Index):
        target = _evaluate(expr.target, lookup, budget)
        index = _evaluate(expr.index, lookup, budget)
        if not isinstance(target, tuple):
            raise error(f"only lists can be indexed, not {describe(target)}", expr.target.span)
        position = _to_int(index, expr.index.span)
        if not -len(target) <= position < len(target):
            raise error(f"index {position} is outside the list of {len(target)} items", expr.index.span)
        return target[position]
    raise AssertionError(f"unknown expression node {expr!r}")


def interpolate(name: ast.Name, lookup: Lookup, budget: Budget | None = None) -> str:
    """The text of a name with its ``{expr}`` parts evaluated, built in one join (linear in
    its length, which is drawn from ``budget``)."""
    if budget is None:
        budget = Budget(DEFAULT_EVALUATION_BUDGET)
    pieces = []
    length = 0
    for part in name.parts:
        if isinstance(part, str):
            pieces.append(part)
            length += len(part)
            continue
        value = _evaluate(part, lookup, budget)
        if isinstance(value, bool) or not isinstance(value, (int, str, Symbol, TensorRef)):
            raise error(f"a name can only interpolate integers and names, got {describe(value)}", part.span)
        pieces.append(str(value))
        length += len(pieces[-1])
    budget.charge(length, name.span)
    return _checked_string("".join(pieces), name.span)


def _number(value: Value, span: SourceSpan, op: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"operator '{op}' needs a number, got {describe(value)}", span)
    return value


def _binary(expr: ast.Binary, lookup: Lookup, budget: Budget) -> Value:
    if expr.op in ("and", "or"):
        left = truthy(_evaluate(expr.left, lookup, budget), expr.left.span)
        if (expr.op == "and") != left:
            return left
        return truthy(_evaluate(expr.right, lookup, budget), expr.right.span)
    left_value = _evaluate(expr.left, lookup, budget)
    right_value = _evaluate(expr.right, lookup, budget)
    if expr.op in _COMPARISONS:
        if expr.op in ("==", "!="):
            budget.charge(size(left_value) + size(right_value), expr.span)
            return _COMPARISONS[expr.op](_as_text(left_value), _as_text(right_value))
        left_number = _number(left_value, expr.left.span, expr.op)
        return _COMPARISONS[expr.op](left_number, _number(right_value, expr.right.span, expr.op))
    if expr.op == "+" and isinstance(left_value, tuple) and isinstance(right_value, tuple):
        budget.charge(len(left_value) + len(right_value), expr.span)
        return make_list(left_value + right_value, expr.span)
    if expr.op == "+" and isinstance(left_value, str) and isinstance(right_value, str):
        budget.charge(len(left_value) + len(right_value), expr.span)
        return _checked_string(left_value + right_value, expr.span)
    left_number = _number(left_value, expr.left.span, expr.op)
    right_number = _number(right_value, expr.right.span, expr.op)
    if expr.op in ("/", "//", "%") and right_number == 0:
        raise error(f"division by zero: the right operand of '{expr.op}' is {right_number}", expr.right.span)
    # NOTE: an integer power is exact, so 10 ** 10**9 would run until memory runs out; a float
    # power overflows quickly on its own (OverflowError below).
    if (
        expr.op == "**"
        and isinstance(left_number, int)
        and isinstance(right_number, int)
        and right_number > 64
        and abs(left_number) > 1
    ):
        raise _refused(expr, left_number, right_number, "is too large")
    try:
        result = _ARITHMETIC[expr.op](left_number, right_number)
    except OverflowError:
        raise _refused(expr, left_number, right_number, "is too large") from None
    except ZeroDivisionError:
        raise _refused(expr, left_number, right_number, "divides by zero") from None
    if isinstance(result, complex):
        raise _refused(expr, left_number, right_number, "is not a real number")
    return _checked(result, expr.span)  # type: ignore[arg-type]  # complex refused above


def _as_text(value: Value) -> Value:
    """``value`` with symbols as their text: an enum word equals its string (MAX == "MAX"),
    as fields accept either."""
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, tuple):
        return tuple(_as_text(v) for v in value)
    return value


def _refused(expr: ast.Binary, left: int | float, right: int | float, reason: str) -> NetspecError:
    """The diagnostic for an operation that has no value: ``left op right`` (negative operands
    in parentheses) and why; the text is built only when one is raised."""
    return error(f"{_operand(left)} {expr.op} {_operand(right)} {reason}", expr.span)


def _operand(number: int | float) -> str:
    return f"({number})" if number < 0 else str(number)


def _checked_string(text: str, span: SourceSpan) -> str:
    if len(text) > MAX_STRING_LENGTH:
        raise error(f"a string of {len(text):,} characters is too long", span)
    return text


def _checked(value: Value, span: SourceSpan) -> Value:
    """``value``, unless it is an integer past :data:`INTEGER_LIMIT` or an infinite number."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INTEGER_LIMIT:
        digits = len(str(abs(value)))
        shown = str(value) if digits <= 25 else f"an integer of {digits} digits"
        raise error(f"the value {shown} is too large; integers are limited to 2**62", span)
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"the value is too large for a floating-point number (got {value})", span)
    return value
