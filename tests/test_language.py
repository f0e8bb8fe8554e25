"""The .net language (DESIGN.md §3): every construct's meaning, checked on the elaborated graph
and its inferred shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate, load_spec
from netspec.graph import Graph, TensorType
from netspec.infer import infer_shapes
from netspec.typed import bind

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def build(text: str, path: str = "t.net") -> Graph:
    return elaborate(SourceFile(path, text))


def wiring(graph: Graph) -> dict[str, tuple[str, ...]]:
    """Every node by name, with the tensors it reads, in execution order."""
    return {node.name: node.inputs for node in graph.nodes}


def shapes(graph: Graph, **bindings: int) -> dict[str, tuple[int | str, ...]]:
    return {name: t.dims for name, t in infer_shapes(graph, bindings).items()}


def params(graph: Graph, name: str) -> object:
    return graph.node(name).layer.params


# ------------------------------------------------------------------------------- chaining


def test_implicit_chaining_feeds_each_layer_the_previous_output() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
Convolution conv { num_output: 4  kernel_size: 3 }
ReLU relu {}
Pooling pool { kernel_size: 2  stride: 2 }
""")
    assert wiring(graph) == {
        "data": (),
        "conv": ("data",),
        "relu": ("conv",),
        "pool": ("relu",),
    }
    assert graph.outputs == ("pool",)
    assert shapes(graph)["pool"] == ("N", 4, 3, 3)


def test_explicit_bottom_single_and_list() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
Convolution a { num_output: 4  kernel_size: 1 }
Convolution b { bottom: data  num_output: 6  kernel_size: 1 }
Concat cat { bottom: [a, b] }
ReLU after_cat {}
ReLU branch { bottom: "a" }
""")
    assert wiring(graph)["b"] == ("data",)
    assert wiring(graph)["cat"] == ("a", "b")
    assert wiring(graph)["after_cat"] == ("cat",)
    assert wiring(graph)["branch"] == ("a",)
    assert shapes(graph, N=2)["cat"] == (2, 10, 8, 8)
    # Tensors nobody reads are the outputs, in order.
    assert graph.outputs == ("after_cat", "branch")


def test_layer_without_braces() -> None:
    graph = build("input data: [N, 3, 8, 8]\nReLU relu\nSigmoid sig\n")
    assert wiring(graph) == {"data": (), "relu": ("data",), "sig": ("relu",)}


# ------------------------------------------------------------------------------- templates


BLOCK = """
input data: [N, 8, 16, 16]
template block(channels, stride = 1, mid = channels // 2) {
  Convolution reduce { num_output: mid  kernel_size: 1 }
  Convolution conv { num_output: channels  kernel_size: 3  stride: stride  pad: 1 }
  ReLU out {}
}
"""


def test_template_positional_arguments_and_defaults() -> None:
    graph = build(BLOCK + "block b1(16)\nblock b2(32, 2)\n")
    assert params(graph, "b1.reduce").num_output == 8  # type: ignore[attr-defined]
    assert params(graph, "b1.conv").stride == (1, 1)  # type: ignore[attr-defined]
    assert params(graph, "b2.reduce").num_output == 16  # type: ignore[attr-defined]
    assert params(graph, "b2.conv").stride == (2, 2)  # type: ignore[attr-defined]
    assert shapes(graph)["b2.out"] == ("N", 32, 8, 8)


def test_template_keyword_arguments_override_defaults_that_use_earlier_parameters() -> None:
    graph = build(BLOCK + "block b1(mid = 3, channels = 12)\nblock b2(12, stride = 2)\n")
    assert params(graph, "b1.reduce").num_output == 3  # type: ignore[attr-defined]
    assert params(graph, "b1.conv").num_output == 12  # type: ignore[attr-defined]
    assert params(graph, "b2.reduce").num_output == 6  # type: ignore[attr-defined]
    assert params(graph, "b2.conv").stride == (2, 2)  # type: ignore[attr-defined]


def test_template_output_is_its_last_layer() -> None:
    graph = build(BLOCK + "block b1(16)\nReLU after {}\n")
    assert wiring(graph)["b1.reduce"] == ("data",)
    assert wiring(graph)["after"] == ("b1.out",)


def test_template_instance_name_stands_for_its_output() -> None:
    graph = build(BLOCK + "block b1(16)\nblock b2(16) { bottom: data }\nEltwise sum { bottom: [b1, b2] }\n")
    assert wiring(graph)["sum"] == ("b1.out", "b2.out")


def test_layer_named_like_an_instance_is_a_duplicate() -> None:
    with pytest.raises(NetspecError) as caught:
        build(BLOCK + "block b1(16)\nReLU b1 {}\n")
    assert "duplicate name 'b1': a template instance of that name" in caught.value.diagnostics[0].message


def test_template_in_names_the_instance_input() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template residual(c) {
  Convolution conv { num_output: c  kernel_size: 3  pad: 1 }
  Eltwise add { bottom: [conv, in] }
}
ReLU stem {}
residual r1(4)
residual r2(4)
""")
    assert wiring(graph)["r1.conv"] == ("stem",)
    assert wiring(graph)["r1.add"] == ("r1.conv", "stem")
    assert wiring(graph)["r2.add"] == ("r2.conv", "r1.add")


