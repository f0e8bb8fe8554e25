"""AST to Graph: constants, includes, templates, repetition, conditions, implicit chaining and
scoped names. The result is a flat list of nodes in execution order.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netspec import ast
from netspec.collector import cycle_collector_paused
from netspec.diagnostics import NetspecError, SourceFile, SourceSpan, TraceFrame, did_you_mean, error
from netspec.expr import (
    Budget,
    Lookup,
    Symbol,
    TensorRef,
    Value,
    describe,
    evaluate,
    interpolate,
    make_list,
    size,
    truthy,
)
from netspec.graph import ArraySetting, Graph, Node, array_settings
from netspec.layers import LAYER_TYPES, InputLayer
from netspec.layers.base import Layer, Message, ParamValue, RawParam, build_layer
from netspec.limits import (
    DEFAULT_INCLUDE_RULES,
    DEFAULT_LIMITS,
    MAX_SOURCE_BYTES,
    IncludeRules,
    Limits,
    count_tokens,
)
from netspec.parse import parse_source
from netspec.zoo import zoo_folder, zoo_names

HEADER_KEYS = ("name", "output")


@dataclass(frozen=True)
class _Template:
    """A template definition, as the elaborator keeps it."""

    definition: ast.TemplateDef


@dataclass(frozen=True)
class _Context:
    """Where elaboration stands: the scope prefix, local bindings and instantiation trace."""

    scope: str = ""
    scopes: tuple[str, ...] = ("",)
    local_values: Mapping[str, Value] = field(default_factory=dict)
    trace: tuple[TraceFrame, ...] = ()
    loop_bindings: tuple[tuple[str, Value], ...] = ()
    template_input: str | None = None

    def bind(self, name: str, value: Value) -> _Context:
        return self._with({**self.local_values, name: value}, self.loop_bindings)

    def enter_loop(self, keyword: str, name: str | None, value: Value) -> _Context:
        if name is None:
            return self
        loop_bindings = (*self.loop_bindings, (f"{keyword} {name}", value))
        return self._with({**self.local_values, name: value}, loop_bindings)

    def _with(
        self, local_values: Mapping[str, Value], loop_bindings: tuple[tuple[str, Value], ...]
    ) -> _Context:
        # Built directly: dataclasses.replace looks the fields up on every call (a deep spec
        # binds thousands of loop variables and 'let's).
        return _Context(self.scope, self.scopes, local_values, self.trace, loop_bindings, self.template_input)


# The fields of a layer's ``param { }`` block (Caffe's ParamSpec).
_ARRAY_SETTING_KEYS = ("name", "lr_mult", "decay_mult")


class _Elaborator:
    def __init__(self, limits: Limits, includes: IncludeRules, root_folder: Path) -> None:
        self.limits = limits
        self.includes = includes
        # Folders an include may read from (unless includes.allow_any).
        # The zoo's folder is always last on the search path, so that any spec can include the
        # zoo's libraries (include "lib/resnet.net") and a copied zoo spec still finds them.
        self.search_path = (*includes.search_path, zoo_folder())
        self.include_roots = (root_folder.resolve(), *(p.resolve() for p in self.search_path))
        self.nodes: list[Node] = []
        # Each distinct layer built once (see build): a template's layers are one object each
        # in all its instances.
        self.layers: dict[tuple[object, ...], Layer[Any]] = {}
        self.tensors: dict[str, Node] = {}
        self.node_names: dict[str, Node] = {}
        # A template instance's scoped name, as a tensor name, means the instance's output.
        self.instance_outputs: dict[str, str] = {}
        self.templates: dict[str, _Template] = {}
        self.constants: dict[str, Value] = {}
        self.header: dict[str, tuple[Value, SourceSpan]] = {}
        self.include_stack: list[Path] = []
        self.included: set[Path] = set()
        self.anonymous_counts: dict[str, int] = {}
        self.previous: str | None = None
        self.expansions = 0
        # Every expression, field value, template argument and layer name draws from one budget.
        self.budget = Budget(limits.max_evaluation)
        self.source_bytes = 0
        self.source_tokens = 0

    # ------------------------------------------------------------------ lookups
    def lookup(self, context: _Context) -> Lookup:
        def resolve(name: str, span: SourceSpan) -> Value:
            if name in context.local_values:
                return context.local_values[name]
            if name in self.constants:
                return self.constants[name]
            return Symbol(name)

        return resolve

    def value(self, expr: ast.Expr, context: _Context) -> Value:
        return evaluate(expr, self.lookup(context), self.budget)

    def find_tensor(self, name: str, context: _Context) -> str | None:
        """The full name of tensor ``name`` seen from ``context``: innermost scope first; a
        template instance's name stands for its output tensor."""
        for scope in reversed(context.scopes):
            full = scope + name
            if full in self.tensors:
                return full
            if full in self.instance_outputs:
                return self.instance_outputs[full]
        return None

    def resolve_tensor(self, value: Value, span: SourceSpan, context: _Context) -> str:
        if isinstance(value, TensorRef):
            return value.name
        if isinstance(value, (Symbol, str)):
            name = value.name if isinstance(value, Symbol) else value
            found = self.find_tensor(name, context)
            if found is not None:
                return found
            hint = None
            if name == "in":
                hint = "'in' is a template's input; outside a template, name the tensor"
            else:
                known = [*self.tensors, *self.instance_outputs]
                local = [t[len(context.scope) :] for t in known if t.startswith(context.scope)]
                hint = did_you_mean(name, local) or did_you_mean(name, known)
            raise error(
                f"no tensor named '{name}' exists at this point", span, hint=hint, trace=context.trace
            )
        raise error(f"expected a tensor name, got {describe(value)}", span, trace=context.trace)

    def as_tensor_if_known(self, value: Value, context: _Context, span: SourceSpan | None = None) -> Value:
        """Template arguments that name existing tensors are resolved where they are written."""
        if isinstance(value, Symbol):
            found = self.find_tensor(value.name, context)
            if found is not None:
                return TensorRef(found)
        if isinstance(value, tuple):
            self.budget.charge(len(value), span)
            return make_list(tuple(self.as_tensor_if_known(v, context, span) for v in value))
        return value

    # ------------------------------------------------------------------ statements
    def first_visit(self, path: Path, span: SourceSpan | None) -> bool:
        """Whether the file at ``path`` (resolved) is still to be elaborated; an include cycle is
        an error. NOTE: a file is elaborated once however often it is included, so two
        libraries may both include a third (its templates would otherwise be defined twice)."""
        if path in self.include_stack:
            chain = " -> ".join(p.name for p in [*self.include_stack, path])
            raise error(
                f"include cycle: {chain}",
                span,
                hint="a file cannot include itself, directly or through the files it includes",
            )
        return path not in self.included

    def run_file(self, source: SourceFile, context: _Context, span: SourceSpan | None = None) -> None:
        path = Path(source.path).resolve()
        if not self.first_visit(path, span):
            return
        self.included.add(path)
        self.source_bytes += len(source.text)
        self.source_tokens += count_tokens(source.text)
        for used, limit, what in (
            (self.source_bytes, "max_source_bytes", "characters of text"),
            (self.source_tokens, "max_source_tokens", "tokens"),
        ):
            if used > getattr(self.limits, limit):
                raise error(
                    f"the spec and its includes hold more than {getattr(self.limits, limit):,} "
                    f"{what} in all ({limit})",
                    span,
                    hint=f"to allow it, raise the cap with --limit {limit}=VALUE",
                )
        self.include_stack.append(path)
        try:
            module = parse_source(source)
            self.run_body(module.statements, context, top_level=True)
        finally:
            self.include_stack.pop()

    def run_body(self, statements: tuple[ast.Stmt, ...], context: _Context, top_level: bool = False) -> None:
        for statement in statements:
            if isinstance(statement, ast.LetDecl):
                if statement.if_unset and (
                    statement.name in self.constants or statement.name in context.local_values
                ):
                    continue
                value = self.value(statement.value, context)
                if top_level:
                    self.constants[statement.name] = value
                else:
                    context = context.bind(statement.name, value)
            else:
                self.run_statement(statement, context)

    def run_statement(self, statement: ast.Stmt, context: _Context) -> None:
        if isinstance(statement, ast.LayerStmt):
            if statement.type_name in self.templates:
                self.instantiate(statement, context)
            else:
                self.add_layer(statement, context)
        elif isinstance(statement, ast.InputDecl):
            self.add_input(statement, context)
        elif isinstance(statement, ast.HeaderField):
            self.set_header(statement, context)
        elif isinstance(statement, ast.IncludeDecl):
            self.include(statement, context)
        elif isinstance(statement, ast.TemplateDef):
            self.define_template(statement)
        elif isinstance(statement, ast.FunctionDef):
            self.define_function(statement, context)
        elif isinstance(statement, ast.SetStmt):
            self.set_constant(statement, context)
        elif isinstance(statement, ast.IfStmt):
            for condition, body in statement.branches:
                if truthy(self.value(condition, context), condition.span):
                    self.run_body(body, context)
                    return
            self.run_body(statement.otherwise, context)
        elif isinstance(statement, ast.RepeatStmt):
            count = self.value(statement.count, context)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise error(
                    f"repeat needs a non-negative integer count, got {describe(count)}",
                    statement.count.span,
                    trace=context.trace,
                )
            self.loop(
                "repeat", statement.variable, range(count), statement.body, context, statement.count.span
            )
        elif isinstance(statement, ast.ForStmt):
            items = self.value(statement.iterable, context)
            if not isinstance(items, tuple):
                raise error(
                    f"for needs a list to iterate over, got {describe(items)}",
                    statement.iterable.span,
                    trace=context.trace,
                )
            self.loop("for", statement.variable, items, statement.body, context, statement.iterable.span)
        else:
            raise AssertionError(f"unknown statement {statement!r}")

    def set_constant(self, statement: ast.SetStmt, context: _Context) -> None:
        """``set NAME = expr``: the value carried to later statements and loop iterations."""
        name = statement.name
        if name in context.local_values:
            raise error(
                f"'{name}' is a local name here; set changes top-level constants only",
                statement.span,
                hint="rename the local binding, or keep the running value in a top-level 'let'",
                trace=context.trace,
            )
        if name not in self.constants:
            raise error(
                f"set needs a top-level constant '{name}' to change; define it first with 'let {name} = ...'",
                statement.span,
                hint=did_you_mean(name, self.constants),
                trace=context.trace,
            )
        self.constants[name] = self.value(statement.value, context)

    def define_function(self, statement: ast.FunctionDef, context: _Context) -> None:
        """``def f(params) = expr``: a top-level value that calls compute (netspec.functions)."""
        from netspec.expr import FUNCTIONS
        from netspec.functions import UserFunction

        if statement.name in FUNCTIONS:
            raise error(f"'{statement.name}' is a built-in function and cannot be redefined", statement.span)
        if statement.name in self.constants:
            raise error(
                f"'{statement.name}' is already defined",
                statement.span,
                hint="give the function another name",
            )
        names = [p.name for p in statement.params]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise error(f"function '{statement.name}' has two parameters named '{duplicate}'", statement.span)
        defaults = tuple(
            None if p.default is None else self.value(p.default, context) for p in statement.params
        )
        self.constants[statement.name] = UserFunction(statement, defaults, self.constants)  # type: ignore[assignment]  # a function is a constant no expression computes

    def loop(
        self,
        keyword: str,
        variable: str | None,
        values: Sequence[Value],
        body: tuple[ast.Stmt, ...],
        context: _Context,
        span: SourceSpan,
    ) -> None:
        # NOTE: the count is checked before anything is built: 'repeat 2**31' is a range whose
        # list would take all the memory there is.
        if len(values) > self.limits.max_repeat:
            raise error(
                f"a loop of {len(values)} iterations exceeds the limit of {self.limits.max_repeat}",
                span,
                trace=context.trace,
                hint="to allow it, raise the cap with --limit max_repeat=VALUE",
            )
        self.count_expansions(len(values), span, context)
        for value in values:
            self.run_body(body, context.enter_loop(keyword, variable, value))

    def count_expansions(self, count: int, span: SourceSpan, context: _Context) -> None:
        """Count loop iterations and template instances against Limits.max_expansions: nested
        loops and templates that instantiate themselves twice multiply, with or without layers."""
        self.expansions += count
        if self.expansions > self.limits.max_expansions:
            raise error(
                f"the spec expands to more than {self.limits.max_expansions} loop iterations and "
                "template instances in all",
                span,
                trace=context.trace,
                hint="to allow it, raise the cap with --limit max_expansions=VALUE",
            )

    def set_header(self, statement: ast.HeaderField, context: _Context) -> None:
        if statement.key not in HEADER_KEYS:
            hint = did_you_mean(statement.key, HEADER_KEYS)
            raise error(
                f"unknown setting '{statement.key}'",
                statement.span,
                hint=hint or "a file may set 'name' and 'output'; layers are written 'Type name { ... }'",
            )
        self.header[statement.key] = (self.value(statement.value, context), statement.value.span)

    def include(self, statement: ast.IncludeDecl, context: _Context) -> None:
        if len(self.include_stack) >= self.limits.max_include_depth:
            raise error(
                f"includes nest more than {self.limits.max_include_depth} files deep",
                statement.span,
                hint="if the nesting is intended, raise the cap with --limit max_include_depth=VALUE",
            )
        shown, real = self.include_target(statement)
        if not self.first_visit(real, statement.span):
            return  # elaborated already: not read again
        try:
            # The same reader as the main file's: regular files, the size cap, UTF-8 errors
            # pointing at the bad byte. NOTE: the file opened is the resolved path that was
            # checked, and the opened file's own location is checked again: a path read in
            # another form ('lib/link/../x.net' resolved one way, normalized another) could
            # otherwise reach outside the allowed folders.
            roots = None if self.includes.allow_any else self.include_roots
            source = read_source(real, self.limits, shown=shown, inside=roots)
        except NetspecError as exc:
            (problem,) = exc.diagnostics
            if problem.span is not None:  # a place in the included file (a byte that is not UTF-8)
                note = f"included at {statement.span.location}"
                raise NetspecError(replace(problem, notes=(*problem.notes, note))) from None
            raise error(
                f"cannot read included file '{statement.path}': {problem.message}", statement.span
            ) from None
        self.run_file(source, context, statement.span)

    def include_target(self, statement: ast.IncludeDecl) -> tuple[str, Path]:
        """The file an include names, as shown in messages and resolved (every symlink
        followed): relative to the including file, then to each folder of the search path;
        refused when it lies outside the allowed folders (IncludeRules)."""
        written = Path(statement.path)
        allow_any = self.includes.allow_any
        if written.is_absolute() and not allow_any:
            raise error(
                f"include of the absolute path '{statement.path}' is not allowed",
                statement.span,
                hint="include files relative to the including file or an --include-path folder "
                "(--allow-any-include lifts this rule)",
            )
        bases = (Path(statement.span.source.path).parent, *self.search_path)
        candidates = [written] if written.is_absolute() else [base / written for base in bases]
        found = next((c for c in candidates if _is_file(c)), None)
        if found is None:
            places = [str(c) for c in candidates]
            if not written.is_absolute():  # the last place is the zoo's folder, wherever installed
                places[-1] = "in netspec's zoo"
            looked = ", ".join(places[:-1]) + (", and " if len(places) > 1 else "") + places[-1]
            raise error(f"cannot find included file '{statement.path}' (looked for {looked})", statement.span)
        real = found.resolve()
        if not allow_any and not any(real.is_relative_to(root) for root in self.include_roots):
            raise error(
                f"include '{statement.path}' resolves to {real}, outside the spec's folder "
                f"{self.include_roots[0]}",
                statement.span,
                hint="add its folder with --include-path DIR (or lift the rule with --allow-any-include)",
            )
        return os.path.normpath(str(found)), real

    def define_template(self, statement: ast.TemplateDef) -> None:
        if statement.name in self.templates:
            earlier = self.templates[statement.name].definition.span
            raise error(
                f"template '{statement.name}' is already defined at {earlier.location}", statement.span
            )
        if statement.name in LAYER_TYPES:
            raise error(f"template '{statement.name}' would hide the layer type of that name", statement.span)
        seen: set[str] = set()
        for parameter in statement.params:
            if parameter.name in seen:
                raise error(
                    f"template '{statement.name}' has two parameters named '{parameter.name}'", parameter.span
                )
            seen.add(parameter.name)
        self.templates[statement.name] = _Template(statement)

    # ------------------------------------------------------------------ nodes
    def add_node(self, node: Node, span: SourceSpan, context: _Context) -> None:
        for tensor in (node.name, *node.outputs):
            if tensor in self.node_names and tensor not in self.tensors:
                earlier = self.node_names[tensor]
                where = f" at {earlier.span.location}" if earlier.span else ""
                raise error(
                    f"duplicate name '{tensor}': a layer of that name is already defined{where}",
                    span,
                    trace=context.trace,
                    hint="every layer needs a unique name in its scope",
                )
        for tensor in node.outputs:
            if tensor in self.tensors:
                earlier = self.tensors[tensor]
                where = f" at {earlier.span.location}" if earlier.span else ""
                raise error(
                    f"duplicate name '{tensor}': a layer of that name is already defined{where}",
                    span,
                    trace=context.trace,
                    hint="every layer needs a unique name in its scope",
                )
            if tensor in self.instance_outputs:
                raise error(
                    f"duplicate name '{tensor}': a template instance of that name is already defined",
                    span,
                    trace=context.trace,
                )
        if len(self.nodes) >= self.limits.max_layers:
            raise error(
                f"the network exceeds the limit of {self.limits.max_layers} layers",
                span,
                trace=context.trace,
                hint="to allow it, raise the cap with --limit max_layers=VALUE",
            )
        self.nodes.append(node)
        self.node_names[node.name] = node
        for tensor in node.outputs:
            self.tensors[tensor] = node
        self.previous = node.outputs[0]

    def add_input(self, statement: ast.InputDecl, context: _Context) -> None:
        shape = self.value(statement.shape, context)
        name_span = SourceSpan(
            statement.span.source,
            statement.span.line,
            statement.span.column,
            statement.span.line,
            statement.span.column + 6 + len(statement.name),
        )
        layer = build_layer(
            InputLayer, {"shape": RawParam(shape, value_span=statement.shape.span)}, statement.span
        )
        node = Node(
            context.scope + statement.name,
            layer,
            (),
            (context.scope + statement.name,),
            name_span,
            context.trace,
        )
        self.add_node(node, name_span, context)

    def layer_name(self, statement: ast.LayerStmt, context: _Context) -> str:
        if statement.name is None:
            # relu1, relu2, ... per type and scope, skipping names the spec already uses.
            base = statement.type_name.lower()
            count = self.anonymous_counts.get(context.scope + base, 0) + 1
            while f"{context.scope}{base}{count}" in self.tensors:
                count += 1
            self.anonymous_counts[context.scope + base] = count
            return f"{base}{count}"
        if statement.name.is_plain:
            return statement.name.text
        return interpolate(statement.name, self.lookup(context), self.budget)

    def header_span(self, statement: ast.LayerStmt) -> SourceSpan:
        end = statement.name.span if statement.name else statement.type_span
        return SourceSpan(
            statement.span.source,
            statement.type_span.line,
            statement.type_span.column,
            end.end_line,
            end.end_column,
        )

    def collect_fields(self, fields: tuple[ast.Field, ...], context: _Context) -> dict[str, RawParam]:
        """Evaluate a layer's fields; a field written more than once (Caffe's repeated
        ``bottom: "a" bottom: "b"``) becomes the list of its values."""
        written: dict[str, list[tuple[ParamValue, ast.Field]]] = {}
        for item in self.flatten_fields(fields, context):
            if isinstance(item, ast.ValueField):
                value: ParamValue = self.value(item.value, context)
                # The layer's schema walks the value: a constant list named by many layers
                # costs each of them.
                self.budget.charge(size(value), item.value.span)
            else:  # a block as a value (weight_filler { type: "msra" }); its layer's schema checks it
                value = Message(tuple(self.collect_fields(item.fields, context).items()))
            written.setdefault(item.key, []).append((value, item))
        raw: dict[str, RawParam] = {}
        for key, occurrences in written.items():
            first = occurrences[0][1]
            value = occurrences[0][0] if len(occurrences) == 1 else tuple(v for v, _ in occurrences)
            value_span = first.value.span if isinstance(first, ast.ValueField) else first.span
            raw[key] = RawParam(value, first.key_span, value_span)
        return raw

    def flatten_fields(self, fields: tuple[ast.Field, ...], context: _Context) -> list[ast.Field]:
        """The fields with Caffe-style ``*_param`` blocks opened; other blocks stay blocks."""
        flat: list[ast.Field] = []
        for item in fields:
            if isinstance(item, ast.BlockField) and item.key.endswith("_param"):
                flat.extend(self.flatten_fields(item.fields, context))
            else:
                flat.append(item)
        return flat

    def inputs_from(
        self, raw: dict[str, RawParam], fields: tuple[ast.Field, ...], context: _Context, span: SourceSpan
    ) -> tuple[str, ...]:
        given = raw.pop("bottom", None)
        if given is None:
            if self.previous is None or (
                context.template_input is not None and self.previous not in self.tensors
            ):
                raise error(
                    "this layer has no input: nothing precedes it",
                    span,
                    hint="declare an input first ('input data: [N, 3, 224, 224]') or set 'bottom:'",
                    trace=context.trace,
                )
            return (self.previous,)
        return tuple(
            self.resolve_tensor(value, where, context) for value, where in self.bottom_values(fields, context)
        )

    def bottom_values(
        self, fields: tuple[ast.Field, ...], context: _Context
    ) -> list[tuple[Value, SourceSpan]]:
        """Each tensor named in 'bottom:' fields, with where it is written: the items of a list
        one by one, so that a diagnostic points at the one at fault."""
        found: list[tuple[Value, SourceSpan]] = []
        for item in self.flatten_fields(fields, context):
            if item.key != "bottom" or not isinstance(item, ast.ValueField):
                continue
            expressions = item.value.items if isinstance(item.value, ast.ListExpr) else (item.value,)
            for expression in expressions:
                value = self.value(expression, context)
                found.extend((v, expression.span) for v in (value if isinstance(value, tuple) else (value,)))
        return found

    def add_layer(self, statement: ast.LayerStmt, context: _Context) -> None:
        layer_type = LAYER_TYPES.get(statement.type_name)
        if layer_type is None:
            known = [*LAYER_TYPES, *self.templates]
            hint = did_you_mean(statement.type_name, known)
            message = f"unknown layer type or template '{statement.type_name}'"
            if hint:
                message += f"; {hint}"
            raise error(
                message,
                statement.type_span,
                trace=context.trace,
                hint=None if hint else "see docs/language.md for the layer types",
            )
        if statement.args is not None:
            raise error(
                f"{statement.type_name} is a layer type, not a template; its parameters go inside '{{ }}'",
                statement.type_span,
                trace=context.trace,
            )
        name = context.scope + self.layer_name(statement, context)
        span = self.header_span(statement)
        # Scoped names grow with nesting: their characters are paid for, so that names stay
        # linear in the budget.
        self.budget.charge(len(name), span)
        raw = self.collect_fields(statement.fields, context)
        chained = "bottom" not in raw
        inputs = () if layer_type is InputLayer else self.inputs_from(raw, statement.fields, context, span)
        if not layer_type.arity.accepts(len(inputs)):
            hint = (
                (
                    "without 'bottom:' a layer reads only the previous layer's output; list its "
                    "inputs with 'bottom: [a, b]'"
                )
                if chained
                else None
            )
            raise error(
                f"{layer_type.type_name} takes {layer_type.arity.describe()}, got {len(inputs)}",
                statement.span,
                hint=hint,
                trace=context.trace,
            )
        tops = self.output_names(raw, context)
        array_names, frozen_arrays = self.array_settings(raw.pop("param", None), context)
        try:
            layer = self.build(layer_type, raw, span, name, len(tops) if tops else None)
        except NetspecError as exc:
            raise exc.with_trace(context.trace) from None
        if not tops:
            count = layer.output_count
            tops = (name,) if count == 1 else tuple(f"{name}.{i}" for i in range(count))
        param_spans = tuple(
            (k, where) for k, v in raw.items() if (where := v.value_span or v.key_span) is not None
        )
        node = Node(name, layer, inputs, tops, span, context.trace, param_spans, array_names, frozen_arrays)
        self.add_node(node, span, context)

    def build(
        self,
        layer_type: type[Layer[Any]],
        raw: dict[str, RawParam],
        span: SourceSpan,
        name: str,
        output_count: int | None,
    ) -> Layer[Any]:
        """The layer of ``raw``, built once per distinct type, parameter values and output count:
        the layers after elaboration are immutable, and the stages that follow compute a layer's
        shapes, arrays and counts once per layer object and input types (a 200-block stage of
        ResNet-1202 has 7 distinct layers, not 1,400)."""
        key = _layer_key(layer_type, raw, output_count)
        try:
            layer = self.layers.get(key) if key is not None else None
        except TypeError:  # a value that cannot be a key (a spec function given as a parameter)
            key = layer = None
        if layer is None:
            layer = build_layer(layer_type, raw, span, name, output_count=output_count)
            if key is not None:
                self.layers[key] = layer
        return layer

    def array_settings(
        self, given: RawParam | None, context: _Context
    ) -> tuple[tuple[str | None, ...], tuple[int, ...]]:
        """Caffe's ``param { name: "w"  lr_mult: 0 }`` blocks, one per stored array in the
        layer's order (weight, then bias...): a ``name`` shares the array with every layer that
        names it (stored and counted once), ``lr_mult: 0`` marks it frozen; ``decay_mult`` is
        read and has no effect here. Returns the shared names and the frozen indices."""
        if given is None:
            return (), ()
        entries = given.value if isinstance(given.value, tuple) else (given.value,)
        settings = []
        for entry in entries:
            if not isinstance(entry, Message):
                raise error(
                    "'param' is a block: param { name: \"shared\"  lr_mult: 0 }",
                    given.value_span or given.key_span,
                    trace=context.trace,
                )
            setting = ArraySetting()
            for key, value in entry.fields:
                where = value.value_span or value.key_span
                if key == "name" and isinstance(value.value, str | Symbol):
                    setting = replace(setting, name=str(value.value))
                elif key == "lr_mult" and isinstance(value.value, int | float):
                    setting = replace(setting, lr_mult=value.value)
                elif key == "decay_mult" and isinstance(value.value, int | float):
                    pass
                elif key in _ARRAY_SETTING_KEYS:
                    expected = "a name" if key == "name" else "a number"
                    raise error(f"param field '{key}': expected {expected}", where, trace=context.trace)
                else:
                    hint = did_you_mean(key, _ARRAY_SETTING_KEYS)
                    message = f"a param block has no field '{key}'" + (f"; {hint}" if hint else "")
                    raise error(message, value.key_span or where, trace=context.trace)
            settings.append(setting)
        return array_settings(settings)

    def output_names(self, raw: dict[str, RawParam], context: _Context) -> tuple[str, ...]:
        """The tensors a layer's ``top:`` names (scoped like layer names), or () without one."""
        given = raw.pop("top", None)
        if given is None:
            return ()
        values = given.value if isinstance(given.value, tuple) else (given.value,)
        names = []
        for value in values:
            if isinstance(value, TensorRef) or not isinstance(value, (Symbol, str)):
                raise error(
                    f"'top:' names new tensors; expected names, got {describe(value)}",
                    given.value_span,
                    trace=context.trace,
                )
            name = context.scope + str(value)
            if name in names:
                raise error(
                    f"'top:' names the tensor '{value}' twice; a layer's outputs need distinct names",
                    given.value_span,
                    trace=context.trace,
                )
            names.append(name)
        return tuple(names)

    def instantiate(self, statement: ast.LayerStmt, context: _Context) -> None:
        template = self.templates[statement.type_name].definition
        if len(context.trace) >= self.limits.max_template_depth:
            raise error(
                f"templates nest more than {self.limits.max_template_depth} deep "
                f"(is '{template.name}' recursive?)",
                statement.span,
                trace=context.trace,
                hint="if the nesting is intended, raise the cap with --limit max_template_depth=VALUE",
            )
        if statement.name is None:
            raise error(
                f"an instance of template '{template.name}' needs a name", statement.span, trace=context.trace
            )
        self.count_expansions(1, statement.span, context)
        local = self.layer_name(statement, context)
        call_span = self.header_span(statement)
        bindings = self.bind_arguments(template, statement, context)
        raw = self.collect_fields(statement.fields, context)
        unknown = [k for k in raw if k != "bottom"]
        if unknown:
            raise error(
                f"a template instance takes only 'bottom' in '{{ }}', not '{unknown[0]}'",
                raw[unknown[0]].key_span or statement.span,
                trace=context.trace,
                hint=f"pass it as an argument: {template.name} {local}({unknown[0]}=...)",
            )
        inputs = self.inputs_from(raw, statement.fields, context, call_span)
        if len(inputs) != 1:
            raise error(
                f"a template instance takes one input tensor, got {len(inputs)}",
                statement.span,
                trace=context.trace,
            )
        scope = context.scope + local + "."
        self.budget.charge(len(scope), call_span)
        frame = TraceFrame(template.name, call_span, scope[:-1], context.loop_bindings)
        inner = _Context(
            scope=scope,
            scopes=(*context.scopes, scope),
            local_values={"scope": scope[:-1], **bindings, "in": TensorRef(inputs[0])},
            trace=(*context.trace, frame),
            template_input=inputs[0],
        )
        if scope[:-1] in self.tensors or scope[:-1] in self.instance_outputs:
            raise error(
                f"duplicate name '{scope[:-1]}': a layer or instance of that name is already defined",
                call_span,
                trace=context.trace,
            )
        self.previous = inputs[0]
        self.run_body(template.body, inner)
        self.instance_outputs[scope[:-1]] = self.previous

    def bind_arguments(
        self, template: ast.TemplateDef, statement: ast.LayerStmt, context: _Context
    ) -> dict[str, Value]:
        params = [p.name for p in template.params]
        given = statement.args or ()
        bindings: dict[str, Value] = {}
        positional = [a for a in given if a.keyword is None]
        if any(a.keyword is None for a in given[len(positional) :]):
            bad = next(a for a in given[len(positional) :] if a.keyword is None)
            raise error("a positional argument follows a keyword argument", bad.span, trace=context.trace)
        if len(positional) > len(params):
            raise error(
                f"template '{template.name}' takes {len(params)} argument"
                f"{'s' if len(params) != 1 else ''}, got {len(given)}",
                positional[len(params)].span,
                trace=context.trace,
                hint=f"{template.name}({', '.join(params)})",
            )
        for parameter, argument in zip(template.params, positional, strict=False):
            bindings[parameter.name] = self.as_tensor_if_known(
                self.value(argument.value, context), context, argument.span
            )
        for argument in given[len(positional) :]:
            assert argument.keyword is not None
            if argument.keyword not in params:
                hint = did_you_mean(argument.keyword, params)
                raise error(
                    f"template '{template.name}' has no parameter '{argument.keyword}'",
                    argument.span,
                    trace=context.trace,
                    hint=hint or f"{template.name}({', '.join(params)})",
                )
            if argument.keyword in bindings:
                raise error(
                    f"argument '{argument.keyword}' is given twice", argument.span, trace=context.trace
                )
            bindings[argument.keyword] = self.as_tensor_if_known(
                self.value(argument.value, context), context, argument.span
            )
        for parameter in template.params:
            if parameter.name in bindings:
                continue
            if parameter.default is None:
                raise error(
                    f"template '{template.name}' needs argument '{parameter.name}'",
                    statement.span,
                    trace=context.trace,
                    hint=f"{template.name}({', '.join(params)})",
                )
            # Defaults may refer to earlier parameters: def f(c, mid = c // 4).
            default_context = _Context(local_values=bindings)
            bindings[parameter.name] = self.value(parameter.default, default_context)
        return bindings

    # ------------------------------------------------------------------ result
    def graph(self, root: SourceFile) -> Graph:
        if not self.nodes:
            raise error(
                "the spec defines no layers",
                SourceSpan(root, 1, 1, 1, 1),
                hint="start with an input: 'input data: [N, 3, 224, 224]'",
            )
        name_value = self.header.get("name", (Path(root.path).stem, None))[0]
        name = name_value if isinstance(name_value, str) else str(name_value)
        if "output" in self.header:
            value, span = self.header["output"]
            values = value if isinstance(value, tuple) else (value,)
            outputs = tuple(self.resolve_tensor(v, span, _Context()) for v in values)
        else:
            consumed = {t for node in self.nodes for t in node.inputs}
            outputs = tuple(
                t for node in self.nodes if node.inputs for t in node.outputs if t not in consumed
            )
        return Graph(
            name=name, nodes=tuple(self.nodes), outputs=outputs, source_path=root.path, source_text=root.text
        )


