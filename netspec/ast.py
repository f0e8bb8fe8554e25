"""The .net syntax tree: frozen dataclasses, each carrying the source span it came from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from netspec.diagnostics import SourceSpan

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
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
    items: tuple[Expr, ...]
    span: SourceSpan


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Conditional:
    condition: Expr
    if_true: Expr
    if_false: Expr
    span: SourceSpan


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: SourceSpan


@dataclass(frozen=True)
class Index:
    target: Expr
    index: Expr
    span: SourceSpan


Expr = Literal | Name | ListExpr | Unary | Binary | Conditional | Call | Index

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class ValueField:
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
    key: str
    value: Expr
    span: SourceSpan


@dataclass(frozen=True)
class InputDecl:
    name: str
    shape: Expr
    span: SourceSpan


@dataclass(frozen=True)
class IncludeDecl:
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
    name: str
    default: Expr | None
    span: SourceSpan


@dataclass(frozen=True)
class TemplateDef:
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
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    otherwise: tuple[Stmt, ...]
    span: SourceSpan


@dataclass(frozen=True)
class RepeatStmt:
    count: Expr
    variable: str | None
    body: tuple[Stmt, ...]
    span: SourceSpan


@dataclass(frozen=True)
class ForStmt:
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
    statements: tuple[Stmt, ...]
    span: SourceSpan