def test_template_explicit_input_with_bottom() -> None:
    graph = build(BLOCK + "ReLU side {}\nblock b1(16) { bottom: data }\n")
    assert wiring(graph)["b1.reduce"] == ("data",)


def test_template_tensor_valued_argument() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template merge(other) {
  Convolution conv { num_output: 4  kernel_size: 1 }
  Eltwise add { bottom: [conv, other] }
}
ReLU skip {}
ReLU main { bottom: data }
merge m(skip)
""")
    # 'skip' names a tensor where the instance is written, so it resolves there.
    assert wiring(graph)["m.conv"] == ("main",)
    assert wiring(graph)["m.add"] == ("m.conv", "skip")


def test_nested_templates_make_dotted_scopes() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template unit(c) {
  Convolution conv1 { num_output: c  kernel_size: 1 }
  ReLU relu {}
}
template stage(c, n) {
  repeat n as i { unit {i}(c) }
}
stage layer1(8, 2)
stage layer2(16, 1)
""")
    assert list(wiring(graph)) == [
        "data",
        "layer1.0.conv1",
        "layer1.0.relu",
        "layer1.1.conv1",
        "layer1.1.relu",
        "layer2.0.conv1",
        "layer2.0.relu",
    ]
    assert wiring(graph)["layer1.1.conv1"] == ("layer1.0.relu",)
    assert wiring(graph)["layer2.0.conv1"] == ("layer1.1.relu",)
    frames = graph.node("layer1.1.conv1").trace
    assert [(f.template, f.scope) for f in frames] == [("stage", "layer1"), ("unit", "layer1.1")]
    assert frames[1].loop_bindings == (("repeat i", 1),)


def test_names_resolve_in_the_innermost_scope_first() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
ReLU conv {}
template block() {
  Convolution conv { num_output: 4  kernel_size: 1 }
  ReLU inner { bottom: conv }
  ReLU outer { bottom: data }
}
block b()
ReLU top { bottom: conv }
""")
    assert wiring(graph)["b.inner"] == ("b.conv",)
    assert wiring(graph)["b.outer"] == ("data",)
    assert wiring(graph)["top"] == ("conv",)


def test_template_instance_may_refer_to_outer_scope_of_an_enclosing_template() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template leaf() { ReLU r { bottom: stem } }
template branch() {
  ReLU stem {}
  leaf l()
}
branch b()
""")
    assert wiring(graph)["b.l.r"] == ("b.stem",)


