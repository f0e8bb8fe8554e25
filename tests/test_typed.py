"""The typed graph (netspec.typed): binding and inference once, into one frozen value."""

from __future__ import annotations

import pytest

from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.typed import batch_symbol, bind


def spec(text: str) -> object:
    return elaborate(SourceFile("t.net", text))


@pytest.mark.unit
def test_binding_fixes_the_inputs_own_batch_symbol() -> None:
    graph = spec("input x: [B, 3, 8, 8]\nConvolution c { num_output: 2 kernel_size: 3 }\n")
    typed = bind(graph, 4)  # type: ignore[arg-type]
    assert (typed.batch_symbol, dict(typed.bindings), typed.batch) == ("B", {"B": 4}, 4)
    assert typed.types["c"].dims == (4, 2, 6, 6)
    dynamic = bind(graph, None)  # type: ignore[arg-type]
    assert dynamic.types["c"].dims == ("B", 2, 6, 6) and dict(dynamic.bindings) == {}
    fixed = spec("input x: [2, 3, 8, 8]\nReLU r\n")
    assert batch_symbol(fixed) is None  # type: ignore[arg-type]
    assert bind(fixed, 7).types["r"].dims == (2, 3, 8, 8)  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_typed_graph_is_frozen_and_answers_per_node() -> None:
    typed = bind(load_graph("resnet18"))
    with pytest.raises(TypeError):
        typed.types["fc"] = typed.types["data"]  # type: ignore[index]
    conv = typed.of("conv1")
    assert conv.inputs[0].dims == (1, 3, 224, 224) and conv.outputs[0].dims == (1, 64, 112, 112)
    assert [(a.name, a.spec.shape) for a in conv.arrays] == [("conv1.weight", (64, 3, 7, 7))]
    assert typed.counts is typed.counts  # computed once
    assert typed.counts.totals.params == 11_689_512
    assert sum(a.spec.size for a in typed.expected_arrays.values() if a.spec.learnable) == 11_689_512
    field = typed.receptive_fields["layer4.1.relu"]  # ResNet-18's well-known 435-pixel field
    assert field is not None and (field.height.size, field.height.stride) == (435, 32)
    assert typed.receptive_fields["fc"] is None  # no spatial layout after the classifier
    assert typed.with_dtype("float16").counts.totals.weight_bytes == typed.counts.totals.weight_bytes // 2


@pytest.mark.unit
def test_binding_checks_sizes_and_shared_arrays_at_once() -> None:
    from netspec.limits import DEFAULT_LIMITS

    graph = load_graph("vgg16")
    small = DEFAULT_LIMITS.with_settings({"max_weight_elements": 1_000_000})
    with pytest.raises(NetspecError) as caught:
        bind(graph, limits=small)
    assert "the weights reach" in str(caught.value) and "--limit max_weight_elements" in str(caught.value)
