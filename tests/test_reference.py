"""The float64 reference executor as a product feature: the Python API, ``netspec run
--reference`` and ``--check-reference``, every layer type covered by an ORT-vs-reference case,
and every classic zoo model against it end to end at a small input."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netspec.compiler import load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.typed import bind
from netspec.verify import TOLERANCES, max_relative_error, sample_inputs, small_input_shapes

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

# ---------------------------------------------------------------- the Python API


@pytest.mark.unit
def test_package_exports_the_reference_lazily() -> None:
    code = (
        "import sys, netspec\n"
        "assert 'onnx' not in sys.modules and 'netspec.reference' not in sys.modules\n"
        "from netspec import relative_errors, run_reference\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "print(run_reference.__module__, relative_errors.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["netspec.reference", "netspec.verify"]


@pytest.mark.unit
def test_run_reference_by_hand() -> None:
    # 1×1 convolution with weight 2 and bias 1, then ReLU: max(2x + 1, 0), in float64.
    import netspec

    graph = elaborate(
        SourceFile(
            "hand.net", "input a: [1, 1, 1, 3]\nConvolution c { num_output: 1 kernel_size: 1 }\nReLU r {}\n"
        )
    )
    weights = {"c.weight": np.full((1, 1, 1, 1), 2, np.float32), "c.bias": np.ones(1, np.float32)}
    out = netspec.run_reference(graph, weights, {"a": np.array([[[[-3.0, 0.25, 1e-9]]]])})["r"]
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[[[0.0, 1.5, 1.000000002]]]])


@pytest.mark.unit
def test_max_relative_error_conventions() -> None:
    assert max_relative_error(np.array([1.0, -2.0]), np.array([1.0, -4.0])) == 0.5
    assert max_relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert max_relative_error(np.ones(3), np.zeros(3)) == float("inf")


@pytest.mark.unit
def test_sampled_inputs_are_standard_normal_and_never_zero() -> None:
    graph = elaborate(SourceFile("in.net", "input a: [N, 3, 8, 8]\ninput b: [N, 5]\nReLU r { bottom: a }\n"))

    feeds = sample_inputs(bind(graph, 4), seed=1)
    assert {k: v.shape for k, v in feeds.items()} == {"a": (4, 3, 8, 8), "b": (4, 5)}
    assert all(v.dtype == np.float32 and np.count_nonzero(v) == v.size for v in feeds.values())
    assert abs(float(feeds["a"].std()) - 1.0) < 0.1


# ---------------------------------------------------------------- netspec run --reference


def netspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netspec", *args], capture_output=True, text=True, cwd=TESTS.parent
    )


@pytest.mark.unit
def test_run_reference_prints_shapes_and_device() -> None:
    result = netspec("run", "zoo/lenet5.net", "--reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("output: [1, 10] float64")
    assert "device: reference (numpy float64)" in result.stderr
    assert "onnxruntime" not in result.stderr


@pytest.mark.ort
def test_run_check_reference_prints_errors(tmp_path: Path) -> None:
    result = netspec("run", "zoo/lenet5.net", "--check-reference", "--batch", "2", "--keep-bn")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "relative error" in line)
    error = float(line.split("reference ")[1].split()[0])
    assert 0 < error <= TOLERANCES["float32"]
    assert line.endswith("ok")


@pytest.mark.ort
def test_run_check_reference_fails_above_the_tolerance() -> None:
    # float32 never matches float64 exactly: a zero tolerance must fail, with exit code 3.
    result = netspec("run", "zoo/lenet5.net", "--check-reference", "--tolerance", "0")
    assert result.returncode == 3
    assert "ABOVE TOLERANCE" in result.stdout
    assert "differs from the float64 reference" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.ort
def test_run_reference_refuses_an_onnx_file(tmp_path: Path) -> None:
    model = tmp_path / "lenet.onnx"
    assert netspec("compile", "zoo/lenet5.net", "-o", str(model)).returncode == 0
    result = netspec("run", str(model), "--reference")
    assert result.returncode == 1
    assert "--reference applies to a spec" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.unit
def test_reference_and_check_reference_exclude_each_other() -> None:
    result = netspec("run", "zoo/lenet5.net", "--reference", "--check-reference")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


# ---------------------------------------------------------------- every layer type is covered


def numeric_case_layer_types() -> set[str]:
    """Layer types that the per-layer ORT-vs-reference tests build: the cases of every
    tests/test_layers*.py module (its CASES, each run through onnxruntime against the reference
    by that module's test_onnx_matches_reference)."""
    from test_layers import build_graph

    covered: set[str] = set()
    for path in sorted(TESTS.glob("test_layers*.py")):
        module = importlib.import_module(path.stem)
        if not hasattr(module, "test_onnx_matches_reference"):
            continue
        for case in getattr(module, "CASES", []):
            covered.update(node.type for node in build_graph(case).nodes)
    return covered


@pytest.mark.unit
def test_every_layer_type_has_a_numeric_case() -> None:
    from netspec.layers import LAYER_TYPES

    # OnnxOp holds ONNX nodes netspec has no layer for (tests/test_onnx_import.py); no spec has it.
    onnx_only = {name for name, layer in LAYER_TYPES.items() if layer.uncounted}
    missing = sorted(set(LAYER_TYPES) - numeric_case_layer_types() - onnx_only)
    assert not missing, (
        "layer types without an onnxruntime-vs-reference case in tests/test_layers*.py CASES: "
        + ", ".join(missing)
    )


# ---------------------------------------------------------------- classic zoo models end to end

# The classic models (DESIGN.md §1: LeNet to DenseNet); later families check themselves in their
# own zoo tests. Each runs at the smallest square input it takes from 64 (LeNet and NIN, whose
# pooling needs their full size, at their own): the float64 convolutions are the cost.
CLASSIC_ZOO = [
    "lenet5.net",
    "alexnet.net",
    "alexnet_caffe.net",
    "zfnet.net",
    "vgg11.net",
    "vgg13.net",
    "vgg16.net",
    "vgg19.net",
    "nin.net",
    "googlenet.net",
    "resnet18.net",
    "resnet34.net",
    "resnet50.net",
    "resnet101.net",
    "resnet152.net",
    "densenet121.net",
    "densenet161.net",
    "densenet169.net",
    "densenet201.net",
]


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize("spec", CLASSIC_ZOO)
def test_classic_zoo_model_matches_reference(spec: str) -> None:
    from netspec.verify import relative_errors

    graph = load_graph(ROOT / "zoo" / spec)
    errors = relative_errors(graph, input_shapes=small_input_shapes(graph), seed=5)
    assert 0 < max(errors.values()) <= TOLERANCES["float32"], errors
