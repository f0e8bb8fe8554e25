"""Reports over an analysed graph: the JSON contract of DESIGN.md §8 and its text, CSV and
Markdown renderings, with layers grouped by their dotted scopes (``layer1.0.conv1`` sits in
``layer1`` and ``layer1.0``) and ``depth`` collapsing deeper scopes into one row each."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from netspec.graph import Graph, Node
from netspec.receptive import ReceptiveField
from netspec.tables import render_csv_table, render_markdown_table, render_text_table
from netspec.typed import TypedGraph

FORMATS = ("text", "json", "csv", "md")

SUMMED_KEYS = ("params", "buffers", "frozen", "macs", "flops", "output_bytes")


def conventions(batch: int, dtype: str = "float32") -> list[str]:
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
    members: dict[str, int] = {}
    for node in nodes:
        for scope in scopes_of(node.name):
            members[scope] = members.get(scope, 0) + 1
    chains = [[s for s in scopes_of(node.name) if members[s] > 1] for node in nodes]
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


def _field(fields: dict[str, ReceptiveField | None], tensor: str) -> dict[str, Any] | None:
    field = fields.get(tensor)
    return None if field is None else field.as_dict()


def report_data(analysis: TypedGraph, depth: int = 0) -> dict[str, Any]:
    """The report as plain data: the JSON contract (DESIGN.md §8) plus extra keys.

    ``layers`` holds one row per layer, or with ``depth`` K > 0 one row per scope K deep
    (``"scope": true``, its figures summed over its ``layer_count`` layers, ``type`` the
    template instantiated there or ``"scope"``); the rows always add up to the totals.
    ``scopes`` holds the enclosing scopes shown as headers, each with its summed figures and
    ``before``, the index of its first row. Every row has its nesting ``level``.
    """
    graph, types, counts = analysis.graph, analysis.types, analysis.counts
    fields = analysis.receptive_fields
    producers = graph.producers
    consumers = graph.consumers

    own = {row.name: [getattr(row, key) for key in SUMMED_KEYS] for row in counts.layers}

    def figures(nodes: Sequence[Node]) -> dict[str, int]:
        columns = zip(*(own[n.name] for n in nodes), strict=True)
        return dict(zip(SUMMED_KEYS, map(sum, columns), strict=True))

    def row(
        name: str,
        type_: str,
        level: int,
        nodes: Sequence[Node],
        inputs: list[str],
        outputs: list[str],
        where: str | None,
        scope: bool,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "type": type_,
            "scope": scope,
            "level": level,
            "layer_count": len(nodes),
            "inputs": inputs,
            "outputs": outputs,
            "output_shapes": [list(types[t].dims) for t in outputs],
            **figures(nodes),
            "receptive_field": _field(fields, outputs[0]),
            "source": where,
        }

    def source(node: Node) -> str | None:
        return f"{node.span.source.path}:{node.span.line}" if node.span else None

    def group_row(group: Group) -> dict[str, Any]:
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

    def layer_row(node: Node, level: int) -> dict[str, Any]:
        inputs, outputs = list(node.inputs), list(node.outputs)
        return row(node.name, node.type, level, [node], inputs, outputs, source(node), scope=False)

    layers: list[dict[str, Any]] = []
    headers: list[dict[str, Any]] = []
    for kind, item, level in scope_layout([n for n in graph.nodes if n.inputs], depth):
        if kind == "header":
            assert isinstance(item, Group)
            headers.append({**group_row(item), "before": len(layers)})
        elif kind == "scope":
            assert isinstance(item, Group)
            layers.append(group_row(item))
        else:
            assert isinstance(item, Node)
            layers.append(layer_row(item, level))
    totals = counts.totals
    return {
        "name": graph.name,
        "batch": analysis.batch,
        "depth": depth,
        "dtype": analysis.dtype,
        "conventions": conventions(analysis.batch, analysis.dtype) + _uncounted_note(graph),
        "inputs": [
            {"name": n.outputs[0], "shape": list(types[n.outputs[0]].dims)} for n in graph.input_nodes
        ],
        "outputs": [{"name": t, "shape": list(types[t].dims)} for t in graph.outputs],
        "totals": {
            "params": totals.params,
            "buffers": totals.buffers,
            "frozen": totals.frozen,
            "macs": totals.macs,
            "flops": totals.flops,
            "weight_bytes": totals.weight_bytes,
            "activation_bytes": totals.activation_bytes,
            "peak_activation_bytes": totals.peak_activation_bytes,
            "layers": totals.layers,
        },
        "layers": layers,
        "scopes": headers,
    }


def _uncounted_note(graph: Graph) -> list[str]:
    """The header's note on layers that count nothing because netspec does not know them
    (ONNX operators without a netspec layer)."""
    from collections import Counter

    unknown = Counter(n.layer.params.op_type for n in graph.nodes if getattr(n.layer, "uncounted", False))
    if not unknown:
        return []
    listed = ", ".join(f"{op} ×{count}" if count > 1 else op for op, count in sorted(unknown.items()))
    return [
        f"not counted: {sum(unknown.values())} ONNX node(s) netspec has no layer for ({listed}); "
        "the totals exclude their MACs and FLOPs, and receptive fields stop at them."
    ]


def human_count(value: int) -> str:
    """1234567 -> '1.23M' (K, M, G, T: powers of 1000)."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def human_bytes(value: int) -> str:
    """1536 -> '1.50 KiB' (powers of 1024)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def shape_text(shapes: Sequence[Sequence[Any]]) -> str:
    """``[[1, 64, 56, 56]]`` -> ``1x64x56x56`` (several shapes separated by spaces)."""
    return " ".join("x".join(str(d) for d in shape) for shape in shapes)


def field_text(field: dict[str, Any] | None) -> str:
    """A receptive field as ``size/stride``, ``HxW/HxW`` when the axes differ; ``-`` for none."""
    if field is None:
        return "-"

    def pair(values: Sequence[Any]) -> str:
        return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"

    return f"{pair(field['size'])}/{pair(field['stride'])}"


HEADER = ["layer", "type", "output", "params", "MACs", "FLOPs", "memory", "RF/stride"]
RIGHT_ALIGNED = {3, 4, 5, 6}


def _cells(row: dict[str, Any], indent: str, quote: str = "") -> list[str]:
    count_or_dash = [human_count(row[k]) if row[k] else "-" for k in ("params", "macs", "flops")]
    collapsed = row["scope"] and "before" not in row
    type_text = f"{row['type']} ({row['layer_count']} layers)" if collapsed else row["type"]
    return [
        indent * row["level"] + quote + row["name"] + quote,
        type_text,
        shape_text(row["output_shapes"]),
        *count_or_dash,
        human_bytes(row["output_bytes"]),
        field_text(row["receptive_field"]),
    ]


def _table(data: dict[str, Any], indent: str, quote: str = "") -> list[list[str]]:
    """Header rows (enclosing scopes) interleaved with the layer rows, as text cells."""
    headers = {}
    for header in data["scopes"]:
        headers.setdefault(header["before"], []).append(header)
    table = []
    for index, row in enumerate(data["layers"]):
        table.extend(_cells(header, indent, quote) for header in headers.get(index, []))
        table.append(_cells(row, indent, quote))
    return table


def _totals_lines(totals: dict[str, Any]) -> list[str]:
    return [
        f"layers {totals['layers']}   params {totals['params']:,} ({human_count(totals['params'])})   "
        f"frozen {totals['frozen']:,}   buffers {totals['buffers']:,}   "
        f"MACs {totals['macs']:,} ({human_count(totals['macs'])})   "
        f"FLOPs {totals['flops']:,} ({human_count(totals['flops'])})",
        f"weights {human_bytes(totals['weight_bytes'])}   "
        f"activations {human_bytes(totals['activation_bytes'])} (all outputs)   "
        f"peak live activations {human_bytes(totals['peak_activation_bytes'])}",
    ]


def _title(data: dict[str, Any]) -> str:
    inputs = ", ".join(f"{i['name']} {shape_text([i['shape']])}" for i in data["inputs"])
    outputs = ", ".join(f"{o['name']} {shape_text([o['shape']])}" for o in data["outputs"])
    return f"{data['name']}: input {inputs} -> output {outputs}"


def render_text(data: dict[str, Any]) -> str:
    out = [
        _title(data),
        *(
            wrapped
            for sentence in data["conventions"]
            for wrapped in textwrap.wrap(sentence, 100, initial_indent="# ", subsequent_indent="#   ")
        ),
        "",
        render_text_table(HEADER, _table(data, "  "), RIGHT_ALIGNED),
        *_totals_lines(data["totals"]),
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


def render_csv(data: dict[str, Any]) -> str:
    """One line per row of ``layers`` (exact integers; shapes and fields as ``AxB``), then a
    ``total`` line whose output_bytes is the sum of all outputs."""

    def pair(field: dict[str, Any] | None, key: str) -> str:
        return "x".join(map(str, field[key])) if field else ""

    rows: list[list[object]] = [
        [
            row["name"],
            row["type"],
            int(row["scope"]),
            row["level"],
            row["layer_count"],
            shape_text(row["output_shapes"]),
            *(row[k] for k in SUMMED_KEYS),
            pair(row["receptive_field"], "size"),
            pair(row["receptive_field"], "stride"),
            pair(row["receptive_field"], "offset"),
            row["source"],
        ]
        for row in data["layers"]
    ]
    totals = data["totals"]
    sums = {**totals, "output_bytes": totals["activation_bytes"]}
    rows.append(["total", "", "", "", totals["layers"], "", *(sums[k] for k in SUMMED_KEYS), "", "", "", ""])
    return render_csv_table(CSV_COLUMNS, rows)


def render_markdown(data: dict[str, Any]) -> str:
    out = [
        f"## {data['name']}",
        "",
        _title(data).split(": ", 1)[1],
        "",
        *(f"- {sentence}" for sentence in data["conventions"]),
        "",
        render_markdown_table(HEADER, _table(data, "&nbsp;&nbsp;", "`"), RIGHT_ALIGNED),
        *(f"{line}  " for line in _totals_lines(data["totals"])),
    ]
    return "\n".join(out) + "\n"


def render_json(data: dict[str, Any]) -> str:
    """One JSON object, a key per line and one line per row of a list of rows (readable, and
    fast: json's C encoder only runs without ``indent``)."""
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


def render(data: dict[str, Any], fmt: str) -> str:
    """``data`` from :func:`report_data` in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(data)
    if fmt == "csv":
        return render_csv(data)
    if fmt == "md":
        return render_markdown(data)
    return render_text(data)
