"""Tables and the numbers in their cells: human-readable counts, bytes, shapes and receptive
fields, and one table of already formatted cells as aligned text, Markdown, CSV or HTML (the
shared output of ``netspec report``, ``bench``, ``compare`` and ``zoo``)."""

from __future__ import annotations

import functools
import io
from collections.abc import Collection, Sequence
from typing import Protocol


class SizeAndStride(Protocol):
    """A receptive field as the tables show it: size and stride per spatial axis (H, W)."""

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def stride(self) -> tuple[int | float, int | float]: ...


# A deep net's table repeats the same few figures thousands of times; typed: 2 and 2.0 differ.
@functools.lru_cache(maxsize=4096, typed=True)
def human_count(value: int) -> str:
    """1234567 -> '1.23M' (K, M, G, T: powers of 1000)."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


@functools.lru_cache(maxsize=4096, typed=True)
def human_bytes(value: int) -> str:
    """1536 -> '1.50 KiB' (powers of 1024)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def shape_text(shapes: Sequence[Sequence[object]]) -> str:
    """``[[1, 64, 56, 56]]`` -> ``1x64x56x56`` (several shapes separated by spaces)."""
    return " ".join(_dims_text(tuple(shape)) for shape in shapes)


@functools.lru_cache(maxsize=4096)
def _dims_text(dims: tuple[object, ...]) -> str:
    return "x".join(str(d) for d in dims)


def field_text(field: SizeAndStride | None) -> str:
    """A receptive field as ``size/stride``, ``HxW/HxW`` when the axes differ; ``-`` for none."""
    if field is None:
        return "-"

    def pair(values: Sequence[object]) -> str:
        return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"

    return f"{pair(field.size)}/{pair(field.stride)}"


def render_text_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int]) -> str:
    """Columns padded to their widest cell, two spaces apart; ``numeric`` columns right-aligned."""
    widths = [max([len(title), *(len(row[i]) for row in rows)]) for i, title in enumerate(header)]
    justify = [str.rjust if i in numeric else str.ljust for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [pad(cell, width) for pad, cell, width in zip(justify, cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    return "\n".join(out) + "\n"


def render_markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int]
) -> str:
    """A GitHub Markdown table; ``numeric`` columns right-aligned."""
    rule = "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"
    out = ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(out) + "\n"


def render_csv_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """RFC 4180 CSV with a header row (``None`` cells are empty)."""
    import csv  # this module's other formats, and so a text report, do without it

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return buffer.getvalue()


def render_html_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int]) -> str:
    """A plain HTML ``<table>`` (cells escaped; ``numeric`` columns right-aligned): what a notebook
    shows for a report."""
    from html import escape

    def cell(tag: str, index: int, text: str) -> str:
        style = ' style="text-align: right"' if index in numeric else ""
        return f"<{tag}{style}>{escape(text)}</{tag}>"

    def line(tag: str, cells: Sequence[str]) -> str:
        return "<tr>" + "".join(cell(tag, i, text) for i, text in enumerate(cells)) + "</tr>"

    body = "\n".join(line("td", row) for row in rows)
    return f"<table>\n<thead>{line('th', header)}</thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
