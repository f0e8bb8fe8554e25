"""Text to AST: the Lark LALR parser for .net files.

Lark's exceptions become netspec diagnostics here and nowhere else, for .net files and (through
:func:`parse_tree` with its own :class:`Syntax`) for Caffe's prototxt files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from netspec import ast, parse_tables
from netspec.diagnostics import NetspecError, SourceFile, SourceSpan, error
from netspec.expr import INTEGER_LIMIT
from netspec.limits import MAX_NESTING

_INTERPOLATION = re.compile(r"\{([^{}]*)\}")

# The words for the punctuation both grammars share.
PUNCTUATION_WORDS = {
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COLON": "':'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "$END": "the end of the file",
}


@dataclass(frozen=True)
class Syntax:
    """What turning one grammar's Lark errors into diagnostics depends on.

    ``token_words`` names each terminal for a person ("a number", "'{'"); a token of a type in
    ``valued_tokens`` is quoted with its kind ("integer '7'"); ``summaries`` are (terminals,
    telltale subset, phrase): where the parser expects the telltale ones, the phrase ("an
    expression") stands for all of them. ``hint`` adds the grammar's own advice for an
    unexpected token (given the text, the token, the expected terminals and the offsets of the
    brackets still open) after the advice on brackets every grammar gets. The flags say which
    .net constructs the grammar has: ``name{expr}`` interpolation, `quoted names`, ``else``.
    """

    token_words: Mapping[str, str]
    valued_tokens: frozenset[str]
    hint: Callable[[str, Token, set[str], list[int]], str | None]
    summaries: tuple[tuple[frozenset[str], frozenset[str], str], ...] = ()
    interpolated_names: bool = False
    quoted_names: bool = False
    else_blocks: bool = False

    def describe(self, token: Token) -> str:
        """``token`` as a message quotes it: ``integer '7'``, ``'}'``."""
        if token.type in self.valued_tokens:
            return f"{self.token_words[token.type].split()[-1]} '{token}'"
        return f"'{token}'"

    def expected(self, names: Any) -> str:
        """The terminals a parser state accepts, as words: "':' or '{'", "an expression"."""
        names = set(names)
        summaries = []
        for start, telltale, summary in self.summaries:
            if telltale <= names:
                names -= start
                summaries.append(summary)
        words = sorted({self.token_words.get(n, repr(n.lower()) if n.isupper() else n) for n in names})
        words += summaries
        if not words:
            return "something else"
        if len(words) > 6:
            words = [*words[:6], "..."]
        return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else words[0]


def _parser() -> Lark:
    return parse_tables.parser("grammar.lark")


def reject_nul_bytes(source: SourceFile) -> None:
    """A NUL byte means a binary file, not a spec: say so before the parser does worse."""
    if "\0" in source.text:
        offset = source.text.index("\0")
        line = source.text.count("\n", 0, offset) + 1
        column = offset - (source.text.rfind("\n", 0, offset) + 1) + 1
        raise error(
            "the file contains a NUL byte",
            SourceSpan(source, line, column, line, column + 1),
            hint="is this a binary file rather than a spec?",
        )


def check_nesting(tree: Tree[Token], source: SourceFile) -> None:
    """Raise a diagnostic at the first construct nested more than MAX_NESTING levels deep.

    Walks the tree a level at a time, without recursion: it runs before anything recursive
    touches the tree."""
    level = [tree]
    depth = 1
    while level:
        if depth > MAX_NESTING:
            meta = level[0].meta
            line, column = (1, 1) if getattr(meta, "empty", True) else (meta.line, meta.column)
            raise error(
                f"the file nests brackets, blocks or operators more than {MAX_NESTING} levels deep",
                SourceSpan(source, line, column, line, column + 1),
                hint="split the expression or the block, e.g. with 'let' constants or templates",
            )
        level = [child for node in level for child in node.children if isinstance(child, Tree)]
        depth += 1


def parse_source(source: SourceFile) -> ast.Module:
    """Parse a whole .net file into an AST, or raise a NetspecError pointing at the mistake."""
    reject_nul_bytes(source)
    tree = parse_tree(_parser(), source, NET_SYNTAX, "module")
    return transform(_ToAst(source), tree)


def parse_tree(
    parser: Lark,
    source: SourceFile,
    syntax: Syntax,
    start: str,
    text: str | None = None,
    ending: str = "end of file",
) -> Tree[Token]:
    """The Lark tree of ``source`` (or of ``text``, see :func:`syntax_error`) from ``start``;
    a syntax error, or nesting deeper than MAX_NESTING, is raised as a diagnostic."""
    try:
        tree = parser.parse(source.text if text is None else text, start=start)
    except UnexpectedInput as exc:
        raise syntax_error(source, exc, syntax, text, ending=ending) from None
    check_nesting(tree, source)
    return tree


def transform(transformer: Transformer[Token, Any], tree: Tree[Token]) -> Any:
    """``transformer`` applied to ``tree``, a diagnostic raised inside it raised as it is."""
    # NOTE: Lark wraps exceptions raised in Transformer callbacks (a bad name interpolation, an
    # integer literal out of range) in VisitError; the user must see the diagnostic itself.
    try:
        return transformer.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, NetspecError):
            raise exc.orig_exc from None
        raise


def parse_text(text: str, path: str = "<string>") -> ast.Module:
    return parse_source(SourceFile(path, text))


def parse_expression(text: str, path: str = "<expression>") -> ast.Expr:
    """Parse a single expression such as ``planes * 4``, or raise a NetspecError."""
    return _parse_expression(SourceFile(path, text), text, "end of the expression")


def _parse_expression(source: SourceFile, text: str, ending: str) -> ast.Expr:
    tree = parse_tree(_parser(), source, NET_SYNTAX, "expr", text, ending=ending)
    return transform(_ToAst(source), tree)


def syntax_error(
    source: SourceFile,
    exc: UnexpectedInput,
    syntax: Syntax,
    text: str | None = None,
    ending: str = "end of file",
) -> Exception:
    """The diagnostic for a Lark error in a file of ``syntax``. ``text`` is what was parsed
    when it is not the whole file (a name's ``{expr}``, padded to its position), and ``ending``
    names where that text ends."""
    text = source.text if text is None else text
    error_offset = len(text) if isinstance(exc, UnexpectedEOF) else _offset_of(exc, text)
    unclosed = _unclosed_interpolation(text, error_offset) if syntax.interpolated_names else None
    if unclosed is not None:
        at_line = _line_of(text, unclosed)
        at_column = unclosed - (text.rfind("\n", 0, unclosed) + 1) + 1
        return error(
            "the '{' of an interpolation in a name is not closed",
            SourceSpan(source, at_line, at_column, at_line, at_column + 1),
            hint="a name interpolates an expression as name{expr}, e.g. conv{i + 1}",
        )
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_character(source, exc, syntax, text)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return _unexpected_end(source, exc, syntax, text, ending)
    assert isinstance(exc, UnexpectedToken)
    return _unexpected_token(source, exc, syntax, text)


def _unexpected_character(
    source: SourceFile, exc: UnexpectedCharacters, syntax: Syntax, text: str
) -> Exception:
    """A character no token starts with: most often a string or quoted name left open."""
    line, column = max(exc.line, 1), max(exc.column, 1)
    position = exc.pos_in_stream or 0  # always set for UnexpectedCharacters
    char = text[position] if position < len(text) else ""
    span = SourceSpan(source, line, column, line, column + 1)
    if char in "\"'":
        return error("unterminated string", span, hint="close the string on the same line")
    if char == "`" and syntax.quoted_names:
        empty = text[position + 1 : position + 2] == "`"
        message = "empty quoted name" if empty else "unterminated quoted name"
        return error(message, span, hint="a quoted name is `name` on one line, e.g. `block1-0`")
    hint = "fields are written 'key: value'" if char == "=" else None
    return error(f"unexpected character {char!r}", span, hint=hint)


def _unexpected_end(
    source: SourceFile, exc: UnexpectedInput, syntax: Syntax, text: str, ending: str
) -> Exception:
    """The text ended where more was wanted: at its end, naming the bracket left open."""
    lines = text.splitlines() or [""]
    last_line, last_column = len(lines), len(lines[-1]) + 1
    span = SourceSpan(source, last_line, last_column, last_line, last_column + 1)
    expected = syntax.expected(getattr(exc, "expected", set()))
    still_open = _open_brackets(text, len(text))
    hint = _not_closed(text, still_open[-1]) if still_open else None
    return error(f"unexpected {ending}; expected {expected}", span, hint=hint)


def _unexpected_token(source: SourceFile, exc: UnexpectedToken, syntax: Syntax, text: str) -> Exception:
    """A token the grammar does not allow where it stands, with what was expected instead."""
    token = exc.token
    stray_else = _stray_else(text, token.start_pos or 0) if syntax.else_blocks else None
    if stray_else is not None:
        return stray_else_error(source, text, stray_else)
    line, column = max(exc.line, 1), max(exc.column, 1)
    width = max(len(str(token)), 1)
    span = SourceSpan(source, line, column, line, column + width)
    expected = syntax.expected(exc.expected)
    hint = _hint(text, token, set(exc.expected), syntax)
    return error(f"unexpected {syntax.describe(token)}; expected {expected}", span, hint=hint)


_MATCHING = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = {closer: opener for opener, closer in _MATCHING.items()}
_LINE_START = re.compile(r"(?:[A-Za-z_][\w.]*)?")


def _hint(text: str, token: Token, expected: set[str], syntax: Syntax) -> str | None:
    """A friendly word for the common mistakes: a bracket left open or closed twice, '=' for
    ':', then the grammar's own."""
    still_open = _open_brackets(text, token.start_pos or 0)
    if str(token) in _CLOSERS:
        if not still_open:
            return f"this '{token}' closes no open '{_CLOSERS[str(token)]}'"
        if text[still_open[-1]] != _CLOSERS[str(token)]:
            return _not_closed(text, still_open[-1])
    if token.type == "EQUAL" and "COLON" in expected:
        return "fields are written 'key: value'"
    return syntax.hint(text, token, expected, still_open)


def _net_hint(text: str, token: Token, expected: set[str], still_open: list[int]) -> str | None:
    """.net's common mistakes: ':' for '=', a block never closed, a missing ':', a layer
    written without its name or braces."""
    if token.type == "COLON" and "EQUAL" in expected:
        return "constants and keyword arguments are written 'name = value'"
    # A statement that starts a line (or a layer's name after its type) inside a bracket opened
    # on an earlier line: the bracket was most likely never closed.
    before = text[text.rfind("\n", 0, token.start_pos) + 1 : token.start_pos].strip()
    if still_open and _line_of(text, still_open[-1]) < (token.line or 1) and _LINE_START.fullmatch(before):
        opener = text[still_open[-1]]
        return f"{_not_closed(text, still_open[-1])}; is a '{_MATCHING[opener]}' missing before this line?"
    if "COLON" in expected and token.type in ("INT", "FLOAT", "STRING", "LSQB", "ADD_OP"):
        return "fields are written 'key: value'; is the ':' missing?"
    if token.type == "NAME" and "LBRACE" in expected:
        return "a layer is written 'Type name { key: value ... }'"
    return None


def _open_brackets(text: str, end: int) -> list[int]:
    """Offsets of the brackets still open at offset ``end`` of ``text``, outermost first
    (strings and comments skipped)."""
    still_open: list[int] = []
    position = 0
    while position < end:
        char = text[position]
        if char in "\"'":
            close = position + 1
            while close < len(text) and text[close] not in (char, "\n"):
                close += 2 if text[close] == "\\" else 1
            position = close + 1
            continue
        if char == "#":
            newline = text.find("\n", position)
            position = len(text) if newline < 0 else newline + 1
            continue
        if char in _MATCHING:
            still_open.append(position)
        elif char in _CLOSERS and still_open and text[still_open[-1]] == _CLOSERS[char]:
            still_open.pop()
        position += 1
    return still_open


_ELSE_BEFORE_BRACE = re.compile(r"\belse\s*$")
_IF_HEADER = re.compile(r"(?:^|[{};\n])\s*(?:if|elif)\b[^{}]*$")


def _stray_else(text: str, offset: int) -> int | None:
    """The offset of an ``else`` that opens the innermost block still open at ``offset`` and
    follows no ``if`` block. The parser reads such an ``else`` as a layer type and fails inside
    its block, a line or more later; the mistake is the ``else`` itself."""
    still_open = _open_brackets(text, offset)
    if not still_open or text[still_open[-1]] != "{":
        return None
    found = _ELSE_BEFORE_BRACE.search(text, 0, still_open[-1])
    if found is None:
        return None
    before = text[: found.start()].rstrip()
    if before.endswith("}"):
        opener = _open_brackets(text, len(before) - 1)
        if opener and _IF_HEADER.search(text, 0, opener[-1]):
            return None
    return found.start()


def stray_else_error(source: SourceFile, text: str, offset: int) -> Exception:
    """The diagnostic for an ``else`` that follows no ``if`` block, at the ``else``."""
    line = _line_of(text, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return error(
        "'else' without 'if': an 'else' block must follow the '}' of an 'if' or 'elif' block",
        SourceSpan(source, line, column, line, column + 4),
    )


# A '{' glued to a name, followed on its line by an expression and then a block or the line's
# end, with no ':' (which would make it a layer's fields): an interpolation never closed.
_GLUED_BRACE = re.compile(r"(?<=[\w.])\{[ \t]*[^\s{}:#][^{}:#\n]*(?=\{|\n|$)")


def _offset_of(exc: UnexpectedInput, text: str) -> int:
    token = getattr(exc, "token", None)
    if token is not None and token.type != "$END" and token.start_pos is not None:
        return int(token.start_pos)
    position = getattr(exc, "pos_in_stream", None)
    return len(text) if position is None else int(position)


def _unclosed_interpolation(text: str, offset: int) -> int | None:
    """The offset of a still-open '{' before ``offset`` that began an interpolation in a name
    (``r{i {}``): the parser reads it as a block and fails lines later, at the file's end."""
    for opener in reversed(_open_brackets(text, offset)):
        if text[opener] == "{" and _GLUED_BRACE.match(text, opener):
            return opener
    return None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _not_closed(text: str, offset: int) -> str:
    line = _line_of(text, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"the '{text[offset]}' at line {line}, column {column} is not closed"


NET_SYNTAX = Syntax(
    token_words={
        **PUNCTUATION_WORDS,
        "NAME": "a name",
        "QUOTED_NAME": "a quoted name",
        "INT": "an integer",
        "FLOAT": "a number",
        "STRING": "a string",
        "LPAR": "'('",
        "RPAR": "')'",
        "EQUAL": "'='",
        "ADD_OP": "'+' or '-'",
        "MUL_OP": "'*', '/', '//' or '%'",
        "POW_OP": "'**'",
        "COMPARE_OP": "a comparison",
        "QMARK": "'?'",
    },
    valued_tokens=frozenset({"NAME", "INT", "FLOAT", "STRING"}),
    hint=_net_hint,
    # Tokens that can start an expression or a statement; where a parser state wants any of
    # them, "an expression" or "a statement" says it better than a list of ten tokens.
    summaries=(
        (
            frozenset(
                {
                    "INT",
                    "FLOAT",
                    "STRING",
                    "NAME",
                    "QUOTED_NAME",
                    "LSQB",
                    "LPAR",
                    "ADD_OP",
                    "TRUE",
                    "FALSE",
                    "NOT",
                }
            ),
            frozenset({"INT", "STRING", "LSQB"}),
            "an expression",
        ),
        (
            frozenset(
                {
                    "NAME",
                    "LET",
                    "IF",
                    "REPEAT",
                    "FOR",
                    "INCLUDE",
                    "INPUT",
                    "TEMPLATE",
                    "DEF",
                    "SET",
                    "COMMA",
                    "SEMICOLON",
                }
            ),
            frozenset({"LET", "REPEAT", "FOR"}),
            "a statement",
        ),
    ),
    interpolated_names=True,
    quoted_names=True,
    else_blocks=True,
)


class _ToAst(Transformer[Token, Any]):
    """Lark tree to frozen AST nodes, with spans into ``source``."""

    def __init__(self, source: SourceFile, line: int = 1, column: int = 1) -> None:
        """``line`` and ``column``: where the parsed text starts in ``source`` (a name's
        one-line ``{expr}``: its spans are shifted there)."""
        super().__init__()
        self.source = source
        self.line_shift = line - 1
        self.column_shift = column - 1

    # ------------------------------------------------------------- helpers
    def _at(self, line: int, column: int, end_line: int, end_column: int) -> SourceSpan:
        shift = self.column_shift
        return SourceSpan(
            self.source,
            line + self.line_shift,
            column + (shift if line == 1 else 0),
            end_line + self.line_shift,
            end_column + (shift if end_line == 1 else 0),
        )

    def _span(self, meta: Any) -> SourceSpan:
        if getattr(meta, "empty", True):
            return self._at(1, 1, 1, 1)
        return self._at(meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> SourceSpan:
        return self._at(token.line or 1, token.column or 1, token.end_line or 1, token.end_column or 1)

    def _name(self, token: Token) -> ast.Name:
        span = self._token_span(token)
        text, start = str(token), 0
        if token.type == "QUOTED_NAME":
            text, start = text[1:-1], 1
        if "{" not in text:
            return ast.Name((text,), span)
        parts: list[str | ast.Expr] = []
        position = 0
        for match in _INTERPOLATION.finditer(text):
            if match.start() > position:
                parts.append(text[position : match.start()])
            inner_column = (token.column or 1) + start + match.start(1)
            parts.append(self._parse_interpolation(match.group(1), token.line or 1, inner_column))
            position = match.end()
        if position < len(text):
            parts.append(text[position:])
        return ast.Name(tuple(parts), span)

    def _parse_interpolation(self, text: str, line: int, column: int) -> ast.Expr:
        # NOTE: the inner text is parsed on its own and its spans shifted to the name's place;
        # padding it to its position would make a long line of interpolations quadratic. Only
        # a mistake in it is parsed again padded, so that the diagnostic points into the file.
        try:
            tree = _parser().parse(text, start="expr")
            check_nesting(tree, self.source)
        except (UnexpectedInput, NetspecError):
            padded = "\n" * (line - 1) + " " * (column - 1) + text
            return _parse_expression(self.source, padded, "end of the '{...}' in a name")
        return transform(_ToAst(self.source, line, column), tree)

    # ------------------------------------------------------------- module level
    @v_args(meta=True)
    def module(self, meta: Any, children: list[Any]) -> ast.Module:
        return ast.Module(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def header_field(self, meta: Any, children: list[Any]) -> ast.HeaderField:
        key, value = children
        return ast.HeaderField(str(key), value, self._span(meta))

    @v_args(meta=True)
    def input_decl(self, meta: Any, children: list[Any]) -> ast.InputDecl:
        name, shape = children
        return ast.InputDecl(str(name), shape, self._span(meta))

    @v_args(meta=True)
    def include_decl(self, meta: Any, children: list[Any]) -> ast.IncludeDecl:
        return ast.IncludeDecl(unquote(children[0]), self._span(meta))

    @v_args(meta=True)
    def let_decl(self, meta: Any, children: list[Any]) -> ast.LetDecl:
        name, value = children
        return ast.LetDecl(str(name), value, self._span(meta))

    @v_args(meta=True)
    def let_default(self, meta: Any, children: list[Any]) -> ast.LetDecl:
        name, value = children
        return ast.LetDecl(str(name), value, self._span(meta), if_unset=True)

    @v_args(meta=True)
    def template_def(self, meta: Any, children: list[Any]) -> ast.TemplateDef:
        name, *params, body = children
        return ast.TemplateDef(str(name), tuple(p for p in params if p is not None), body, self._span(meta))

    @v_args(meta=True)
    def set_stmt(self, meta: Any, children: list[Any]) -> ast.SetStmt:
        name, value = children
        return ast.SetStmt(str(name), value, self._span(meta))

    @v_args(meta=True)
    def function_def(self, meta: Any, children: list[Any]) -> ast.FunctionDef:
        name, *params, body = children
        return ast.FunctionDef(str(name), tuple(p for p in params if p is not None), body, self._span(meta))

    @v_args(meta=True)
    def param(self, meta: Any, children: list[Any]) -> ast.Param:
        name, default = children
        return ast.Param(str(name), default, self._span(meta))

    @v_args(meta=True)
    def layer(self, meta: Any, children: list[Any]) -> ast.LayerStmt:
        type_token, name_token, args, fields = children
        return ast.LayerStmt(
            str(type_token),
            self._name(name_token),
            args,
            fields or (),
            self._span(meta),
            self._token_span(type_token),
        )

    @v_args(meta=True)
    def anonymous_layer(self, meta: Any, children: list[Any]) -> ast.LayerStmt:
        type_token, fields = children
        if str(type_token) == "else":  # the grammar reads an 'else' after no 'if' as a layer type
            raise stray_else_error(self.source, self.source.text, type_token.start_pos or 0)
        return ast.LayerStmt(
            str(type_token), None, None, fields, self._span(meta), self._token_span(type_token)
        )

    def call_args(self, children: list[Any]) -> tuple[ast.Argument, ...]:
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def arg(self, meta: Any, children: list[Any]) -> ast.Argument:
        return ast.Argument(None, children[0], self._span(meta))

    @v_args(meta=True)
    def keyword_arg(self, meta: Any, children: list[Any]) -> ast.Argument:
        name, value = children
        return ast.Argument(str(name), value, self._span(meta))

    def fields(self, children: list[Any]) -> tuple[ast.Field, ...]:
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def value_field(self, meta: Any, children: list[Any]) -> ast.ValueField:
        key, value = children
        return ast.ValueField(str(key), value, self._span(meta), self._token_span(key))

    @v_args(meta=True)
    def block_field(self, meta: Any, children: list[Any]) -> ast.BlockField:
        key, fields = children
        return ast.BlockField(str(key), fields, self._span(meta), self._token_span(key))

    def block(self, children: list[Any]) -> tuple[ast.Stmt, ...]:
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def if_stmt(self, meta: Any, children: list[Any]) -> ast.IfStmt:
        condition, body, *rest = children
        otherwise = rest.pop() if rest else None
        branches = [(condition, body), *rest]
        return ast.IfStmt(tuple(branches), otherwise or (), self._span(meta))

    def elif_clause(self, children: list[Any]) -> tuple[ast.Expr, tuple[ast.Stmt, ...]]:
        return (children[0], children[1])

    @v_args(meta=True)
    def repeat_stmt(self, meta: Any, children: list[Any]) -> ast.RepeatStmt:
        count, variable, body = children
        return ast.RepeatStmt(count, str(variable) if variable else None, body, self._span(meta))

    @v_args(meta=True)
    def for_stmt(self, meta: Any, children: list[Any]) -> ast.ForStmt:
        variable, iterable, body = children
        return ast.ForStmt(str(variable), iterable, body, self._span(meta))

    # ------------------------------------------------------------- expressions
    @v_args(meta=True)
    def conditional(self, meta: Any, children: list[Any]) -> ast.Conditional:
        return ast.Conditional(children[0], children[1], children[2], self._span(meta))

    @v_args(meta=True)
    def or_op(self, meta: Any, children: list[Any]) -> ast.Binary:
        return ast.Binary("or", children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def and_op(self, meta: Any, children: list[Any]) -> ast.Binary:
        return ast.Binary("and", children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def not_op(self, meta: Any, children: list[Any]) -> ast.Unary:
        return ast.Unary("not", children[0], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta: Any, children: list[Any]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))

    @v_args(meta=True)
    def binary(self, meta: Any, children: list[Any]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))

    @v_args(meta=True)
    def unary(self, meta: Any, children: list[Any]) -> ast.Unary:
        op, operand = children
        return ast.Unary(str(op), operand, self._span(meta))

    @v_args(meta=True)
    def index(self, meta: Any, children: list[Any]) -> ast.Index:
        return ast.Index(children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def call(self, meta: Any, children: list[Any]) -> ast.Call:
        function, *args = children
        return ast.Call(str(function), tuple(a for a in args if a is not None), self._span(meta))

    def int_literal(self, children: list[Token]) -> ast.Literal:
        token = children[0]
        span = self._token_span(token)
        return ast.Literal(integer_literal(str(token), span), span)

    def float_literal(self, children: list[Token]) -> ast.Literal:
        value = float(children[0])
        if math.isinf(value):
            raise error(f"the number {children[0]} is too large", self._token_span(children[0]))
        return ast.Literal(value, self._token_span(children[0]))

    def string_literal(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(unquote(children[0]), self._token_span(children[0]))

    @v_args(meta=True)
    def true_literal(self, meta: Any, children: list[Any]) -> ast.Literal:
        return ast.Literal(True, self._span(meta))

    @v_args(meta=True)
    def false_literal(self, meta: Any, children: list[Any]) -> ast.Literal:
        return ast.Literal(False, self._span(meta))

    def name(self, children: list[Token]) -> ast.Name:
        return self._name(children[0])

    @v_args(meta=True)
    def list_literal(self, meta: Any, children: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(c for c in children if c is not None), self._span(meta))


def integer_literal(text: str, span: SourceSpan) -> int:
    """The value of an integer literal (optionally signed), or a diagnostic past 2**62."""
    digits = text.lstrip("+-")
    # NOTE: checked on the text first: int() of a 5,000-digit literal raises ValueError.
    if len(digits) > 19 or int(digits) > INTEGER_LIMIT:
        shown = text if len(digits) <= 25 else f"of {len(digits)} digits"
        raise error(f"the integer {shown} is too large; integers are limited to 2**62", span)
    return int(text)


def unquote(token: Token | str) -> str:
    body = str(token)[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)