def _layer_key(
    layer_type: type[Layer[Any]], raw: Mapping[str, RawParam], output_count: int | None
) -> tuple[object, ...] | None:
    """What a built layer depends on: its type, each parameter's value with its Python type (1,
    1.0 and true are equal as keys but convert differently; a float by its exact bits, so -0.0
    is not 0.0), and its output count. None for a block or a nested list value: such a layer is
    built each time."""
    items: list[tuple[object, ...]] = []
    for key, param in raw.items():
        value = param.value
        if isinstance(value, Message):
            return None
        if isinstance(value, tuple):
            if any(isinstance(item, tuple | Message) for item in value):
                return None
            exact = tuple(item.hex() if isinstance(item, float) else item for item in value)
            items.append((key, type(value), tuple(map(type, value)), exact))
        elif isinstance(value, float):
            items.append((key, float, value.hex()))
        else:
            items.append((key, type(value), value))
    return (layer_type, output_count, tuple(items))


def elaborate(
    source: SourceFile, limits: Limits = DEFAULT_LIMITS, includes: IncludeRules = DEFAULT_INCLUDE_RULES
) -> Graph:
    """Parse and elaborate a .net source into a Graph (raises NetspecError on any mistake)."""
    with cycle_collector_paused():
        elaborator = _Elaborator(limits, includes, Path(source.path).parent)
        elaborator.run_file(source, _Context())
        return elaborator.graph(source)