def test_template_without_layers_passes_its_input_through() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template maybe(on) { if on { ReLU r {} } }
maybe m(false)
Sigmoid s {}
""")
    assert wiring(graph)["s"] == ("data",)


def test_a_templates_layers_are_one_object_in_all_its_instances() -> None:
    """Layers are immutable once built, so the elaborator builds each distinct one once; the
    stages after it compute a layer's shapes and counts once per object and input types."""
    graph = build("""
input data: [N, 4, 8, 8]
template block(c, slope = 0.0) {
  Convolution conv { num_output: c  kernel_size: 3  pad: 1 }
  ReLU relu { negative_slope: slope }
}
block b1(4)
block b2(4)
block b3(8)
block b4(8, slope = -0.0)
""")
    layer = {node.name: node.layer for node in graph.nodes}
    assert layer["b1.conv"] is layer["b2.conv"] and layer["b1.relu"] is layer["b2.relu"]
    assert layer["b3.conv"] is not layer["b2.conv"]  # another num_output
    assert layer["b3.relu"] is layer["b1.relu"]
    assert layer["b4.relu"] is not layer["b3.relu"]  # -0.0 is not 0.0
    assert shapes(graph, N=1)["b4.relu"] == (1, 8, 8, 8)


def test_values_equal_in_python_but_of_other_types_are_checked_each_time() -> None:
    """true == 1 == 1.0 as Python keys: a layer built from one must not stand for the others."""
    text = """
input data: [N, 4, 8, 8]
Convolution a { num_output: 4  kernel_size: 1  bias_term: true }
Convolution b { num_output: 4  kernel_size: 1  bias_term: 1 }
"""
    with pytest.raises(NetspecError) as caught:
        build(text)
    assert caught.value.diagnostics[0].message == (
        "Convolution parameter 'bias_term': expected true or false, got integer 1"
    )


# ------------------------------------------------------------------------------- repetition


def test_repeat_with_variable() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
repeat 3 as i { Convolution conv{i} { num_output: 4 * (i + 1)  kernel_size: 1 } }
""")
    assert wiring(graph) == {
        "data": (),
        "conv0": ("data",),
        "conv1": ("conv0",),
        "conv2": ("conv1",),
    }
    assert shapes(graph)["conv2"] == ("N", 12, 8, 8)


def test_repeat_without_variable_and_anonymous_layers() -> None:
    graph = build("input data: [N, 4, 8, 8]\nrepeat 2 { ReLU { } Sigmoid {} }\nReLU {}\n")
    assert list(wiring(graph)) == ["data", "relu1", "sigmoid1", "relu2", "sigmoid2", "relu3"]
    assert wiring(graph)["relu3"] == ("sigmoid2",)


def test_repeat_zero_times_adds_nothing() -> None:
    graph = build("input data: [N, 4, 8, 8]\nrepeat 0 { ReLU {} }\nSigmoid s {}\n")
    assert wiring(graph) == {"data": (), "s": ("data",)}


def test_repeat_count_is_an_expression() -> None:
    graph = build("input data: [N, 4]\nlet depth = 2\nrepeat depth * 2 - 1 { ReLU {} }\n")
    assert len(graph.nodes) == 4


def test_for_over_a_list() -> None:
    graph = build("""
input data: [N, 3, 32, 32]
for c in [8, 16, 32] {
  Convolution conv{c} { num_output: c  kernel_size: 3  pad: 1 }
  Pooling pool{c} { kernel_size: 2  stride: 2 }
}
""")
    assert list(wiring(graph))[1:] == ["conv8", "pool8", "conv16", "pool16", "conv32", "pool32"]
    assert shapes(graph)["pool32"] == ("N", 32, 4, 4)


def test_for_over_range_and_index() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
let widths = [4, 8]
for s in range(len(widths)) { Convolution stage{s + 1} { num_output: widths[s]  kernel_size: 1 } }
""")
    assert params(graph, "stage2").num_output == 8  # type: ignore[attr-defined]


