"""Reports over an analysed graph: the JSON contract of DESIGN.md §8, and text, CSV and
Markdown renderings of the same rows."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from netspec.compiler import Analysis
from netspec.receptive import receptive_fields

FORMATS = ("text", "json", "csv", "md")

CONVENTIONS = (
    "params: learnable values (weights, biases, BatchNorm/Scale gamma and beta); "
    "buffers: stored, not learned (BatchNorm running mean/variance). "
    "frozen: params a Caffe file fixes with lr_mult 0 (still counted as params). "
    "MACs: multiply-accumulates of convolution and fully connected layers (bias not counted). "
    "FLOPs: every floating-point operation (2 per MAC, bias adds, elementwise work). "
    "Memory: bytes of float32 tensors."
)


def report_data(analysis: Analysis) -> dict[str, Any]:
    """The report as plain data, with exactly the keys of the JSON contract."""
    graph, types, counts = analysis.graph, analysis.types, analysis.counts
    fields = receptive_fields(graph, types)
    by_name = {row.name: row for row in counts.layers}
    layers = []
    for node in graph.nodes:
        if not node.inputs:
            continue
        row = by_name[node.name]
        field = fields.get(node.outputs[0])
        layers.append(
            {
                "name": node.name,
                "type": node.type,
                "inputs": list(node.inputs),
                "outputs": list(node.outputs),
                "output_shapes": [list(types[t].dims) for t in node.outputs],
                "params": row.params,
                "buffers": row.buffers,
                "frozen": row.frozen,
                "macs": row.macs,
                "flops": row.flops,
                "output_bytes": row.output_bytes,
                "receptive_field": None
                if field is None
                else {"size": list(field.size), "stride": list(field.stride), "offset": list(field.offset)},
                "source": f"{node.span.source.path}:{node.span.line}" if node.span else None,
            }
        )
    totals = counts.totals
    return {
        "name": graph.name,
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
    }


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


def _shape_text(shapes: list[list[Any]]) -> str:
    return " ".join("x".join(str(d) for d in shape) for shape in shapes)


def _field_text(field: dict[str, Any] | None) -> str:
    if field is None:
        return "-"
    size, stride = field["size"], field["stride"]
    size_text = str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"
    stride_text = str(stride[0]) if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"
    return f"{size_text}/{stride_text}"


def _table_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["layer", "type", "output", "params", "MACs", "FLOPs", "memory", "RF/stride"]
    rows = []
    for layer in data["layers"]:
        rows.append(
            [
                layer["name"],
                layer["type"],
                _shape_text(layer["output_shapes"]),
                human_count(layer["params"]) if layer["params"] else "-",
                human_count(layer["macs"]) if layer["macs"] else "-",
                human_count(layer["flops"]) if layer["flops"] else "-",
                human_bytes(layer["output_bytes"]),
                _field_text(layer["receptive_field"]),
            ]
        )
    return header, rows


def render_text(data: dict[str, Any]) -> str:
    header, rows = _table_rows(data)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {3, 4, 5, 6}

    def line(cells: list[str]) -> str:
        aligned = zip(cells, widths, strict=True)
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(aligned))
        return "  ".join(padded).rstrip()

    totals = data["totals"]
    inputs = ", ".join(f"{i['name']} {_shape_text([i['shape']])}" for i in data["inputs"])
    outputs = ", ".join(f"{o['name']} {_shape_text([o['shape']])}" for o in data["outputs"])
    out = [
        f"{data['name']}: input {inputs} -> output {outputs}",
        f"conventions: {CONVENTIONS}",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows),
        "",
        f"layers {totals['layers']}   params {totals['params']:,} ({human_count(totals['params'])})   "
        + (f"frozen {totals['frozen']:,}   " if totals["frozen"] else "")
        + f"buffers {totals['buffers']:,}   MACs {totals['macs']:,} ({human_count(totals['macs'])})   "
        f"FLOPs {totals['flops']:,} ({human_count(totals['flops'])})",
        f"weights {human_bytes(totals['weight_bytes'])}   "
        f"activations {human_bytes(totals['activation_bytes'])}   "
        f"peak live activations {human_bytes(totals['peak_activation_bytes'])}",
    ]
    return "\n".join(out) + "\n"


def render_csv(data: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "name",
            "type",
            "output_shapes",
            "params",
            "buffers",
            "macs",
            "flops",
            "output_bytes",
            "rf_size",
            "rf_stride",
            "source",
        ]
    )
    for layer in data["layers"]:
        field = layer["receptive_field"]
        writer.writerow(
            [
                layer["name"],
                layer["type"],
                _shape_text(layer["output_shapes"]),
                layer["params"],
                layer["buffers"],
                layer["macs"],
                layer["flops"],
                layer["output_bytes"],
                "x".join(map(str, field["size"])) if field else "",
                "x".join(map(str, field["stride"])) if field else "",
                layer["source"] or "",
            ]
        )
    totals = data["totals"]
    writer.writerow(
        [
            "total",
            "",
            "",
            totals["params"],
            totals["buffers"],
            totals["macs"],
            totals["flops"],
            totals["activation_bytes"],
            "",
            "",
            "",
        ]
    )
    return buffer.getvalue()


def render_markdown(data: dict[str, Any]) -> str:
    header, rows = _table_rows(data)
    totals = data["totals"]
    out = [
        f"## {data['name']}",
        "",
        f"_{CONVENTIONS}_",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i in (3, 4, 5, 6) else "---" for i in range(len(header))) + "|",
        *("| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(r)) + " |" for r in rows),
        "",
        f"**Total**: {totals['layers']} layers, {totals['params']:,} params, {totals['buffers']:,} buffers, "
        f"{totals['macs']:,} MACs, {totals['flops']:,} FLOPs, weights {human_bytes(totals['weight_bytes'])}, "
        f"peak activations {human_bytes(totals['peak_activation_bytes'])}.",
    ]
    return "\n".join(out) + "\n"


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    if fmt == "csv":
        return render_csv(data)
    if fmt == "md":
        return render_markdown(data)
    return render_text(data)
