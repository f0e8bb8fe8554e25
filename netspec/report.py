"""Reports over a typed graph as typed records (:class:`Report`, :class:`ReportRow`): the JSON
contract of DESIGN.md §8 (``Report.to_dict``) and its text, CSV, Markdown and notebook HTML
renderings, with layers grouped by their dotted scopes (``layer1.0.conv1`` sits in
``layer1`` and ``layer1.0``) and ``depth`` collapsing deeper scopes into one row each."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from netspec.count import Totals
from netspec.graph import Dim, Graph, Node
from netspec.receptive import ReceptiveField
from netspec.tables import (
    field_text,
    human_bytes,
    human_count,
    render_csv_table,
    render_html_table,
    render_markdown_table,
    render_text_table,
    shape_text,
)
from netspec.typed import TypedGraph

if TYPE_CHECKING:
    import pandas

FORMATS = ("text", "json", "csv", "md")

SUMMED_KEYS = ("params", "buffers", "frozen", "macs", "flops", "output_bytes")
TOTAL_KEYS = tuple(f.name for f in fields(Totals))  # the JSON contract's totals, in order


def conventions(batch: int | None, dtype: str = "float32") -> list[str]:
    """The counting conventions (DESIGN.md §5), one short sentence per figure."""
    return [
        "params: learnable values, shared arrays once (frozen: lr_mult 0, still params); "
        "buffers: stored, not learned (BatchNorm mean/variance).",
        f"MACs: multiply-accumulates of convolution, fully connected and matrix-product layers "
        f"(attention's activation × activation products included), bias excluded; "
        f"FLOPs: all floating-point operations (2 per MAC, bias adds, elementwise work); batch {batch}.",
        f"memory: output bytes ({dtype}); peak: the most bytes alive at once in execution order (a "
        "tensor lives from its writer to its last reader; views share their input, elementwise "
        "layers overwrite an input nothing reads later).",
        "RF: receptive field size/stride in input pixels, the largest over paths (JSON adds the "
        "offset and effective padding).",
    ]


def scopes_of(name: str) -> list[str]:
    """The dotted prefixes of a layer name: ``layer1.0.conv1`` -> ``[layer1, layer1.0]``."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


@dataclass(frozen=True)
class Group:
    """Consecutive layers shown as one row (a collapsed scope) or under one header row."""

    name: str
    type: str
    level: int
    nodes: tuple[Node, ...]


def _template_names(nodes: Sequence[Node]) -> dict[str, str]:
    """Scope -> the template instantiated there (from the nodes' instantiation traces)."""
    names: dict[str, str] = {}
    for node in nodes:
        for frame in node.trace:
            names.setdefault(frame.scope, frame.template)
    return names


def _scope_types(templates: dict[str, str], scopes: Sequence[str]) -> dict[str, str]:
    """Scope -> what to call it: its template, else ``2× BasicBlock`` when it holds instances
    of one template only (a ``repeat``), else ``scope``."""
    children: dict[str, list[str]] = {}
    for scope in scopes:
        parent = scope.rpartition(".")[0]
        if parent:
            children.setdefault(parent, []).append(scope)
    types = {}
    for scope in scopes:
        if scope in templates:
            types[scope] = templates[scope]
            continue
        inner = children.get(scope, [])
        kinds = {templates.get(child) for child in inner}
        single = len(kinds) == 1 and None not in kinds
        types[scope] = f"{len(inner)}× {kinds.pop()}" if single else "scope"
    return types


def scope_layout(nodes: Sequence[Node], depth: int) -> list[tuple[str, Group | Node, int]]:
    """The report's rows in execution order: ("header", group, level), ("scope", group, level)
    for a collapsed scope, ("layer", node, level). Only prefixes that hold two or more layers
    count as scopes; ``depth`` K > 0 collapses every scope K deep (``layer1`` is 1 deep,
    ``layer1.0`` 2) into one row. ``level`` is the indentation: the number of enclosing headers."""
    prefixes = [scopes_of(node.name) for node in nodes]
    members: dict[str, int] = {}
    for scopes in prefixes:
        for scope in scopes:
            members[scope] = members.get(scope, 0) + 1
    chains = [[s for s in scopes if members[s] > 1] for scopes in prefixes]
    if depth > 0:
        chains = [chain[:depth] for chain in chains]
    scope_types = _scope_types(_template_names(nodes), [s for s, n in members.items() if n > 1])
    rows: list[tuple[str, Group | Node, int]] = []
    open_chain: list[str] = []
    index = 0
    while index < len(nodes):
        chain = chains[index]
        collapsed = depth > 0 and len(chain) == depth
        headers = chain[:-1] if collapsed else chain
        shared = 0
        while shared < min(len(open_chain), len(headers)) and open_chain[shared] == headers[shared]:
            shared += 1
        for level in range(shared, len(headers)):
            scope = headers[level]
            span = _run(chains, index, level, scope)
            group = Group(scope, scope_types[scope], level, tuple(nodes[index : index + span]))
            rows.append(("header", group, level))
        open_chain = list(headers)
        if collapsed:
            scope = chain[-1]
            span = _run(chains, index, len(chain) - 1, scope)
            group = Group(scope, scope_types[scope], len(chain) - 1, tuple(nodes[index : index + span]))
            rows.append(("scope", group, len(chain) - 1))
            index += span
        else:
            rows.append(("layer", nodes[index], len(chain)))
            index += 1
    return rows