def test_if_elif_else() -> None:
    text = """
input data: [N, 4, 8, 8]
template act(kind) {
  if kind == "relu" { ReLU f {} }
  elif kind == "tanh" { TanH f {} }
  else { Sigmoid f {} }
}
act a("relu")
act b(tanh)
act c("other")
if false { ReLU never {} }
"""
    graph = build(text)
    assert [graph.node(n).type for n in ("a.f", "b.f", "c.f")] == ["ReLU", "TanH", "Sigmoid"]
    assert "never" not in wiring(graph)


def test_if_without_else_taking_no_branch() -> None:
    graph = build("input data: [N, 4]\nlet deep = 0\nif deep > 0 { ReLU r {} }\nSigmoid s {}\n")
    assert wiring(graph) == {"data": (), "s": ("data",)}


# ------------------------------------------------------------------------------- constants


def test_let_at_top_level_and_inside_templates() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
let base = 8
let widths = [base, base * 2]
template block(scale) {
  let width = base * scale
  Convolution conv { num_output: width  kernel_size: 1 }
}
block b(3)
Convolution last { num_output: widths[1]  kernel_size: 1 }
""")
    assert params(graph, "b.conv").num_output == 24  # type: ignore[attr-defined]
    assert params(graph, "last").num_output == 16  # type: ignore[attr-defined]


def test_let_inside_a_loop_is_local_to_the_iteration() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
let c = 100
repeat 2 as i {
  let c = 4 * (i + 1)
  Convolution conv{i} { num_output: c  kernel_size: 1 }
}
Convolution after { num_output: c  kernel_size: 1 }
""")
    assert params(graph, "conv1").num_output == 8  # type: ignore[attr-defined]
    assert params(graph, "after").num_output == 100  # type: ignore[attr-defined]


