"""A Graph (read from a Caffe prototxt) written back as an idiomatic .net spec: one line per
layer with only the parameters that differ from the defaults, implicit chaining, and repeated
blocks (residual blocks, dense layers, inception and fire modules) folded into templates and loops.

Folding, in outline: the node sequence is cut after each node where a single tensor carries
everything that follows; the nodes between two cuts form a segment. Segments with branches whose
structure (layer types, and wiring relative to the segment's input) occurs at least twice are
the cores of templates; all occurrences of a core then grow by the neighbouring segments they
all share (the ReLU after a residual sum, the squeeze layers before a fire module's expand
branches). The parameter values that differ between occurrences become template parameters
(equal columns share one; an integer column k times another is written ``k * name``); runs of
chained instances with equal arguments and names in a pattern become a ``repeat`` or ``for``.

The result is always checked: the written text is elaborated again and must give the same graph
(node for node: type, parameters, wiring and outputs), else the flat form is written instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netspec import __version__
from netspec.diagnostics import NetspecError, SourceFile, error
from netspec.graph import Dim, Graph, Node
from netspec.layers.base import Enum, Filler, FillerBlock, Kind, ListOf, Padding, Shape, Spatial, Str

KEYWORDS = frozenset({
    "template", "let", "include", "input", "if", "elif", "else", "repeat", "as", "for", "in",
    "and", "or", "not", "true", "false",
})  # fmt: skip

_SEPARATORS = "_."
# A block whose instances differ in more values than this is left flat.
MAX_TEMPLATE_PARAMS = 8
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Conversion:
    """A converted spec: its text, the graph it was made from, each graph node's name in the
    spec (``res2b_branch2a`` -> ``res2b.branch2a``) and the templates it defines."""

    text: str
    source: Graph
    node_names: Mapping[str, str]
    templates: tuple[str, ...]


def convert_caffe(
    path: str | os.PathLike[str],
    *,
    phase: str = "TEST",
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    templates: bool = True,
) -> Conversion:
    """Read a Caffe prototxt for ``phase`` and write it as a .net spec (see :func:`convert_graph`)."""
    from netspec.compiler import is_caffe_path, load_graph

    if not is_caffe_path(path):
        raise error(
            f"netspec convert reads Caffe .prototxt files, not {Path(path).name}",
            hint="a .net spec is already in netspec's own language",
        )
    graph = load_graph(path, phase=phase, input_shapes=input_shapes)
    origin = f"{Path(path).name} (phase {phase})"
    return convert_graph(graph, templates=templates, origin=origin)


def convert_graph(graph: Graph, *, templates: bool = True, origin: str | None = None) -> Conversion:
    """``graph`` as .net text that elaborates to the same graph; with ``templates``, repeated
    blocks are folded into templates and loops (falling back to the flat form if that fails)."""
    notes = []
    if templates:
        folded = _write(graph, origin, fold=True)
        problem = _mismatch(graph, folded.text) if folded.templates else None
        if problem is None:
            return folded
        # NOTE: a bug in folding must not cost the user a correct spec; it is reported, not fatal.
        notes.append(f"folding repeated blocks gave a different graph ({problem.splitlines()[0]});")
        notes.append("this is a bug in netspec convert, so the spec is written flat")
    flat = _write(graph, origin, fold=False, notes=notes)
    problem = _mismatch(graph, flat.text)
    if problem is not None:
        raise RuntimeError(f"the converted spec does not reproduce the graph: {problem}")
    return flat


# ---------------------------------------------------------------- names


def valid_name(text: str) -> str:
    """``text`` as a .net name: characters other than letters, digits, '_' and '.' become '_';
    the first segment starts with a letter or '_'; keywords get a trailing '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9_.]", "_", text) or "_"
    segments = [segment or "_" for segment in cleaned.split(".")]
    if not _SEGMENT.match(segments[0]):
        segments[0] = "_" + segments[0]
    name = ".".join(segments)
    return name + "_" if name in KEYWORDS else name


def _unique(name: str, used: set[str], taken: Callable[[str], bool] | None = None) -> str:
    """``name``, or ``name_2``, ``name_3``... where it is already used; records the result."""
    candidate, number = name, 1
    while candidate in used or (taken is not None and taken(candidate)):
        number += 1
        candidate = f"{name}_{number}"
    used.add(candidate)
    return candidate


def _strip_index(text: str) -> str:
    """A name part without the trailing digits and separators that number its instances."""
    return text.rstrip("0123456789" + _SEPARATORS)


