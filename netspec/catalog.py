"""``netspec zoo``: one row per zoo model — its name, title, family, counts at batch 1 and where
its published figures come from — as a table, Markdown, CSV or JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from netspec.progress import QUIET, Progress
from netspec.report import human_count
from netspec.tables import render_csv_table, render_markdown_table, render_text_table
from netspec.zoo import catalog


@dataclass(frozen=True)
class ZooRow:
    """A zoo model as ``netspec zoo`` lists it (counts at batch 1, the spec's own input)."""

    name: str
    title: str
    family: str
    params: int
    buffers: int
    macs: int
    counts_source: str


def zoo_rows(progress: Progress = QUIET) -> list[ZooRow]:
    """Every catalogued zoo model, analysed now (the figures are netspec's own counts)."""
    from netspec.compiler import analyze, load_graph

    entries = list(catalog().values())
    rows = []
    with progress.steps("zoo", len(entries)) as advance:
        for entry in entries:
            graph = load_graph(entry.path)
            totals = analyze(graph).counts.totals
            rows.append(
                ZooRow(
                    entry.name,
                    graph.name,
                    entry.family,
                    totals.params,
                    totals.buffers,
                    totals.macs,
                    entry.counts_source,
                )
            )
            advance(1)
    return rows


_HEADER = ["name", "title", "family", "params", "MACs", "published figures from"]


def render_catalog(rows: Sequence[ZooRow], fmt: str) -> str:
    """``rows`` as text (K/M/G figures), Markdown, CSV or JSON (exact integers)."""
    if fmt == "json":
        return json.dumps([dataclasses.asdict(row) for row in rows], indent=1) + "\n"
    if fmt == "csv":
        fields = [f.name for f in dataclasses.fields(ZooRow)]
        return render_csv_table(fields, [list(dataclasses.astuple(row)) for row in rows])
    cells = [
        [row.name, row.title, row.family, human_count(row.params), human_count(row.macs), row.counts_source]
        for row in rows
    ]
    if fmt == "md":
        return render_markdown_table(_HEADER, cells, {3, 4})
    return render_text_table(_HEADER, cells, {3, 4})