def test_one_line_blocks_are_blocks_not_interpolated_names() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
let deep = true
if deep { SiLU act }
repeat 2 as i { ReLU r{i} }
for k in [3, 5] { Convolution c{k} { num_output: 4  kernel_size: k  pad: k // 2 } }
Sigmoid s{(1 + 2) * 2 // 3 - 1}
""")
    assert [node.name for node in graph.nodes] == ["data", "act", "r0", "r1", "c3", "c5", "s1"]


def test_param_blocks_share_and_freeze_arrays() -> None:

    graph = build("""
input a: [N, 3, 8, 8]
input b: [N, 3, 8, 8]
Convolution ca { bottom: a  num_output: 4  kernel_size: 3
                 param { name: "w" lr_mult: 0 }  param { name: "bias" } }
Convolution cb { bottom: b  num_output: 4  kernel_size: 3
                 param { name: "w" }  param { name: "bias"  decay_mult: 0 } }
Convolution cc { bottom: b  num_output: 2  kernel_size: 1  param { }  param { lr_mult: 0 } }
""")
    totals = bind(graph).counts.totals
    # The shared weight (4·3·3·3 = 108) and bias (4) once, cc's 6 + 2; frozen: w and cc's bias.
    assert (totals.params, totals.frozen) == (108 + 4 + 6 + 2, 108 + 2)
    assert graph.node("cb").array_names == ("w", "bias") and graph.node("cc").frozen_arrays == (1,)


def test_let_default_binds_only_an_unset_name() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
let wide = 32
let wide ?= 4
let narrow ?= 4
template block(c) {
  let c ?= 1000
  let k ?= 3
  Convolution conv { num_output: c  kernel_size: k  pad: 1 }
}
block b(6)
Convolution w { num_output: wide  kernel_size: 1 }
Convolution n { num_output: narrow  kernel_size: 1 }
""")
    assert params(graph, "b.conv").num_output == 6  # type: ignore[attr-defined]
    assert params(graph, "b.conv").kernel_size == (3, 3)  # type: ignore[attr-defined]
    assert params(graph, "w").num_output == 32  # type: ignore[attr-defined]
    assert params(graph, "n").num_output == 4  # type: ignore[attr-defined]


def test_templates_see_constants_defined_after_them() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
template head() { Convolution fc { num_output: classes  kernel_size: 1 } }
let classes = 10
head h()
""")
    assert params(graph, "h.fc").num_output == 10  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- names


def test_interpolated_names() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
repeat 2 as i {
  ReLU layer{i + 1}.relu {}
  Sigmoid block{i}_{i * 10} {}
  TanH layer{i+1}.x {}
}
for b in [3] { ReLU denseblock{b} {} }
""")
    assert list(wiring(graph))[1:] == [
        "layer1.relu",
        "block0_0",
        "layer1.x",
        "layer2.relu",
        "block1_10",
        "layer2.x",
        "denseblock3",
    ]


def test_interpolated_names_in_bottom() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
repeat 3 as i {
  ReLU r{i} {}
  if i > 0 { Eltwise add{i} { bottom: [r{i}, r{i - 1}] } }
}
""")
    assert wiring(graph)["add2"] == ("r2", "r1")


def test_anonymous_layers_are_numbered_per_type_and_scope() -> None:
    graph = build("""
input data: [N, 4, 8, 8]
template t() { ReLU {} ReLU {} }
ReLU {}
t a()
ReLU {}
""")
    assert list(wiring(graph)) == ["data", "relu1", "a.relu1", "a.relu2", "relu2"]


def test_anonymous_layers_skip_names_in_use() -> None:
    graph = build("input data: [N, 4]\nReLU relu1 {}\nReLU {}\nReLU {}\n")
    assert list(wiring(graph)) == ["data", "relu1", "relu2", "relu3"]


def test_dotted_layer_names() -> None:
    graph = build("input data: [N, 4]\nReLU features.0 {}\nSigmoid features.1 { bottom: features.0 }\n")
    assert wiring(graph)["features.1"] == ("features.0",)


# ------------------------------------------------------------------------------- inputs


def test_symbolic_batch_is_kept_or_bound() -> None:
    graph = build("input data: [N, 3, 8, 8]\nConvolution c { num_output: 2  kernel_size: 3 }\n")
    assert shapes(graph)["c"] == ("N", 2, 6, 6)
    assert shapes(graph, N=8)["c"] == (8, 2, 6, 6)
    assert infer_shapes(graph, {"N": 8})["data"] == TensorType((8, 3, 8, 8))


def test_any_dimension_name_is_symbolic_and_computed_shapes_work() -> None:
    graph = build("let size = 4 * 8\ninput data: [batch, 3, size, size]\nReLU r {}\n")
    assert shapes(graph)["r"] == ("batch", 3, 32, 32)
    assert shapes(graph, batch=2)["r"] == (2, 3, 32, 32)


def test_several_inputs_and_input_layer_form() -> None:
    graph = build("""
input a: [N, 4, 8, 8]
Input b { shape: [N, 4, 8, 8] }
Eltwise sum { bottom: [a, b] }
""")
    assert [n.name for n in graph.input_nodes] == ["a", "b"]
    assert wiring(graph)["sum"] == ("a", "b")


# ------------------------------------------------------------------------------- header


def test_header_name_and_output() -> None:
    graph = build("""
name: "Tiny-Net"
output: [relu, sig]
input data: [N, 4]
ReLU relu {}
Sigmoid sig {}
TanH tail {}
""")
    assert graph.name == "Tiny-Net"
    assert graph.outputs == ("relu", "sig")


def test_single_output_and_default_name_from_the_file() -> None:
    graph = build("output: relu\ninput data: [N, 4]\nReLU relu {}\nSigmoid sig {}\n", "nets/tiny.net")
    assert graph.name == "tiny"
    assert graph.outputs == ("relu",)


# ------------------------------------------------------------------------------- Caffe style


def test_caffe_param_blocks_are_flattened() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
Convolution conv {
  convolution_param { num_output: 4  kernel_size: 3
    weight_filler_param { }
  }
  convolution_param: { stride: 2 }
}
Pooling pool { pooling_param { pool: AVE  kernel_size: 2 } }
""")
    conv = params(graph, "conv")
    assert (conv.num_output, conv.kernel_size, conv.stride) == (4, (3, 3), (2, 2))  # type: ignore[attr-defined]
    assert params(graph, "pool").pool == "AVE"  # type: ignore[attr-defined]