def load_spec(
    path: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    includes: IncludeRules = DEFAULT_INCLUDE_RULES,
) -> Graph:
    """Read and elaborate a spec file."""
    source = read_source(path, limits)
    return elaborate(source, limits, includes)


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; a name the system refuses (too long) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_source(
    path: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    *,
    shown: str | None = None,
    inside: Sequence[Path] | None = None,
) -> SourceFile:
    """A spec or Caffe file as text: a regular file within the caps, decoded by decode_source.
    ``shown`` is the path messages name (default ``path``); with ``inside``, the file opened
    must lie in one of those folders."""
    shown = str(path) if shown is None else shown
    cap = min(MAX_SOURCE_BYTES, limits.max_source_bytes)
    try:
        # NOTE: opened without blocking and checked after opening: a FIFO would wait for a
        # writer, and a check before opening could look at another file than the one read.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"no such file: {shown}", hint=_zoo_hint(shown)) from None
    except OSError as exc:
        raise error(f"cannot read {shown}: {exc.strerror}") from None
    opened = os.fstat(descriptor)
    if not stat.S_ISREG(opened.st_mode):
        os.close(descriptor)
        raise error(f"{shown} is not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        if inside is not None and not _opened_inside(path, opened, inside):
            raise error(f"{shown} is outside the folders includes may read")
        if opened.st_size > cap:
            raise _source_too_large(shown, opened.st_size, cap)
        try:
            data = handle.read(cap + 1)
        except OSError as exc:
            raise error(f"cannot read {shown}: {exc.strerror}") from None
    return decode_source(data, shown, limits)


STDIN_NAME = "<stdin>"


def read_stdin(limits: Limits = DEFAULT_LIMITS) -> SourceFile:
    """A spec given on standard input (SPEC ``-``), with the checks of decode_source."""
    data = sys.stdin.buffer.read(min(MAX_SOURCE_BYTES, limits.max_source_bytes) + 1)
    return decode_source(data, STDIN_NAME, limits)


def decode_source(data: bytes, path: str, limits: Limits = DEFAULT_LIMITS) -> SourceFile:
    """Checked bytes of a spec as its text: within the size and token caps, UTF-8 (an error
    points at the first bad byte), a byte order mark dropped, CR LF and CR line ends as LF."""
    cap = min(MAX_SOURCE_BYTES, limits.max_source_bytes)
    if len(data) > cap:
        raise _source_too_large(path, len(data), cap)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        source = SourceFile(path, data.decode("utf-8", errors="replace"))
        span = SourceSpan(source, line, column, line, column + 1)
        raise error("the file is not valid UTF-8", span) from None
    if "\r" in text:
        # Windows (CRLF) and old Mac (CR) line ends become LF, so that every stage counts
        # lines as an editor shows them.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # NOTE: parsing costs by the token (a list literal packs one into every two bytes): this
    # bound, one regex pass, keeps the parse of any file to seconds.
    tokens = count_tokens(text)
    if tokens > limits.max_source_tokens:
        raise error(
            f"{path} holds about {tokens:,} tokens, more than the limit of {limits.max_source_tokens:,} "
            "for a spec (max_source_tokens)",
            hint="real specs are far smaller; to allow it, raise the cap with "
            "--limit max_source_tokens=VALUE",
        )
    return SourceFile(path, text)


def source_from_text(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> SourceFile:
    """A spec handed over as text (the web editor's) read as a file's bytes are: the same caps,
    byte order mark and line ends as :func:`decode_source`."""
    # NOTE: surrogatepass keeps a lone surrogate (JSON can carry one) as bytes that fail to
    # decode, so it is reported at its place as invalid UTF-8.
    return decode_source(text.encode("utf-8", "surrogatepass"), path, limits)


def _source_too_large(shown: str, size: int, cap: int) -> NetspecError:
    return error(
        f"{shown} is larger than {cap:,} bytes, the limit for a spec (max_source_bytes)",
        hint="real specs are far smaller; to allow it, raise the cap with --limit max_source_bytes=VALUE",
    )


def _opened_inside(path: str | os.PathLike[str], opened: os.stat_result, roots: Sequence[Path]) -> bool:
    """Whether the file opened from ``path`` (``opened`` is its fstat) lies in ``roots``: its
    resolved path is inside one and names that very file (same device and inode)."""
    real = Path(os.path.realpath(path))
    try:
        again = os.stat(real)
    except OSError:
        return False
    same = (again.st_dev, again.st_ino) == (opened.st_dev, opened.st_ino)
    return same and any(real.is_relative_to(root) for root in roots)


def _zoo_hint(path: str) -> str | None:
    """For a missing SPEC that looks like a model name: the zoo models it may mean."""
    if "/" in path or "\\" in path or "." in Path(path).name:
        return None
    close = did_you_mean(path, zoo_names())
    return f"{close[:-1]} (a zoo model)" if close else "netspec zoo lists the zoo's models"