def _common_prefix(texts: Sequence[str]) -> str:
    shortest = min(texts, key=len, default="")
    for index, char in enumerate(shortest):
        if any(t[index] != char for t in texts):
            return shortest[:index]
    return shortest


def _common_suffix(texts: Sequence[str]) -> str:
    return _common_prefix([t[::-1] for t in texts])[::-1]


def _instance_name(names: Sequence[str]) -> str:
    """The name a block's layers share: the longest prefix (ending at a separator or a whole
    name) that at least half of them start with, e.g. ``res2a`` or ``inception_a1``."""
    need = max(1, min(len(names), max(2, (len(names) + 1) // 2)))
    ordered = sorted(names)
    best = ""
    for first in range(len(ordered) - need + 1):
        prefix = _common_prefix([ordered[first], ordered[first + need - 1]])
        if len(prefix) > len(best):
            best = prefix
    if best and best not in names and best[-1] not in _SEPARATORS:
        followers = {n[len(best)] for n in names if n.startswith(best) and len(n) > len(best)}
        if followers - set(_SEPARATORS):
            cut = max(best.rfind("_"), best.rfind("."))
            best = best[:cut] if cut > 0 else ""
    best = best.strip(_SEPARATORS)
    return best if best and _SEGMENT.match(best) else ""


def _local_names(
    occurrences: Sequence[Sequence[str]], instances: Sequence[str], types: Sequence[str]
) -> list[str]:
    """Names for a template's layers, the same in every instance. The first rule that gives
    every instance the same name wins: what follows the instance's name (``res2b_branch2a`` in
    ``res2b``: ``branch2a``); the name without the part that tells the instances apart
    (``bn2b_branch2a`` in ``res2b``, of res2b … res5c: ``bn_branch2a``); the parts the names
    share at that position; the layer type."""
    distinct = _common_prefix(instances)
    keys = [instance[len(distinct) :] for instance in instances]
    used: set[str] = {"in"}
    result = []
    for position, type_name in enumerate(types):
        names = [occurrence[position] for occurrence in occurrences]
        for rule in (_after_instance, _without_key):
            found = {
                rule(name, instance, key) for name, instance, key in zip(names, instances, keys, strict=True)
            }
            if len(found) == 1 and None not in found:
                local = found.pop() or type_name.lower()
                break
        else:
            head = _common_prefix(names)
            tail = _common_suffix([n[len(head) :] for n in names])
            parts = [_strip_index(head), tail.strip(_SEPARATORS)]
            local = "_".join(p for p in parts if p) or type_name.lower()
        result.append(_unique(valid_name(local), used))
    return result


def _after_instance(name: str, instance: str, key: str) -> str | None:
    if name == instance:
        return ""
    if instance and name.startswith(instance) and name[len(instance)] in _SEPARATORS:
        return name[len(instance) :].strip(_SEPARATORS)
    return None


def _without_key(name: str, instance: str, key: str) -> str | None:
    if not key or key not in name:
        return None
    before, _, after = name.partition(key)
    joined = "_".join(p.strip(_SEPARATORS) for p in (before, after) if p.strip(_SEPARATORS))
    return joined or None


# Names that say what a layer is rather than what a block is: conv2_1 … conv5_16 are dense
# layers, so their template is conv_block, not conv.
_LAYER_WORDS = frozenset({"conv", "relu", "pool", "bn", "scale", "concat", "eltwise", "fc", "ip", "norm"})


def _template_name(instances: Sequence[str]) -> str:
    """``res`` for res2b, res2c, res3b...; ``res_a`` for res2a, res3a...; ``fire`` for fire2...."""
    head = _common_prefix(list(instances))
    tail = _common_suffix([n[len(head) :] for n in instances])
    parts = [_strip_index(head), tail.strip("0123456789" + _SEPARATORS)]
    name = "_".join(p for p in parts if p)
    if not _SEGMENT.fullmatch(name):
        return "block"
    return f"{name}_block" if name.lower() in _LAYER_WORDS else name


# ---------------------------------------------------------------- values in spec syntax


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        raise error(f"the value {value} has no .net spelling")
    return repr(value)


def _string_text(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _word_text(value: str) -> str:
    return value if _SEGMENT.fullmatch(value) and value not in KEYWORDS else _string_text(value)


def render_value(value: Any, kind: Kind | None = None) -> str:
    """A parameter value in spec syntax, in its shortest form for ``kind``: ``3`` for a kernel
    of [3, 3], ``[1, 2]`` for pads [1, 2, 1, 2], enum words bare, floats by shortest repr."""
    if isinstance(value, Filler):
        return value.spec_text()
    if isinstance(kind, Spatial) and isinstance(value, tuple) and len(value) == 2:
        return render_value(value[0]) if value[0] == value[1] else render_value(value)
    if isinstance(kind, Padding) and isinstance(value, tuple) and len(value) == 4:
        top, left, bottom, right = value
        if top == left == bottom == right:
            return render_value(top)
        if (top, left) == (bottom, right):
            return render_value((top, left))
        return render_value(value)
    if isinstance(kind, Enum) and isinstance(value, str):
        return _word_text(value)
    if isinstance(kind, Shape) and isinstance(value, tuple):
        return "[" + ", ".join(_word_text(d) if isinstance(d, str) else render_value(d) for d in value) + "]"
    if isinstance(kind, ListOf) and isinstance(value, tuple):
        return "[" + ", ".join(render_value(v, kind.item) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return _word_text(value) if not isinstance(kind, Str) and kind is not None else _string_text(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    raise error(f"the value {value!r} has no .net spelling")


def _fields_of(node: Node) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(node.layer.params))


def _differs_from_default(spec_field: dataclasses.Field[Any], value: Any) -> bool:
    return spec_field.default is dataclasses.MISSING or value != spec_field.default


def _param_field(node: Node, spec_field: dataclasses.Field[Any], value: Any) -> tuple[str, str]:
    """``(key, value text)`` for one of ``node``'s parameters, or a diagnostic at the layer."""
    try:
        return spec_field.name, render_value(value, spec_field.metadata.get("kind"))
    except NetspecError:
        raise error(
            f"{node.type} '{node.name}': parameter '{spec_field.name}' = {value} cannot be written "
            "in a .net spec",
            node.param_span(spec_field.name),
            hint="a .net number is finite",
        ) from None


def _layer_line(type_name: str, name: str, fields: Sequence[tuple[str, str]], comment: str = "") -> str:
    line = f"{type_name} {name}"
    if fields:
        line += " { " + "  ".join(f"{key}: {value}" for key, value in fields) + " }"
    return line + (f"  # {comment}" if comment else "")


def _bottom_field(refs: Sequence[str]) -> tuple[str, str]:
    return ("bottom", refs[0] if len(refs) == 1 else "[" + ", ".join(refs) + "]")


def _array_settings_fields(node: Node) -> list[tuple[str, str]]:
    """Caffe's ``param { name lr_mult }`` settings of ``node``'s arrays, as .net writes them:
    one ``param`` block per array up to the last one with a setting."""
    named = [index for index, shared in enumerate(node.array_names) if shared]
    count = max([index + 1 for index in (*named, *node.frozen_arrays)], default=0)
    fields = []
    for index in range(count):
        shared = node.array_names[index] if index < len(node.array_names) else None
        parts = ([f"name: {_string_text(shared)}"] if shared else []) + (
            ["lr_mult: 0"] if index in node.frozen_arrays else []
        )
        fields.append(("param", "{ " + "  ".join(parts) + " }" if parts else "{ }"))
    return fields


# ---------------------------------------------------------------- finding repeated blocks


@dataclass(frozen=True)
class _Unit:
    """A run of nodes ``start`` … ``end`` (inclusive) that reads only ``entry`` from before it
    and whose last node's first output is the only tensor read after it."""

    start: int
    end: int
    entry: str


def _structure(nodes: Sequence[Node], entry: str) -> tuple[Any, ...] | None:
    """A block's structure: its layer types and wiring relative to the entry, and which of its
    parameters are set, but not their values (instances may differ in those). None if the
    nodes read anything but the entry and each other."""
    local: dict[str, tuple[Any, ...]] = {entry: ("in",)}
    parts = []
    for position, node in enumerate(nodes):
        if not node.inputs or any(node.array_names) or node.frozen_arrays:
            return None
        refs = []
        for tensor in node.inputs:
            if tensor not in local:
                return None
            refs.append(local[tensor])
        for index, tensor in enumerate(node.outputs):
            local[tensor] = (position, index)
        unset = tuple(f.name for f in _fields_of(node) if getattr(node.layer.params, f.name) is None)
        parts.append((node.type, len(node.outputs), tuple(refs), unset))
    return tuple(parts)


@dataclass(frozen=True)
class _Segment:
    """Nodes ``start`` … ``end`` between two points where a single tensor is live: ``entry``,
    the one live before it (None at the start), and whether the one live after it is the last
    node's first output (so that the segment can end a template instance)."""

    start: int
    end: int
    entry: str | None
    exits: bool


def _segments(graph: Graph) -> list[_Segment]:
    """The node sequence split after each node where one tensor carries all that follows."""
    nodes = graph.nodes
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for tensor in node.inputs:
            last_use[tensor] = index
        for tensor in node.outputs:
            last_use.setdefault(tensor, index)
    for tensor in graph.outputs:
        last_use[tensor] = len(nodes)
    live: set[str] = set()
    segments: list[_Segment] = []
    start, entry = 0, None
    for index, node in enumerate(nodes):
        live.difference_update(t for t in node.inputs if last_use[t] == index)
        live.update(t for t in node.outputs if last_use[t] > index)
        if len(live) == 1:
            (tensor,) = live
            segments.append(_Segment(start, index, entry, tensor == node.outputs[0]))
            start, entry = index + 1, tensor
    if start < len(nodes):
        segments.append(_Segment(start, len(nodes) - 1, entry, False))
    return segments


@dataclass
class _Group:
    """The occurrences of one structure, as runs of segments ``[first, last]``."""

    runs: list[tuple[int, int]]


def _find_groups(graph: Graph) -> list[list[_Unit]]:
    """Repeated blocks: the units of each template, in node order, templates by first use."""
    segments = _segments(graph)

    def unit(run: tuple[int, int]) -> _Unit | None:
        head, tail = segments[run[0]], segments[run[1]]
        if head.entry is None or not tail.exits:
            return None
        return _Unit(head.start, tail.end, head.entry)

    def structure(run: tuple[int, int]) -> tuple[Any, ...] | None:
        found = unit(run)
        return None if found is None else _structure(graph.nodes[found.start : found.end + 1], found.entry)

    by_structure: dict[tuple[Any, ...], list[int]] = {}
    for index, segment in enumerate(segments):
        if segment.end == segment.start:
            continue  # a lone layer is no block
        key = structure((index, index))
        if key is not None:
            by_structure.setdefault(key, []).append(index)
    groups = [_Group([(i, i) for i in found]) for found in by_structure.values() if len(found) >= 2]
    claimed = {first for group in groups for first, _ in group.runs}

    def grow(group: _Group, forward: bool) -> None:
        while True:
            step = [(last + 1 if forward else first - 1) for first, last in group.runs]
            if any(s < 0 or s >= len(segments) or s in claimed for s in step):
                return
            runs = [
                (first, new) if forward else (new, last)
                for (first, last), new in zip(group.runs, step, strict=True)
            ]
            keys = {structure(run) for run in runs}
            if len(keys) != 1 or None in keys:
                return
            group.runs = runs
            claimed.update(step)

    # Forward first, for all groups, so that the ReLU after a residual sum ends its own block
    # rather than starting the next one.
    ordered = sorted(groups, key=lambda g: sum(s.end - s.start + 1 for s in _units(g, unit)), reverse=True)
    for forward in (True, False):
        for group in ordered:
            grow(group, forward)
    result = []
    for group in sorted(groups, key=lambda g: g.runs[0][0]):
        units = _units(group, unit)
        layers = units[0].end - units[0].start + 1
        # A template pays when its lines and its instances are fewer than the layers it replaces.
        if len(units) * layers > layers + 2 + len(units):
            result.append(units)
    return result


def _units(group: _Group, unit: Callable[[tuple[int, int]], _Unit | None]) -> list[_Unit]:
    units = [unit(run) for run in group.runs]
    return [u for u in units if u is not None]


# ---------------------------------------------------------------- templates


@dataclass
class _Template:
    name: str
    params: list[str]
    lines: list[str]
    units: list[_Unit]
    instance_names: list[str]
    arguments: list[tuple[str, ...]]
    local_names: list[str]


@dataclass
class _Param:
    """A template parameter: the field it sets, its value in each instance, and the first
    layer (position in the template) that uses it."""

    field: str
    values: tuple[Any, ...]
    kind: Kind | None
    first_use: int
    name: str = ""


def _columns(
    occurrences: Sequence[Sequence[Node]], locals_: Sequence[str]
) -> tuple[dict[tuple[int, str], str], list[_Param]]:
    """The parameters that differ between the occurrences: the expression each such (position,
    field) gets in the template, and the template's parameters in order of first use."""
    representative = occurrences[0]
    by_field: dict[str, list[tuple[int, tuple[Any, ...], Kind | None]]] = {}
    for position, node in enumerate(representative):
        for spec_field in _fields_of(node):
            values = tuple(getattr(o[position].layer.params, spec_field.name) for o in occurrences)
            if any(v != values[0] for v in values):
                kind = spec_field.metadata.get("kind")
                by_field.setdefault(spec_field.name, []).append((position, values, kind))
    # Per field, equal columns share a parameter, and an integer column that is k times a
    # smaller one is written ``k * name`` (a bottleneck's 4x expansion, a fire module's expand
    # layers).
    uses: dict[tuple[int, str], tuple[_Param, int]] = {}
    params: list[_Param] = []
    for field_name, columns in by_field.items():
        integer = all(type(v) is int for _, values, _ in columns for v in values)
        distinct = list(dict.fromkeys(values for _, values, _ in columns))
        chosen: dict[tuple[Any, ...], tuple[_Param, int]] = {}
        for values in sorted(distinct, key=sum) if integer else distinct:
            match = None
            for base, _ in chosen.values() if integer else ():
                factor = _common_factor(values, base.values)
                if factor is not None:
                    match = (base, factor)
                    break
            if match is None:
                kind = next(k for _, v, k in columns if v == values)
                match = (_Param(field_name, values, kind, len(representative)), 1)
                params.append(match[0])
            chosen[values] = match
        for position, values, _ in columns:
            param, factor = chosen[values]
            param.first_use = min(param.first_use, position)
            uses[(position, field_name)] = (param, factor)
    params.sort(key=lambda p: p.first_use)
    # Named after their field, or layer_field where one field needs several or the field's
    # name is taken (by a layer of the template, or an enum word it writes bare).
    reserved = {*locals_, "in", *KEYWORDS, *_bare_words(representative)}
    per_field = {p.field: sum(q.field == p.field for q in params) for p in params}
    used: set[str] = set()
    for param in params:
        wanted = param.field
        if per_field[param.field] > 1 or wanted in reserved:
            wanted = f"{locals_[param.first_use]}_{param.field}"
        param.name = _unique(valid_name(wanted.replace(".", "_")), used, lambda n: n in reserved)
    expressions = {
        key: param.name if factor == 1 else f"{factor} * {param.name}"
        for key, (param, factor) in uses.items()
    }
    return expressions, params


def _common_factor(values: Sequence[int], base: Sequence[int]) -> int | None:
    """k >= 2 with values == k * base elementwise, if there is one."""
    factors = {v // b if b and v % b == 0 else None for v, b in zip(values, base, strict=True)}
    factor = factors.pop() if len(factors) == 1 else None
    return factor if factor is not None and factor >= 2 else None


def _bare_words(nodes: Sequence[Node]) -> set[str]:
    """Enum words a template body writes bare (a parameter of that name would replace them)."""
    words = set()
    for node in nodes:
        for spec_field in _fields_of(node):
            value = getattr(node.layer.params, spec_field.name)
            if isinstance(spec_field.metadata.get("kind"), Enum) and isinstance(value, str):
                words.add(value)
    return words


def _build_template(graph: Graph, units: Sequence[_Unit], used_templates: set[str]) -> _Template | None:
    """The template for ``units`` (blocks of one structure), or None where their values differ
    in so many places that instances with that many arguments would not read better."""
    occurrences = [graph.nodes[u.start : u.end + 1] for u in units]
    caffe_names = [[valid_name(n.name) for n in nodes] for nodes in occurrences]
    instances = [_instance_name(names) or names[-1] for names in caffe_names]
    types = [n.type for n in occurrences[0]]
    locals_ = _local_names(caffe_names, instances, types)
    expressions, params = _columns(occurrences, locals_)
    if len(params) > MAX_TEMPLATE_PARAMS or any(isinstance(p.kind, FillerBlock) for p in params):
        return None  # a filler block cannot be a template argument
    arguments = [tuple(render_value(p.values[j], p.kind) for p in params) for j in range(len(units))]
    name = _unique(_template_name(instances), used_templates, _is_layer_type)

    representative = occurrences[0]
    refs: dict[str, str] = {units[0].entry: "in"}
    previous = units[0].entry
    lines = []
    for position, node in enumerate(representative):
        fields: list[tuple[str, str]] = []
        if node.inputs != (previous,):
            fields.append(_bottom_field([refs[t] for t in node.inputs]))
        for spec_field in _fields_of(node):
            value = getattr(node.layer.params, spec_field.name)
            if (position, spec_field.name) in expressions:
                fields.append((spec_field.name, expressions[(position, spec_field.name)]))
            elif _differs_from_default(spec_field, value):
                fields.append(_param_field(node, spec_field, value))
        local = locals_[position]
        if len(node.outputs) == 1:
            refs[node.outputs[0]] = local
        else:
            refs.update((t, f"{local}.{i}") for i, t in enumerate(node.outputs))
        lines.append("  " + _layer_line(node.type, local, fields, node.name))
        previous = node.outputs[0]
    return _Template(name, [p.name for p in params], lines, list(units), instances, arguments, locals_)


def _is_layer_type(name: str) -> bool:
    from netspec.layers import LAYER_TYPES

    return name in LAYER_TYPES or name in KEYWORDS


# ---------------------------------------------------------------- writing


@dataclass
class _Instance:
    """One use of a template: which template, which of its units, its name, and its
    ``bottom`` where it does not read the previous statement's output."""

    template: _Template
    index: int
    name: str = ""
    bottom: str | None = None

    @property
    def unit(self) -> _Unit:
        return self.template.units[self.index]

    def node_indices(self) -> range:
        return range(self.unit.start, self.unit.end + 1)


@dataclass
class _Writer:
    """Writes one graph as .net text; collects each graph node's name in the spec as it goes."""

    graph: Graph
    origin: str | None
    fold: bool
    notes: list[str] = field(default_factory=list)
    node_names: dict[str, str] = field(default_factory=dict)

    def write(self) -> Conversion:
        """The spec: find the repeated blocks (when folding), name everything, write the
        statements in node order, then put the header, inputs, templates and body together."""
        templates = self.templates() if self.fold else []
        folded = _instances_by_start(templates)
        used: set[str] = set()
        flat_names = self.flat_layer_names(folded, used)
        _name_instances(folded, used)
        refs, tops = self.tensor_names(flat_names, folded, used)
        inputs, body = self.statements(folded, flat_names, refs, tops)
        lines = [*self.header(folded), f"name: {_string_text(self.graph.name)}", *inputs]
        lines.extend(self.template_definitions(templates, folded))
        lines.extend(_with_loops(body))
        text = "\n".join(lines) + "\n"
        return Conversion(text, self.graph, dict(self.node_names), tuple(t.name for t in templates))

    def templates(self) -> list[_Template]:
        """A template for each group of repeated blocks that reads better as one."""
        used_templates: set[str] = set()
        built = (_build_template(self.graph, units, used_templates) for units in _find_groups(self.graph))
        return [template for template in built if template is not None]

    def flat_layer_names(self, folded: Mapping[int, _Instance], used: set[str]) -> dict[int, str]:
        """The spec name of each node left flat (outside every instance), by node index:
        Caffe's, made valid. Names that are valid as they are come first, so that a made-valid
        one ('conv/1') never takes the name of a layer that has it already ('conv_1')."""
        inside = {i for instance in folded.values() for i in instance.node_indices()}
        wanted = {
            index: node.name if node.inputs else node.outputs[0]  # an input is named by its tensor
            for index, node in enumerate(self.graph.nodes)
            if index not in inside
        }
        flat_names: dict[int, str] = {}
        for already_valid in (True, False):
            for index, name in wanted.items():
                if (valid_name(name) == name) == already_valid:
                    flat_names[index] = _unique(valid_name(name), used)
        return flat_names

    def tensor_names(
        self, flat_names: Mapping[int, str], folded: Mapping[int, _Instance], used: set[str]
    ) -> tuple[dict[str, str], dict[int, list[str]]]:
        """How the spec refers to each tensor a later statement reads, and the ``top`` names of
        the flat layers whose outputs are not the default ``NAME.0``, ``NAME.1``... Records the
        spec names of the layers inside instances (``INSTANCE.LAYER``)."""
        refs: dict[str, str] = {}
        tops: dict[int, list[str]] = {}
        for index, name in sorted(flat_names.items()):
            node = self.graph.nodes[index]
            if len(node.outputs) == 1:
                refs[node.outputs[0]] = name
                continue
            defaults = [f"{name}.{i}" for i in range(len(node.outputs))]
            wanted = [valid_name(t) for t in node.outputs]
            names = defaults if wanted == defaults else [_unique(w, used) for w in wanted]
            if names != defaults:
                tops[index] = names
            refs.update(zip(node.outputs, names, strict=True))
        for instance in folded.values():
            unit = instance.unit
            refs[self.graph.nodes[unit.end].outputs[0]] = instance.name
            for offset, local in enumerate(instance.template.local_names):
                self.node_names[self.graph.nodes[unit.start + offset].name] = f"{instance.name}.{local}"
        return refs, tops

    def statements(
        self,
        folded: Mapping[int, _Instance],
        flat_names: Mapping[int, str],
        refs: Mapping[str, str],
        tops: Mapping[int, list[str]],
    ) -> tuple[list[str], list[str | _Instance]]:
        """The inputs declared before the first layer, and the body in node order: an instance
        for each folded block, a line for each layer or input left flat."""
        inputs: list[str] = []
        body: list[str | _Instance] = []
        nodes = self.graph.nodes
        index = 0
        while index < len(nodes):
            node = nodes[index]
            previous = nodes[index - 1].outputs[0] if index > 0 else None
            if index in folded:
                instance = folded[index]
                if instance.unit.entry != previous:
                    instance.bottom = refs[instance.unit.entry]
                body.append(instance)
                index = instance.unit.end + 1
                continue
            name = flat_names[index]
            self.node_names[node.name] = name
            if node.inputs:
                body.append(_flat_layer_line(node, name, previous, refs, tops.get(index)))
            else:
                (body if body else inputs).append(_input_line(node, name))
            index += 1
        return inputs, body

    @property
    def source_kind(self) -> str:
        """Whose layer names the spec keeps: Caffe's, or ONNX's (its nodes' scopes)."""
        return "ONNX" if dict(self.graph.metadata).get("format") == "onnx" else "Caffe"

    def header(self, folded: Mapping[int, _Instance]) -> list[str]:
        origin = f" from {self.origin}" if self.origin else ""
        lines = [
            f"# Converted{origin} by netspec {__version__} (netspec convert).",
            f"# Layer names are {self.source_kind}'s, made valid .net names where needed.",
            *(f"# note: {note}" for note in self.notes),
        ]
        if folded:
            node = self.graph.nodes[folded[min(folded)].unit.start]
            example = self.node_names[node.name]
            lines.append(
                "# A layer in a template instance is named INSTANCE.LAYER: "
                f"{example} is {self.source_kind}'s {node.name}."
            )
        return lines

    def template_definitions(
        self, templates: Sequence[_Template], folded: Mapping[int, _Instance]
    ) -> list[str]:
        """Each template's definition, after a comment that names its instances."""
        lines = []
        for template in templates:
            instances = sorted((i for i in folded.values() if i.template is template), key=lambda i: i.index)
            listed = [i.name for i in instances]
            if len(listed) > 4:
                listed = [*listed[:2], "...", listed[-1]]
            lines.append("")
            lines.append(
                f"# {len(instances)} instances: {', '.join(listed)}; "
                f"the {self.source_kind} names noted are {instances[0].name}'s"
            )
            lines.append(f"template {template.name}({', '.join(template.params)}) {{")
            lines.extend(template.lines)
            lines.append("}")
        if templates:
            lines.append("")
        return lines


def _instances_by_start(templates: Sequence[_Template]) -> dict[int, _Instance]:
    """Every instance of ``templates`` (not yet named), by the index of its first node."""
    return {
        unit.start: _Instance(template, index)
        for template in templates
        for index, unit in enumerate(template.units)
    }


def _name_instances(folded: Mapping[int, _Instance], used: set[str]) -> None:
    """Name the instances in node order: never a name already used, nor one that a flat
    layer's name starts with (``res2a`` where ``res2a.x`` is flat)."""
    flat_prefixes = {n.split(".")[0] for n in used}
    for start in sorted(folded):
        instance = folded[start]
        wanted = instance.template.instance_names[instance.index]
        instance.name = _unique(wanted, used, lambda n: n in flat_prefixes)


def _input_line(node: Node, name: str) -> str:
    return f"input {name}: {render_value(node.layer.params.shape, Shape())}"


def _flat_layer_line(
    node: Node, name: str, previous: str | None, refs: Mapping[str, str], tops: Sequence[str] | None
) -> str:
    """A layer left flat: its bottoms unless it reads the previous layer's output, its tops
    where they are not the default names, the parameters that differ from their defaults and
    its arrays' settings; the source's name in a comment where the spec's differs."""
    fields: list[tuple[str, str]] = []
    if node.inputs != (previous,):
        fields.append(_bottom_field([refs[t] for t in node.inputs]))
    if tops is not None:
        fields.append(("top", "[" + ", ".join(tops) + "]"))
    for spec_field in _fields_of(node):
        value = getattr(node.layer.params, spec_field.name)
        if _differs_from_default(spec_field, value):
            fields.append(_param_field(node, spec_field, value))
    fields.extend(_array_settings_fields(node))
    comment = node.name if name != node.name else ""
    return _layer_line(node.type, name, fields, comment)


def _instance_line(instance: _Instance, name: str | None = None) -> str:
    template = instance.template
    arguments = template.arguments[instance.index]
    line = f"{template.name} {name or instance.name}"
    if template.params:
        line += "(" + ", ".join(arguments) + ")"
    if instance.bottom is not None:
        line += f" {{ bottom: {instance.bottom} }}"
    return line


def _name_pattern(names: Sequence[str]) -> tuple[str, str, list[int] | list[str]] | None:
    """``prefix``, ``suffix`` and the varying parts of ``names`` (res2b, res2c: res2, '', [b, c];
    conv2_1 … conv2_6: conv2_, '', [1 … 6]), if each name is prefix + part + suffix."""
    head = _common_prefix(list(names))
    tail = _common_suffix([n[len(head) :] for n in names])
    parts = [n[len(head) : len(n) - len(tail)] for n in names]
    if not all(parts):
        return None
    if all(p.isdigit() and str(int(p)) == p for p in parts):
        return head, tail, [int(p) for p in parts]
    if head and all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
        return head, tail, parts
    return None


def _with_loops(body: Sequence[str | _Instance]) -> list[str]:
    """The statements, with runs of chained instances of one template with equal arguments
    written as one loop over the part of their names that differs: ``repeat`` for 0, 1, 2...,
    ``for`` over a range or a list otherwise."""
    lines: list[str] = []
    index = 0
    while index < len(body):
        item = body[index]
        if not isinstance(item, _Instance):
            lines.append(item)
            index += 1
            continue
        run = [item]
        for following in body[index + 1 :] if item.bottom is None else ():
            if not (
                isinstance(following, _Instance)
                and following.template is item.template
                and following.bottom is None
                and following.template.arguments[following.index] == item.template.arguments[item.index]
            ):
                break
            run.append(following)
        pattern = _name_pattern([i.name for i in run]) if len(run) >= 2 else None
        if pattern is None:
            lines.append(_instance_line(item))
            index += 1
            continue
        head, tail, parts = pattern
        arguments = item.template.arguments[item.index]
        if isinstance(parts[0], int):
            numbers = [int(p) for p in parts]
            consecutive = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            variable = next(v for v in ("i", "j", "k", "n", "index") if v not in arguments)
            if consecutive and numbers[0] == 0:
                loop = f"repeat {len(numbers)} as {variable}"
            elif consecutive:
                loop = f"for {variable} in range({numbers[0]}, {numbers[-1] + 1})"
            else:
                loop = f"for {variable} in {render_value(tuple(numbers))}"
        else:
            variable = next(v for v in ("s", "t", "u", "part") if v not in arguments)
            loop = f"for {variable} in [" + ", ".join(_string_text(str(p)) for p in parts) + "]"
        pattern_name = f"{head}{{{variable}}}{tail}"
        lines.append(f"{loop} {{ {_instance_line(item, pattern_name)} }}")
        index += len(run)
    return lines


def _write(graph: Graph, origin: str | None, fold: bool, notes: Sequence[str] = ()) -> Conversion:
    return _Writer(graph, origin, fold, list(notes)).write()


# ---------------------------------------------------------------- checking the result


def _mismatch(graph: Graph, text: str) -> str | None:
    """Why ``text`` does not elaborate to ``graph`` (node for node), or None if it does."""
    from netspec.elaborate import elaborate

    try:
        converted = elaborate(SourceFile("<converted>", text))
    except NetspecError as exc:
        return exc.render()
    if len(converted.nodes) != len(graph.nodes):
        return f"{len(converted.nodes)} layers instead of {len(graph.nodes)}"
    tensors: dict[str, str] = {}
    for original, written in zip(graph.nodes, converted.nodes, strict=True):
        if original.type != written.type or original.layer.params != written.layer.params:
            return f"layer {written.name} differs from {original.name}"
        if len(original.outputs) != len(written.outputs):
            return f"layer {written.name} has {len(written.outputs)} outputs, not {len(original.outputs)}"
        if tuple(tensors.get(t) for t in original.inputs) != written.inputs:
            return f"layer {written.name} reads {list(written.inputs)}, not the tensors of {original.name}"
        tensors.update(zip(original.outputs, written.outputs, strict=True))
    if tuple(tensors.get(t) for t in graph.outputs) != converted.outputs:
        return f"the outputs are {list(converted.outputs)}"
    return None