def _run(chains: list[list[str]], start: int, level: int, scope: str) -> int:
    """How many consecutive nodes from ``start`` sit in ``scope`` at ``level``."""
    end = start
    while end < len(chains) and len(chains[end]) > level and chains[end][level] == scope:
        end += 1
    return end - start


@dataclass(frozen=True)
class ReportRow:
    """One row of a report: a layer, or a scope's layers summed (``scope`` true, ``type`` the
    template instantiated there or ``"scope"``); ``level`` is its nesting, ``source`` the
    ``path:line`` it comes from. The figures are those of :data:`SUMMED_KEYS`."""

    name: str
    type: str
    scope: bool
    level: int
    layer_count: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_shapes: tuple[tuple[Dim, ...], ...]
    params: int
    buffers: int
    frozen: int
    macs: int
    flops: int
    output_bytes: int
    receptive_field: ReceptiveField | None
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        """The row of the JSON contract (DESIGN.md §8)."""
        return {
            "name": self.name,
            "type": self.type,
            "scope": self.scope,
            "level": self.level,
            "layer_count": self.layer_count,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "output_shapes": [list(shape) for shape in self.output_shapes],
            **{key: getattr(self, key) for key in SUMMED_KEYS},
            "receptive_field": None if self.receptive_field is None else self.receptive_field.as_dict(),
            "source": self.source,
        }


@dataclass(frozen=True)
class ScopeHeader:
    """An enclosing scope shown as a header above its rows: its own summed ``row`` and
    ``before``, the index in :attr:`Report.rows` of the first row it holds."""

    row: ReportRow
    before: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.row.to_dict(), "before": self.before}


@dataclass(frozen=True)
class ReportTensor:
    """A graph input or output and its shape."""

    name: str
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape)}