def test_repeated_fields_collect_into_a_list() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
Convolution a { num_output: 2  kernel_size: 1 }
Convolution b { bottom: "data"  num_output: 2  kernel_size: 3  kernel_size: 1  pad: 1  pad: 0 }
Concat cat { bottom: "a"  bottom: "b" }
Reshape flat { shape: 0  shape: -1 }
""")
    assert wiring(graph)["cat"] == ("a", "b")
    assert params(graph, "b").kernel_size == (3, 1)  # type: ignore[attr-defined]
    assert shapes(graph, N=1)["b"] == (1, 2, 8, 8)
    assert shapes(graph, N=1)["flat"] == (1, 256)


def test_separators_and_comments() -> None:
    graph = build("""# a comment on the first line
input data: [N, 3, 8, 8];   # after a statement
Convolution conv { num_output: 4, kernel_size: 3; pad: 1, }  # commas and semicolons
ReLU relu {};
# name: "not a header"
Pooling pool { kernel_size: 2 # inside a block
  stride: 2 }
""")
    assert list(wiring(graph)) == ["data", "conv", "relu", "pool"]
    assert graph.name == "t"
    assert shapes(graph)["pool"] == ("N", 4, 4, 4)


def test_enum_words_and_strings_are_interchangeable() -> None:
    graph = build("""
input data: [N, 3, 8, 8]
Pooling a { pool: AVE  kernel_size: 2 }
Pooling b { bottom: data  pool: "ave"  kernel_size: 2  round_mode: floor }
""")
    assert params(graph, "a").pool == params(graph, "b").pool == "AVE"  # type: ignore[attr-defined]
    assert params(graph, "b").round_mode == "FLOOR"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- includes


def test_includes_are_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "lib" / "common").mkdir(parents=True)
    (tmp_path / "lib" / "common" / "act.net").write_text(
        "let slope = 0.1\ntemplate act() { ReLU r { negative_slope: slope } }\n"
    )
    (tmp_path / "lib" / "blocks.net").write_text(
        'include "common/act.net"\n'
        "template block(c) {\n  Convolution conv { num_output: c  kernel_size: 1 }\n  act a()\n}\n"
    )
    (tmp_path / "main.net").write_text('include "lib/blocks.net"\ninput data: [N, 3, 8, 8]\nblock b(4)\n')
    graph = load_spec(tmp_path / "main.net")
    assert wiring(graph) == {"data": (), "b.conv": ("data",), "b.a.r": ("b.conv",)}
    assert params(graph, "b.a.r").negative_slope == 0.1  # type: ignore[attr-defined]
    span = graph.node("b.a.r").span
    assert span is not None
    assert Path(span.source.path).resolve() == (tmp_path / "lib" / "common" / "act.net").resolve()
    assert span.line == 2


def test_included_files_are_read_like_the_main_file(tmp_path: Path) -> None:
    (tmp_path / "bad.net").write_bytes("ReLU r {}\n# caf\xe9\n".encode("latin-1"))
    (tmp_path / "main.net").write_text('input data: [N, 3, 8, 8]\ninclude "bad.net"\n')
    with pytest.raises(NetspecError) as caught:
        load_spec(tmp_path / "main.net")
    (problem,) = caught.value.diagnostics
    assert problem.message == "the file is not valid UTF-8"
    assert problem.span is not None and (problem.span.line, problem.span.column) == (2, 6)
    assert problem.notes == (f"included at {tmp_path / 'main.net'}:2:1",)


def test_include_with_layers_and_constants_read_by_the_library(tmp_path: Path) -> None:
    (tmp_path / "stem.net").write_text("Convolution stem { num_output: width  kernel_size: 1 }\n")
    (tmp_path / "main.net").write_text(
        'input data: [N, 3, 8, 8]\nlet width = 6\ninclude "stem.net"\nReLU r {}\n'
    )
    graph = load_spec(tmp_path / "main.net")
    assert wiring(graph)["r"] == ("stem",)
    assert params(graph, "stem").num_output == 6  # type: ignore[attr-defined]


def test_a_file_included_twice_is_elaborated_once(tmp_path: Path) -> None:
    (tmp_path / "common.net").write_text("template unit() { ReLU r {} }\n")
    (tmp_path / "a.net").write_text('include "common.net"\ntemplate ta() { unit u() }\n')
    (tmp_path / "b.net").write_text('include "common.net"\ntemplate tb() { unit u() }\n')
    (tmp_path / "main.net").write_text('include "a.net"\ninclude "b.net"\ninput x: [N, 4]\nta a()\ntb b()\n')
    graph = load_spec(tmp_path / "main.net")
    assert list(wiring(graph)) == ["x", "a.u.r", "b.u.r"]


def test_include_cycle_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.net").write_text('include "sub/a.net"\ninput x: [N, 4]\n')
    (tmp_path / "sub" / "a.net").write_text('include "../main.net"\n')
    with pytest.raises(NetspecError) as caught:
        load_spec(tmp_path / "main.net")
    assert "include cycle: main.net -> a.net -> main.net" in caught.value.diagnostics[0].message


# ------------------------------------------------------------------------------- a whole net


def test_design_example_resnet_basic_block() -> None:
    graph = build("""
