"""Scale (issue 6, DESIGN.md §6 and §9): a 10,000-layer spec and a 1,000-input concatenation
compile and run; a model whose weights pass protobuf's 2 GiB limit is written with its weights in
``MODEL.onnx.data`` beside it, passes the ONNX checker by path and runs in onnxruntime, matching
a float64 numpy reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netspec.compiler import compile_graph
from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate, load_spec
from netspec.export.onnx import check_model
from netspec.limits import DEFAULT_LIMITS, Limits
from netspec.runtime import create_session
from netspec.typed import bind

HEAD = "input data: [N, 3, 8, 8]\n"
DEEP = 20_000


def run(model: object, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return create_session(model.SerializeToString(), "cpu").run(feeds)  # type: ignore[attr-defined]


@pytest.mark.ort
def test_ten_thousand_layers_written_out() -> None:
    lines = ["input data: [N, 3, 2, 2]"]
    lines += [f"{'ReLU' if i % 2 else 'Power'} layer{i} {{}}" for i in range(10_000)]
    graph = elaborate(SourceFile("deep.net", "\n".join(lines) + "\n"))
    analysis = bind(graph)
    assert analysis.counts.totals.layers == 10_000
    assert analysis.types["layer9999"].dims == (1, 3, 2, 2)
    model = compile_graph(analysis)
    check_model(model)
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    (output,) = run(model, {"data": x}).values()
    # Power's defaults (scale 1, shift 0, power 1) are the identity; ReLU of ReLU is ReLU.
    np.testing.assert_array_equal(output, np.maximum(x.astype(np.float64), 0.0))


@pytest.mark.ort
def test_a_thousand_input_concat() -> None:
    names = [f"b{i}" for i in range(1000)]
    text = (
        "input data: [N, 1, 2, 2]\n"
        "repeat 1000 as i { Power b{i} { bottom: data  scale: i } }\n"
        f"Concat all {{ bottom: [{', '.join(names)}] }}\n"
    )
    graph = elaborate(SourceFile("wide.net", text))
    node = next(n for n in graph.nodes if n.name == "all")
    assert len(node.inputs) == 1000
    typed = bind(graph)
    assert typed.types["all"].dims == (1, 1000, 2, 2)
    model = compile_graph(typed)
    check_model(model)
    x = np.random.default_rng(1).standard_normal((1, 1, 2, 2)).astype(np.float32)
    (output,) = run(model, {"data": x}).values()
    expected = np.concatenate([i * x.astype(np.float64) for i in range(1000)], axis=1)
    np.testing.assert_allclose(output, expected, rtol=1e-6)


# ---------------------------------------------------------------- structures nested 20,000 deep

TOO_DEEP = "the file nests brackets, blocks or operators more than 100 levels deep"


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        pytest.param(HEAD + "let a = " + "[" * DEEP + "]" * DEEP + "\n", id="list-brackets"),
        pytest.param(HEAD + "let a = " + " + ".join(["1"] * DEEP) + "\n", id="sum"),
        pytest.param(HEAD + "let a = " + "not " * DEEP + "true\n", id="not"),
        pytest.param(HEAD + "if true { " * DEEP + "ReLU r {}" + " }" * DEEP + "\n", id="if-blocks"),
        pytest.param(HEAD + "ReLU r { " + "a_param { " * DEEP + "}" * DEEP + " }\n", id="field-blocks"),
    ],
)
def test_nesting_20000_deep_is_a_diagnostic(text: str) -> None:
    with pytest.raises(NetspecError) as caught:
        elaborate(SourceFile("deep.net", text))
    assert caught.value.diagnostics[0].message == TOO_DEEP


@pytest.mark.unit
def test_parentheses_20000_deep_are_only_grouping() -> None:
    text = (
        HEAD
        + "let c = "
        + "(" * DEEP
        + "4"
        + ")" * DEEP
        + "\nConvolution conv { num_output: c  kernel_size: 1 }\n"
    )
    assert bind(elaborate(SourceFile("parens.net", text))).types["conv"].dims == (1, 4, 8, 8)


@pytest.mark.unit
def test_caffe_messages_20000_deep(tmp_path: Path) -> None:
    from netspec.compiler import load_graph

    path = tmp_path / "deep.prototxt"
    path.write_text('name: "x"\n' + "a { " * DEEP + "}" * DEEP + "\n")
    with pytest.raises(NetspecError) as caught:
        load_graph(path)
    assert caught.value.diagnostics[0].message == TOO_DEEP


@pytest.mark.unit
def test_templates_20000_deep() -> None:
    text = HEAD + (
        "template t(n) {\n  if n > 0 {\n    t inner(n - 1)\n  } else {\n    ReLU r {}\n  }\n}\n"
        f"t top({DEEP})\n"
    )
    with pytest.raises(NetspecError) as caught:
        elaborate(SourceFile("templates.net", text))
    assert caught.value.diagnostics[0].message == "templates nest more than 64 deep (is 't' recursive?)"


@pytest.mark.unit
def test_a_template_that_doubles_at_every_level_is_capped() -> None:
    """2**60 instances and not one layer: only the expansion count stops it."""
    text = HEAD + "template t(n) {\n  if n > 0 {\n    t a(n - 1)\n    t b(n - 1)\n  }\n}\nt root(60)\n"
    with pytest.raises(NetspecError) as caught:
        elaborate(SourceFile("doubling.net", text), Limits(max_expansions=1000))
    assert caught.value.diagnostics[0].message == (
        "the spec expands to more than 1000 loop iterations and template instances in all"
    )


def doublings(step: str, count: int = 12) -> str:
    """Constants v1 ... v``count``, each ``step`` applied to the one before (``{0}``)."""
    return "".join(f"let v{i + 1} = {step.format(f'v{i}')}\n" for i in range(count))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "let v0 = range(1000000)\n" + doublings("{0} + {0}"),
            "the list holds more than 1,000,000 values in all",
            id="list-doubled-by-constants",
        ),
        pytest.param(
            "let v0 = range(1000000)\n" + doublings("[{0}, {0}]"),
            "the list holds more than 1,000,000 values in all",
            id="list-nested-twice-by-constants",
        ),
        pytest.param(
            "let v0 = 1\n" + doublings("[{0}]", 2000),
            "lists nest more than 100 deep",
            id="list-nested-2000-deep-by-constants",
        ),
        pytest.param(
            'let v0 = "' + "x" * 1000 + '"\n' + doublings("{0} + {0}", 30),
            # The evaluation budget (10,000,000 characters created in all) stops it first.
            "the spec's expressions exceed the evaluation budget of 10,000,000 steps, list items and "
            "string characters in all",
            id="string-doubled-by-constants",
        ),
    ],
)
def test_values_grown_by_chains_of_constants_are_capped(text: str, message: str) -> None:
    """Each constant doubles the last: without caps, memory, time or the stack run out."""
    with pytest.raises(NetspecError) as caught:
        elaborate(SourceFile("grow.net", HEAD + text))
    assert caught.value.diagnostics[0].message == message


@pytest.mark.unit
def test_includes_20000_deep(tmp_path: Path) -> None:
    for i in range(DEEP):
        (tmp_path / f"f{i}.net").write_text(f'include "f{i + 1}.net"\n')
    (tmp_path / f"f{DEEP}.net").write_text(HEAD)
    with pytest.raises(NetspecError) as caught:
        load_spec(tmp_path / "f0.net")
    assert caught.value.diagnostics[0].message == "includes nest more than 32 files deep"
    # f0 ... f31 are open when f31 asks for the 33rd
    assert caught.value.diagnostics[0].span.source.path.endswith("f31.net")  # type: ignore[union-attr]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "ReLU x{" + "a" * 200_000, "the '{' of an interpolation in a name is not closed", id="open-name"
        ),
        pytest.param("let a = " + "1" * 200_000, "the integer of 200000 digits is too large", id="digits"),
        pytest.param('let a = "' + "a" * 200_000, "unterminated string", id="open-string"),
    ],
)
def test_tokens_of_200000_characters(line: str, message: str) -> None:
    """The lexer's regexes are linear: a quadratic one takes minutes here, not milliseconds."""
    with pytest.raises(NetspecError) as caught:
        elaborate(SourceFile("long.net", HEAD + line + "\n"))
    assert caught.value.diagnostics[0].message.startswith(message)


