"""``netspec zoo``: one row per zoo model — its name, title, family, counts at batch 1, its
published accuracy (ImageNet top-1/top-5, or a dense model's own metric) and where the published
figures come from — as a table, Markdown, CSV or JSON, optionally sorted."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from netspec.diagnostics import UsageError, did_you_mean
from netspec.progress import QUIET, Progress
from netspec.tables import human_count, render_csv_table, render_markdown_table, render_text_table
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
    top1: float | None = None
    top5: float | None = None
    accuracy_source: str | None = None
    accuracy_evaluation: str | None = None
    metric_name: str | None = None
    metric_value: float | None = None
    metric_dataset: str | None = None
    metric_source: str | None = None


ZOO_SORT_KEYS = ("name", "params", "macs", "top1", "top5")


def zoo_rows(progress: Progress = QUIET) -> list[ZooRow]:
    """Every catalogued zoo model, analysed now (the figures are netspec's own counts)."""
    from netspec.compiler import load_graph
    from netspec.typed import bind

    entries = list(catalog().values())
    rows = []
    with progress.steps("zoo", len(entries)) as advance:
        for entry in entries:
            graph = load_graph(entry.path)
            totals = bind(graph).counts.totals
            imagenet, metric = entry.imagenet, entry.metric
            rows.append(
                ZooRow(
                    entry.name,
                    graph.name,
                    entry.family,
                    totals.params,
                    totals.buffers,
                    totals.macs,
                    entry.counts_source,
                    imagenet.top1 if imagenet else None,
                    imagenet.top5 if imagenet else None,
                    imagenet.source if imagenet else None,
                    imagenet.evaluation if imagenet else None,
                    metric.name if metric else None,
                    metric.value if metric else None,
                    metric.dataset if metric else None,
                    metric.source if metric else None,
                )
            )
            advance(1)
    return rows


def sort_zoo_rows(rows: Sequence[ZooRow], key: str) -> list[ZooRow]:
    """Rows by ``key``: names ascending, numbers descending (models without a published
    figure last), ties in name order."""
    if key not in ZOO_SORT_KEYS:
        hint = did_you_mean(key, ZOO_SORT_KEYS)
        raise UsageError(
            f"cannot sort by '{key}'" + (f"; {hint}" if hint else "") + f" (keys: {', '.join(ZOO_SORT_KEYS)})"
        )
    by_name = sorted(rows, key=lambda row: row.name)
    if key == "name":
        return by_name

    def value(row: ZooRow) -> float:
        figure = getattr(row, key)
        return -1.0 if figure is None else figure

    return sorted(by_name, key=value, reverse=True)


def percent(value: float | None) -> str:
    """A published accuracy as the table shows it, with the source's digits (``76.13``,
    ``92.862``, at least one decimal: ``80.0``); ``-`` where none is published."""
    if value is None:
        return "-"
    text = f"{value:g}"
    return text if "." in text else f"{text}.0"


_HEADER = ["name", "title", "family", "params", "MACs", "top-1", "top-5", "published figures from"]


def render_catalog(rows: Sequence[ZooRow], fmt: str) -> str:
    """``rows`` as text (K/M/G figures), Markdown, CSV or JSON (exact integers)."""
    if fmt == "json":
        return json.dumps([dataclasses.asdict(row) for row in rows], indent=1) + "\n"
    if fmt == "csv":
        fields = [f.name for f in dataclasses.fields(ZooRow)]
        return render_csv_table(fields, [list(dataclasses.astuple(row)) for row in rows])
    cells = [
        [
            row.name,
            row.title,
            row.family,
            human_count(row.params),
            human_count(row.macs),
            percent(row.top1),
            percent(row.top5),
            row.counts_source,
        ]
        for row in rows
    ]
    numeric = {3, 4, 5, 6}
    if fmt == "md":
        return render_markdown_table(_HEADER, cells, numeric)
    return render_text_table(_HEADER, cells, numeric)