name: "ResNet-ish"
input data: [N, 3, 32, 32]
template basic(inplanes, planes, stride = 1) {
  Convolution conv1 { num_output: planes  kernel_size: 3  stride: stride  pad: 1  bias_term: false }
  BatchNorm bn1 {}
  ReLU relu {}
  Convolution conv2 { num_output: planes  kernel_size: 3  pad: 1  bias_term: false }
  BatchNorm bn2 {}
  if stride != 1 or inplanes != planes {
    Convolution downsample.0 { bottom: in  num_output: planes  kernel_size: 1  stride: stride
                               bias_term: false }
    BatchNorm downsample.1 {}
  }
  Eltwise add { bottom: [bn2, stride != 1 or inplanes != planes ? downsample.1 : in] }
  ReLU out {}
}
Convolution conv1 { num_output: 16  kernel_size: 3  pad: 1  bias_term: false }
repeat 2 as i { basic layer1.{i}(16, 16) }
repeat 2 as i { basic layer2.{i}(i == 0 ? 16 : 32, 32, i == 0 ? 2 : 1) }
""")
    names = list(wiring(graph))
    assert "layer1.0.downsample.0" not in names
    assert "layer2.0.downsample.0" in names
    assert "layer2.1.downsample.0" not in names
    assert wiring(graph)["layer1.1.add"] == ("layer1.1.bn2", "layer1.0.out")
    assert wiring(graph)["layer2.0.downsample.0"] == ("layer1.1.out",)
    assert wiring(graph)["layer2.0.add"] == ("layer2.0.bn2", "layer2.0.downsample.1")
    assert shapes(graph, N=1)["layer2.1.out"] == (1, 32, 16, 16)
    assert graph.outputs == ("layer2.1.out",)


# ------------------------------------------------------------------------------- docs


def test_layer_reference_in_docs_is_up_to_date() -> None:
    """docs/language.md's layer reference is generated from the registry; regenerate it with
    ``python tools/gen_layer_docs.py`` after adding or changing a layer type."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_layer_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docs_examples_compile(tmp_path: Path) -> None:
    """Every ```net block in docs/language.md that is a whole spec elaborates and infers."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```net\n")[1:]]
    assert len(blocks) >= 10
    for number, block in enumerate(blocks):
        lines = block.splitlines()
        if not any(line.startswith(("input ", "Input ")) for line in lines):
            continue  # a fragment
        try:
            infer_shapes(build(block, f"docs-example-{number}.net"))
        except NetspecError as exc:
            pytest.fail(f"docs example {number} fails:\n{block}\n{exc.render()}")