def _available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**63


# A fully connected layer with 16,384 inputs and 32,769 outputs: 536,887,296 weights, 4 bytes
# each, are 2,147,549,184 bytes, just past the 2 GiB (2,147,483,648 bytes) a protobuf can hold.
INPUTS, OUTPUTS = 16_384, 32_769
BIG_SPEC = f"input data: [N, {INPUTS}]\nInnerProduct fc {{ num_output: {OUTPUTS} }}\n"


@pytest.mark.ort
@pytest.mark.skipif(_available_memory() < 9 * 2**30, reason="needs about 9 GiB of free memory")
def test_weights_past_2_gib_go_to_an_external_data_file(tmp_path: Path) -> None:
    import onnx

    from netspec.compiler import load_graph
    from netspec.weights import initialize_weights

    assert INPUTS * OUTPUTS * 4 > 2**31
    spec = tmp_path / "big.net"
    spec.write_text(BIG_SPEC)
    model_path, data_path = tmp_path / "big.onnx", tmp_path / "big.onnx.data"
    # Compiled in its own process, as a user would, so that its memory is returned at exit.
    result = subprocess.run(
        # Past the default weight cap (2**29 elements): raised, as the hint says.
        [
            *(sys.executable, "-m", "netspec", "compile", str(spec), "-o", str(model_path)),
            *("--limit", "max_weight_elements=600000000"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"they are in {data_path}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.net", "big.onnx", "big.onnx.data"]
    assert model_path.stat().st_size < 2**20
    # weight then bias, the bias at the next 4 KiB boundary
    weight_bytes = INPUTS * OUTPUTS * 4
    assert data_path.stat().st_size == -(-weight_bytes // 4096) * 4096 + OUTPUTS * 4

    onnx.checker.check_model(str(model_path), full_check=True)
    session = create_session(str(model_path), "cpu")
    x = np.random.default_rng(2).standard_normal((1, INPUTS)).astype(np.float32)
    (output,) = session.run({"data": x}).values()
    del session

    graph = load_graph(spec)
    limits = DEFAULT_LIMITS.with_settings({"max_weight_elements": 600_000_000})
    weights = initialize_weights(bind(graph, 1, limits=limits), seed=0)
    weight, bias = weights["fc.weight"], weights["fc.bias"]
    x64 = x[0].astype(np.float64)
    expected = np.concatenate(
        [weight[i : i + 2048].astype(np.float64) @ x64 for i in range(0, OUTPUTS, 2048)]
    ) + bias.astype(np.float64)
    np.testing.assert_allclose(output[0], expected, rtol=1e-4, atol=1e-4)
