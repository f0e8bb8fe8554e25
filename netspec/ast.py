"""The .net syntax tree: frozen dataclasses, each carrying the source span it came from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from netspec.diagnostics import SourceSpan

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    """A number, string or boolean as written."""

    value: int | float | str | bool
    span: SourceSpan


@dataclass(frozen=True)
class Name:
    """An identifier or dotted tensor path, possibly with ``{expr}`` interpolations."""

    parts: tuple[str | Expr, ...]
    span: SourceSpan

    @cached_property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    @property
    def text(self) -> str:
        """The name as written (interpolations shown as ``{...}``)."""
        return "".join(p if isinstance(p, str) else "{...}" for p in self.parts)


@dataclass(frozen=True)
class ListExpr:
    """``[a, b, ...]``."""

    items: tuple[Expr, ...]
    span: SourceSpan


@dataclass(frozen=True)
class Unary:
    """``-x``, ``+x`` or ``not x``."""

    op: str
    operand: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Binary:
    """``left op right``: arithmetic, comparison, ``and``/``or``, list and string ``+``."""

    op: str
    left: Expr
    right: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Conditional:
    """``condition ? if_true : if_false``."""

    condition: Expr
    if_true: Expr
    if_false: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Call:
    """``function(args)``: a built-in or a spec's ``def`` function."""

    function: str
    args: tuple[Expr, ...]
    span: SourceSpan


@dataclass(frozen=True)
class Index:
    """``target[index]``: an item of a list."""

    target: Expr
    index: Expr
    span: SourceSpan


Expr = Literal | Name | ListExpr | Unary | Binary | Conditional | Call | Index

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class ValueField:
    """``key: value`` inside a layer's ``{ }``."""

    key: str
    value: Expr
    span: SourceSpan
    key_span: SourceSpan


@dataclass(frozen=True)
class BlockField:
    """A nested message such as Caffe's ``convolution_param { ... }``."""

    key: str
    fields: tuple[Field, ...]
    span: SourceSpan
    key_span: SourceSpan


Field = ValueField | BlockField


@dataclass(frozen=True)
class Argument:
    """A template argument, positional or ``keyword = value``."""

    keyword: str | None
    value: Expr
    span: SourceSpan


@dataclass(frozen=True)
class LayerStmt:
    """``Type name(args) { fields }``: a layer, or a template instance when Type names a template."""

    type_name: str
    name: Name | None
    args: tuple[Argument, ...] | None
    fields: tuple[Field, ...]
    span: SourceSpan
    type_span: SourceSpan


@dataclass(frozen=True)
class HeaderField:
    """``key: value`` at the top of a file (``name:``, ``output:``)."""

    key: str
    value: Expr
    span: SourceSpan


@dataclass(frozen=True)
class InputDecl:
    """``input NAME: [dims]``."""

    name: str
    shape: Expr
    span: SourceSpan


@dataclass(frozen=True)
class IncludeDecl:
    """``include "path"``."""

    path: str
    span: SourceSpan


@dataclass(frozen=True)
class LetDecl:
    """``let NAME = expr``, or ``let NAME ?= expr`` (``if_unset``): a default that binds only
    where NAME has no value yet."""

    name: str
    value: Expr
    span: SourceSpan
    if_unset: bool = False


@dataclass(frozen=True)
class Param:
    """A template or function parameter, with its default."""

    name: str
    default: Expr | None
    span: SourceSpan


@dataclass(frozen=True)
class TemplateDef:
    """``template NAME(params) { body }``."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: SourceSpan


@dataclass(frozen=True)
class SetStmt:
    """``set NAME = expr``: a new value for the top-level constant NAME, seen by everything after
    it (later loop iterations included)."""

    name: str
    value: Expr
    span: SourceSpan


@dataclass(frozen=True)
class FunctionDef:
    """``def name(params) = expr``: a pure function of its parameters and the top-level constants."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    span: SourceSpan


@dataclass(frozen=True)
class IfStmt:
    """``if ... { } elif ... { } else { }``: the branches in order, then ``otherwise``."""

    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    otherwise: tuple[Stmt, ...]
    span: SourceSpan


@dataclass(frozen=True)
class RepeatStmt:
    """``repeat count [as variable] { body }``."""

    count: Expr
    variable: str | None
    body: tuple[Stmt, ...]
    span: SourceSpan


@dataclass(frozen=True)
class ForStmt:
    """``for variable in iterable { body }``."""

    variable: str
    iterable: Expr
    body: tuple[Stmt, ...]
    span: SourceSpan


Stmt = (
    HeaderField
    | InputDecl
    | IncludeDecl
    | LetDecl
    | SetStmt
    | TemplateDef
    | FunctionDef
    | LayerStmt
    | IfStmt
    | RepeatStmt
    | ForStmt
)


@dataclass(frozen=True)
class Module:
    """A whole file: its statements in order."""

    statements: tuple[Stmt, ...]
    span: SourceSpan
