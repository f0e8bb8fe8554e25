"""Compiler diagnostics: source files, spans, and errors rendered as ``file:line:col: error: ...``.

Every user mistake becomes a :class:`NetspecError` carrying one or more :class:`Diagnostic`;
the CLI prints them and exits 1. A Python traceback is never a user's error message.

The error family, all under :class:`NetspecException`: :class:`NetspecError` (a spec's
mistake, exit 1), :class:`UsageError` (arguments that cannot work, exit 2),
``netspec.runtime.RuntimeFailure`` and ``netspec.output.OutputError`` (onnxruntime or the file
system refused, exit 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True, eq=False)
class SourceFile:
    """A spec file's path (as the user named it) and its text."""

    path: str
    text: str

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


@dataclass(frozen=True)
class SourceSpan:
    """A region of a source file; lines and columns count from 1, ``end_column`` is exclusive."""

    source: SourceFile
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def location(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    def __str__(self) -> str:
        return self.location


@dataclass(frozen=True)
class TraceFrame:
    """One template instantiation on the way to a node: where, which template, which bindings.

    ``loop_bindings`` are the enclosing loops at the instantiation, as (label, value) pairs
    such as ``("repeat i", 1)``.
    """

    template: str
    span: SourceSpan
    scope: str
    loop_bindings: tuple[tuple[str, object], ...] = ()

    def describe(self) -> str:
        context = [f"{name}={value}" for name, value in self.loop_bindings]
        if self.scope:
            # A recursive template's scope grows with every level: keep its two ends.
            scope = self.scope if len(self.scope) <= 80 else f"{self.scope[:38]}...{self.scope[-38:]}"
            context.append(f"scope {scope}")
        detail = f" ({', '.join(context)})" if context else ""
        return f"in template '{self.template}' instantiated at {self.span.location}{detail}"


@dataclass(frozen=True)
class Diagnostic:
    """One message for a person: what is wrong, where, and what to do about it."""

    message: str
    span: SourceSpan | None = None
    severity: str = "error"
    hint: str | None = None
    trace: tuple[TraceFrame, ...] = ()
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        """The diagnostic as lines for a terminal; every control character that came from a
        file or an argument is escaped (a spec must not be able to clear or retitle the screen)."""
        parts = []
        where = f"{printable(self.span.location)}: " if self.span else ""
        parts.append(f"{where}{self.severity}: {printable(self.message)}")
        if self.span is not None:
            parts.extend(_excerpt(self.span))
        if self.hint:
            parts.append(f"  hint: {printable(self.hint)}")
        parts.extend(f"  note: {printable(note)}" for note in self.notes)
        # Innermost instantiation first, as compilers print template backtraces; a deep (often
        # recursive) trace keeps its ends and elides the middle, as clang does.
        frames = [f"  note: {printable(frame.describe())}" for frame in reversed(self.trace)]
        if len(frames) > 2 * _TRACE_ENDS + 1:
            skipped = len(frames) - 2 * _TRACE_ENDS
            frames[_TRACE_ENDS:-_TRACE_ENDS] = [f"  note: ({skipped} more instantiations not shown)"]
        parts.extend(frames)
        return "\n".join(parts)


_TRACE_ENDS = 4


def printable(text: str, keep_tabs: bool = False) -> str:
    """``text`` with control characters (C0, DEL, C1) and the invisible format characters that
    reorder or hide text (bidirectional overrides, zero-width marks) written as escapes:
    ``\\x1b``, ``\\u202e``. Tabs stay when ``keep_tabs`` (source excerpts expand them)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or (char == "\t" and keep_tabs):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)


_EXCERPT_WIDTH = 120


def _excerpt(span: SourceSpan) -> list[str]:
    text = span.source.line(span.line)
    if not text and span.line > len(span.source.text.splitlines()):
        return []
    gutter = str(span.line)
    pad = " " * len(gutter)
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    if len(text) > _EXCERPT_WIDTH:
        # A very long line (generated, or minified) shows only a window around the caret.
        first = max(start - _EXCERPT_WIDTH // 2, 0)
        last = min(first + _EXCERPT_WIDTH, len(text))
        before, after = ("..." if first > 0 else ""), ("..." if last < len(text) else "")
        text = before + text[first:last] + after
        start, end = start - first + len(before), min(end, last) - first + len(before)
    # Columns are counted in the escaped text, so the caret stays under what it marks.
    prefix = printable(text[:start], keep_tabs=True).expandtabs(4)
    marked = printable(text[start:end], keep_tabs=True)
    width = max(len(marked), 1)
    marker = "^" + "~" * (width - 1)
    return [
        f"  {gutter} | {printable(text, keep_tabs=True).expandtabs(4)}",
        f"  {pad} | {' ' * len(prefix)}{marker}",
    ]


class NetspecException(Exception):
    """The root of every exception netspec raises for a person to read rather than for a bug:
    ``except NetspecException`` catches them all. Each kind keeps its facts as fields and
    builds its text only when it is shown (``str()``, :meth:`render`)."""

    def render(self) -> str:
        """The error as a person reads it."""
        return str(self)


class UsageError(NetspecException):
    """A command's arguments that cannot work: options that do not go together, an output whose
    format needs a program or package that is not installed, an .onnx where a spec is needed.
    The command line reports it before any work and exits with code 2 (a spec's own mistakes
    are NetspecError, code 1)."""


class NetspecError(NetspecException):
    """Raised for any mistake in a spec or a command's arguments; carries the diagnostics
    (message, span, hint, trace each), rendered only when the error is shown."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        # NOTE: the text is not built here: errors that a caller catches and replaces (a name's
        # interpolation parsed again, padded) never pay for their source excerpts.
        super().__init__(self.diagnostics)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def with_trace(self, trace: tuple[TraceFrame, ...]) -> NetspecError:
        """The same error, with instantiation frames added where a diagnostic has none."""
        return NetspecError([d if d.trace else replace(d, trace=trace) for d in self.diagnostics])


def error(
    message: str,
    span: SourceSpan | None = None,
    *,
    hint: str | None = None,
    trace: tuple[TraceFrame, ...] = (),
    notes: Iterable[str] = (),
) -> NetspecError:
    """Build a single-diagnostic error (callers ``raise error(...)``)."""
    return NetspecError(Diagnostic(message, span, hint=hint, trace=trace, notes=tuple(notes)))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    pool = list(candidates)
    import difflib  # only when a mistake is reported

    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f"did you mean '{matches[0]}'?" if matches else None
