"""Rendering one table of already formatted cells as aligned text, Markdown or CSV: the shared
output of ``netspec bench`` and ``netspec compare``."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence


def render_text_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int]) -> str:
    """Columns padded to their widest cell, two spaces apart; ``numeric`` columns right-aligned."""
    widths = [max([len(title), *(len(row[i]) for row in rows)]) for i, title in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return buffer.getvalue()