@dataclass(frozen=True)
class Report:
    """A model's report: its header (name, batch, depth, dtype, counting conventions, inputs and
    outputs), ``rows`` (one per layer, or with ``depth`` K > 0 one per scope K deep; they always
    add up to ``totals``), and ``scopes``, the enclosing scopes shown as headers.

    ``render(fmt)`` gives text, JSON, CSV or Markdown; ``to_dict()`` the JSON contract;
    ``to_dataframe()`` the rows as a pandas DataFrame; in Jupyter it shows as an HTML table."""

    name: str
    batch: int | None
    depth: int
    dtype: str
    conventions: tuple[str, ...]
    inputs: tuple[ReportTensor, ...]
    outputs: tuple[ReportTensor, ...]
    totals: Totals
    rows: tuple[ReportRow, ...]
    scopes: tuple[ScopeHeader, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data: the JSON contract (DESIGN.md §8)."""
        return {
            "name": self.name,
            "batch": self.batch,
            "depth": self.depth,
            "dtype": self.dtype,
            "conventions": list(self.conventions),
            "inputs": [tensor.to_dict() for tensor in self.inputs],
            "outputs": [tensor.to_dict() for tensor in self.outputs],
            "totals": {key: getattr(self.totals, key) for key in TOTAL_KEYS},
            "layers": [row.to_dict() for row in self.rows],
            "scopes": [header.to_dict() for header in self.scopes],
        }

    def render(self, fmt: str = "text") -> str:
        """The report in one of :data:`FORMATS`."""
        return render(self, fmt)

    def to_dataframe(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame, a column per field of :class:`ReportRow` (the
        receptive field as ``rf_size``, ``rf_stride`` and ``rf_offset`` tuples)."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError("Report.to_dataframe needs pandas: pip install pandas") from exc
        records = []
        for row in self.rows:
            record = {key: value for key, value in row.to_dict().items() if key != "receptive_field"}
            field = row.receptive_field
            for key in ("size", "stride", "offset"):
                record[f"rf_{key}"] = None if field is None else getattr(field, key)
            records.append(record)
        return pandas.DataFrame.from_records(records)

    def _repr_html_(self) -> str:
        """Jupyter's view: the title and the text report's table and totals, in HTML."""
        from html import escape

        totals = "<br>\n".join(escape(line) for line in _totals_lines(self.totals))
        table = render_html_table(HEADER, _table(self, "\u00a0\u00a0"), RIGHT_ALIGNED)
        return f"<p><b>{escape(_title(self))}</b></p>\n{table}<p>{totals}</p>\n"


def report_data(analysis: TypedGraph, depth: int = 0) -> Report:
    """The report of ``analysis``: one row per layer, or with ``depth`` K > 0 one row per scope K
    deep (its figures summed over its ``layer_count`` layers); the enclosing scopes as headers,
    each with its summed figures and the index of its first row."""
    graph, types, counts = analysis.graph, analysis.types, analysis.counts
    fields = analysis.receptive_fields
    producers = graph.producers
    consumers = graph.consumers

    own = {row.name: [getattr(row, key) for key in SUMMED_KEYS] for row in counts.layers}

    def row(
        name: str,
        type_: str,
        level: int,
        nodes: Sequence[Node],
        inputs: Sequence[str],
        outputs: Sequence[str],
        where: str | None,
        scope: bool,
    ) -> ReportRow:
        figures = (
            own[nodes[0].name]
            if len(nodes) == 1
            else [sum(column) for column in zip(*(own[n.name] for n in nodes), strict=True)]
        )
        params, buffers, frozen, macs, flops, output_bytes = figures
        return ReportRow(
            name=name,
            type=type_,
            scope=scope,
            level=level,
            layer_count=len(nodes),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            output_shapes=tuple(types[t].dims for t in outputs),
            params=params,
            buffers=buffers,
            frozen=frozen,
            macs=macs,
            flops=flops,
            output_bytes=output_bytes,
            receptive_field=fields.get(outputs[0]),
            source=where,
        )

    def source(node: Node) -> str | None:
        return f"{node.span.source.path}:{node.span.line}" if node.span else None

    def group_row(group: Group) -> ReportRow:
        inside = {n.name for n in group.nodes}
        inputs = list(
            dict.fromkeys(t for n in group.nodes for t in n.inputs if producers[t].name not in inside)
        )
        outputs = [
            t
            for n in group.nodes
            for t in n.outputs
            if t in graph.outputs or any(c.name not in inside for c in consumers.get(t, ()))
        ] or list(group.nodes[-1].outputs)
        frame = next((f for f in group.nodes[0].trace if f.scope == group.name), None)
        where = f"{frame.span.source.path}:{frame.span.line}" if frame else source(group.nodes[0])
        return row(group.name, group.type, group.level, group.nodes, inputs, outputs, where, scope=True)

    def layer_row(node: Node, level: int) -> ReportRow:
        return row(node.name, node.type, level, [node], node.inputs, node.outputs, source(node), scope=False)

    rows: list[ReportRow] = []
    headers: list[ScopeHeader] = []
    for kind, item, level in scope_layout([n for n in graph.nodes if n.inputs], depth):
        if kind == "header":
            assert isinstance(item, Group)
            headers.append(ScopeHeader(group_row(item), before=len(rows)))
        elif kind == "scope":
            assert isinstance(item, Group)
            rows.append(group_row(item))
        else:
            assert isinstance(item, Node)
            rows.append(layer_row(item, level))
    return Report(
        name=graph.name,
        batch=analysis.batch,
        depth=depth,
        dtype=analysis.dtype,
        conventions=(*conventions(analysis.batch, analysis.dtype), *_uncounted_note(graph)),
        inputs=tuple(ReportTensor(n.outputs[0], types[n.outputs[0]].dims) for n in graph.input_nodes),
        outputs=tuple(ReportTensor(t, types[t].dims) for t in graph.outputs),
        totals=counts.totals,
        rows=tuple(rows),
        scopes=tuple(headers),
    )


def _uncounted_note(graph: Graph) -> list[str]:
    """The header's note on layers that count nothing because netspec does not know them
    (ONNX operators without a netspec layer)."""
    from collections import Counter

    unknown = Counter(n.layer.params.op_type for n in graph.nodes if n.layer.uncounted)
    if not unknown:
        return []
    listed = ", ".join(f"{op} ×{count}" if count > 1 else op for op, count in sorted(unknown.items()))
    return [
        f"not counted: {sum(unknown.values())} ONNX node(s) netspec has no layer for ({listed}); "
        "the totals exclude their MACs and FLOPs, and receptive fields stop at them."
    ]


HEADER = ["layer", "type", "output", "params", "MACs", "FLOPs", "memory", "RF/stride"]
RIGHT_ALIGNED = {3, 4, 5, 6}


def _cells(row: ReportRow, indent: str, quote: str = "", header: bool = False) -> list[str]:
    count_or_dash = [human_count(value) if value else "-" for value in (row.params, row.macs, row.flops)]
    collapsed = row.scope and not header
    type_text = f"{row.type} ({row.layer_count} layers)" if collapsed else row.type
    return [
        indent * row.level + quote + row.name + quote,
        type_text,
        shape_text(row.output_shapes),
        *count_or_dash,
        human_bytes(row.output_bytes),
        field_text(row.receptive_field),
    ]


def _table(report: Report, indent: str, quote: str = "") -> list[list[str]]:
    """Header rows (enclosing scopes) interleaved with the layer rows, as text cells."""
    headers: dict[int, list[ReportRow]] = {}
    for header in report.scopes:
        headers.setdefault(header.before, []).append(header.row)
    table: list[list[str]] = []
    for index, row in enumerate(report.rows):
        table.extend(_cells(header, indent, quote, header=True) for header in headers.get(index, []))
        table.append(_cells(row, indent, quote))
    return table


def _totals_lines(totals: Totals) -> list[str]:
    return [
        f"layers {totals.layers}   params {totals.params:,} ({human_count(totals.params)})   "
        f"frozen {totals.frozen:,}   buffers {totals.buffers:,}   "
        f"MACs {totals.macs:,} ({human_count(totals.macs)})   "
        f"FLOPs {totals.flops:,} ({human_count(totals.flops)})",
        f"weights {human_bytes(totals.weight_bytes)}   "
        f"activations {human_bytes(totals.activation_bytes)} (all outputs)   "
        f"peak live activations {human_bytes(totals.peak_activation_bytes)}",
    ]


def _title(report: Report) -> str:
    inputs = ", ".join(f"{i.name} {shape_text([i.shape])}" for i in report.inputs)
    outputs = ", ".join(f"{o.name} {shape_text([o.shape])}" for o in report.outputs)
    return f"{report.name}: input {inputs} -> output {outputs}"


def render_text(report: Report) -> str:
    out = [
        _title(report),
        *(
            wrapped
            for sentence in report.conventions
            for wrapped in textwrap.wrap(sentence, 100, initial_indent="# ", subsequent_indent="#   ")
        ),
        "",
        render_text_table(HEADER, _table(report, "  "), RIGHT_ALIGNED),
        *_totals_lines(report.totals),
    ]
    return "\n".join(out) + "\n"


CSV_COLUMNS = [
    "name",
    "type",
    "scope",
    "level",
    "layer_count",
    "output_shapes",
    *SUMMED_KEYS,
    "rf_size",
    "rf_stride",
    "rf_offset",
    "source",
]


def render_csv(report: Report) -> str:
    """One line per row (exact integers; shapes and fields as ``AxB``), then a ``total`` line
    whose output_bytes is the sum of all outputs."""

    def pair(values: Sequence[object] | None) -> str:
        return "x".join(map(str, values)) if values is not None else ""

    rows: list[list[object]] = []
    for row in report.rows:
        field = row.receptive_field
        rows.append(
            [
                row.name,
                row.type,
                int(row.scope),
                row.level,
                row.layer_count,
                shape_text(row.output_shapes),
                *(getattr(row, k) for k in SUMMED_KEYS),
                pair(None if field is None else field.size),
                pair(None if field is None else field.stride),
                pair(None if field is None else field.offset),
                row.source,
            ]
        )
    totals = report.totals
    sums = {key: getattr(totals, key) for key in TOTAL_KEYS} | {"output_bytes": totals.activation_bytes}
    rows.append(["total", "", "", "", totals.layers, "", *(sums[k] for k in SUMMED_KEYS), "", "", "", ""])
    return render_csv_table(CSV_COLUMNS, rows)


def render_markdown(report: Report) -> str:
    out = [
        f"## {report.name}",
        "",
        _title(report).split(": ", 1)[1],
        "",
        *(f"- {sentence}" for sentence in report.conventions),
        "",
        render_markdown_table(HEADER, _table(report, "&nbsp;&nbsp;", "`"), RIGHT_ALIGNED),
        *(f"{line}  " for line in _totals_lines(report.totals)),
    ]
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    """One JSON object, a key per line and one line per row of a list of rows (readable, and
    fast: json's C encoder only runs without ``indent``)."""
    data = report.to_dict()
    lines = ["{"]
    for index, (key, value) in enumerate(data.items()):
        comma = "," if index < len(data) - 1 else ""
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            rows = [f"  {json.dumps(item, ensure_ascii=False)}," for item in value]
            rows[-1] = rows[-1][:-1]
            lines.extend([f" {json.dumps(key)}: [", *rows, f" ]{comma}"])
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str) -> str:
    """``report`` from :func:`report_data` in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "md":
        return render_markdown(report)
    return render_text(report)
