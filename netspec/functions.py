"""Functions defined in a spec: ``def make_divisible(v, d = 8) = max(d, int(v + d / 2) // d * d)``.

A function is pure: its body sees its parameters and the top-level constants (and functions),
nothing of the place it is called from. It may call itself, at most MAX_CALL_DEPTH deep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec import ast
from netspec.diagnostics import SourceSpan, error
from netspec.expr import Symbol, Value, evaluate

MAX_CALL_DEPTH = 32


@dataclass(frozen=True, eq=False)
class UserFunction:
    """A spec function: its definition, its parameters' default values (evaluated where it is
    defined) and the top-level constants its body reads."""

    definition: ast.FunctionDef
    defaults: tuple[Value | None, ...]
    constants: Mapping[str, Value]

    @property
    def name(self) -> str:
        return self.definition.name

    def __repr__(self) -> str:
        return f"function '{self.name}'"

    def call(self, arguments: Sequence[Value], span: SourceSpan, depth: int) -> Value:
        """The body's value for ``arguments`` (a call ``depth`` deep in spec function calls)."""
        params = self.definition.params
        required = sum(1 for d in self.defaults if d is None)
        if not required <= len(arguments) <= len(params):
            expected = str(len(params)) if required == len(params) else f"{required} to {len(params)}"
            plural = "s" if len(params) != 1 else ""
            raise error(
                f"{self.name}() takes {expected} argument{plural}, got {len(arguments)}",
                span,
                hint=f"defined at {self.definition.span.location}: def {self.signature()}",
            )
        if depth >= MAX_CALL_DEPTH:
            raise error(
                f"{self.name}() calls spec functions more than {MAX_CALL_DEPTH} deep",
                span,
                hint="a function that calls itself needs a condition that stops it",
            )
        values = dict(zip((p.name for p in params), arguments, strict=False))
        for param, default in zip(params[len(arguments) :], self.defaults[len(arguments) :], strict=True):
            values[param.name] = default  # type: ignore[assignment]  # past the arguments, defaults are given (checked above)
        return evaluate(self.definition.body, _BodyLookup(values, self.constants, depth + 1))

    def signature(self) -> str:
        params = ", ".join(p.name if p.default is None else f"{p.name} = ..." for p in self.definition.params)
        return f"{self.name}({params})"


class _BodyLookup:
    """Names inside a function body: its parameters, then the top-level constants."""

    def __init__(self, values: Mapping[str, Value], constants: Mapping[str, Value], depth: int) -> None:
        self.values = values
        self.constants = constants
        self.call_depth = depth

    def __call__(self, name: str, span: SourceSpan) -> Value:
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            return self.constants[name]
        return Symbol(name)
