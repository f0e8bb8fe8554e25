"""Graph pictures: the layer graph as Graphviz DOT text, tensor shapes on the edges and template
scopes as nested clusters (``depth`` collapses deeper scopes into one node), rendered to SVG or
PNG by Graphviz's ``dot`` program when it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from netspec.diagnostics import UsageError, error
from netspec.graph import Node
from netspec.output import write_atomic
from netspec.report import Group, scope_layout
from netspec.tables import human_count
from netspec.typed import TypedGraph

PICTURE_FORMATS = (".dot", ".svg", ".png")

# Fill colours by layer family; anything else is white.
_COLOURS = {
    "Convolution": "#cfe2f3",
    "ConvolutionDepthwise": "#cfe2f3",
    "DepthwiseConvolution": "#cfe2f3",
    "Deconvolution": "#cfe2f3",
    "InnerProduct": "#d9d2e9",
    "Pooling": "#fce5cd",
    "AdaptiveAvgPool": "#fce5cd",
    "Upsample": "#fce5cd",
    "BatchNorm": "#d9ead3",
    "BN": "#d9ead3",
    "Scale": "#d9ead3",
    "LRN": "#d9ead3",
    "Eltwise": "#fff2cc",
    "Concat": "#fff2cc",
}
_SCOPE_COLOUR = "#eeeeee"
_CLUSTER_COLOURS = ("#eeeeee", "#fafafa")  # alternating with the nesting level


def _quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _params_line(count: int) -> str:
    return f"\n{human_count(count)} params" if count else ""


def edge_label(dims: tuple[int | str, ...]) -> str:
    """A tensor's shape without the batch axis: ``[1, 64, 56, 56]`` -> ``64×56×56``."""
    shown = dims[1:] if len(dims) > 1 else dims
    return "×".join(str(d) for d in shown)


def graph_dot(analysis: TypedGraph, depth: int = 0) -> str:
    """The layer graph of ``analysis`` as DOT text.

    Every layer is a node (a box labelled with its name and type; parameters in K/M), every
    tensor an edge from its producer to each reader labelled with its shape without the batch
    axis; graph inputs are ellipses. Scopes holding two or more layers are clusters
    (``subgraph cluster_N``, nested as the dotted names nest); with ``depth`` K > 0 the scopes K
    deep (``layer1`` is 1 deep) become one node each (double border, labelled with the template
    and layer count).
    """
    graph, types, counts = analysis.graph, analysis.types, analysis.counts
    params = {row.name: row.params for row in counts.layers}
    vertex_of: dict[str, str] = {}  # layer name -> DOT node id
    lines = [
        f"digraph {_quote(graph.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in graph.input_nodes:
        tensor = node.outputs[0]
        vertex_of[node.name] = node.name
        label = f"{tensor}\n{edge_label(types[tensor].dims)}"
        lines.append(f"  {_quote(node.name)} [shape=ellipse, label={_quote(label)}];")

    open_levels: list[int] = []
    clusters = 0

    def close_to(level: int) -> None:
        while open_levels and open_levels[-1] >= level:
            open_levels.pop()
            lines.append("  " * (len(open_levels) + 1) + "}")

    for kind, item, level in scope_layout([n for n in graph.nodes if n.inputs], depth):
        close_to(level)
        indent = "  " * (len(open_levels) + 1)
        if kind == "header":
            assert isinstance(item, Group)
            title = item.name if item.type == "scope" else f"{item.name}: {item.type}"
            lines.append(f"{indent}subgraph cluster_{clusters} {{")
            fill = _CLUSTER_COLOURS[level % 2]
            lines.append(
                f'{indent}  label={_quote(title)}; style="rounded,filled"; fillcolor="{fill}"; '
                'fontname="Helvetica"; fontsize=10;'
            )
            clusters += 1
            open_levels.append(level)
        elif kind == "scope":
            assert isinstance(item, Group)
            for member in item.nodes:
                vertex_of[member.name] = item.name
            weights = sum(params[m.name] for m in item.nodes)
            label = f"{item.name}\n{item.type}, {len(item.nodes)} layers{_params_line(weights)}"
            attributes = f"peripheries=2, fillcolor={_quote(_SCOPE_COLOUR)}, label={_quote(label)}"
            lines.append(f"{indent}{_quote(item.name)} [{attributes}];")
        else:
            assert isinstance(item, Node)
            vertex_of[item.name] = item.name
            colour = _COLOURS.get(item.type, "white")
            label = f"{item.name}\n{item.type}{_params_line(params[item.name])}"
            attributes = f"fillcolor={_quote(colour)}, label={_quote(label)}"
            lines.append(f"{indent}{_quote(item.name)} [{attributes}];")
    close_to(0)

    producers = graph.producers
    drawn: set[tuple[str, str, str]] = set()
    for node in graph.nodes:
        for tensor in node.inputs:
            source, target = vertex_of[producers[tensor].name], vertex_of[node.name]
            if source == target or (source, target, tensor) in drawn:
                continue
            drawn.add((source, target, tensor))
            label = edge_label(types[tensor].dims)
            lines.append(f"  {_quote(source)} -> {_quote(target)} [label={_quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_picture_output(output: str | os.PathLike[str]) -> None:
    """Fail before any work when ``output`` cannot be written: an unknown format, a missing
    folder, or SVG/PNG without Graphviz's ``dot`` on PATH (a UsageError: exit code 2)."""
    suffix = Path(output).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise UsageError(
            f"cannot tell the picture format of '{output}': name the output with one of "
            f"{', '.join(PICTURE_FORMATS)}"
        )
    folder = Path(output).parent
    if not folder.is_dir():
        raise UsageError(f"cannot write '{output}': the folder '{folder}' does not exist")
    if suffix != ".dot" and shutil.which("dot") is None:
        raise UsageError(
            f"writing {suffix[1:].upper()} needs Graphviz's 'dot' program, which is not on PATH: "
            "install Graphviz (e.g. apt-get install graphviz, brew install graphviz) or write .dot"
        )


def write_picture(dot_text: str, output: str | os.PathLike[str]) -> None:
    """Write ``dot_text`` to ``output``: as it is for ``.dot``, rendered by Graphviz's ``dot``
    for ``.svg`` and ``.png``; atomically either way."""
    check_picture_output(output)
    suffix = Path(output).suffix.lower()
    if suffix == ".dot":
        write_atomic(output, dot_text)
        return
    program = shutil.which("dot")
    assert program is not None  # check_picture_output
    write_atomic(output, _run_dot(program, dot_text, suffix[1:]))


def graph_svg(typed: TypedGraph, depth: int = 0) -> str | None:
    """The picture of :func:`graph_dot` as SVG text, drawn by Graphviz's ``dot``; None when
    ``dot`` is not on PATH (what a notebook's ``_repr_svg_`` answers to fall back to text)."""
    program = shutil.which("dot")
    if program is None:
        return None
    return _run_dot(program, graph_dot(typed, depth), "svg").decode("utf-8")


def _run_dot(program: str, dot_text: str, kind: str) -> bytes:
    """``dot_text`` rendered by Graphviz's ``program`` as ``kind`` (svg, png)."""
    result = subprocess.run(
        [program, f"-T{kind}"], input=dot_text.encode("utf-8"), capture_output=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise error(f"Graphviz's dot failed (exit {result.returncode}): {message}")
    return result.stdout
