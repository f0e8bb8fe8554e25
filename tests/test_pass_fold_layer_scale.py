"""The layer-scale folding pass (netspec.passes.fold_layer_scale): ConvNeXt's learned per-channel
factor before the residual add moves into the block's last InnerProduct, back through the
Permute to NCHW, exactly; the scaling layer becomes a plain sum."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from netspec.compiler import compile_graph, load_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.passes.fold_layer_scale import fold_layer_scale
from netspec.runtime import create_session
from netspec.typed import bind
from netspec.weights import initialize_weights

# A ConvNeXt block on [1, 2, 2, 2]: channels-last linear, back to NCHW, scaled, added.
SPEC = """input x: [1, 2, 2, 2]
Permute nhwc { order: [0, 2, 3, 1] }
InnerProduct fc { num_output: 2  axis: -1 }
Permute nchw { order: [0, 3, 1, 2] }
LayerScale scale { bottom: [nchw, x] }
"""


def by_hand() -> dict[str, np.ndarray]:
    return {
        "fc.weight": np.array([[1, 2], [3, 4]], np.float32),
        "fc.bias": np.array([1, -1], np.float32),
        "layer_scale": np.array([0.5, 0.25], np.float32).reshape(2, 1, 1),
    }


@pytest.mark.unit
def test_the_factor_moves_into_the_linear_layer_by_hand() -> None:
    typed = bind(elaborate(SourceFile("t.net", SPEC)))
    weights = by_hand()
    done = fold_layer_scale(typed, weights)
    assert [(f.kept, f.merged) for f in done.folds] == [("fc", ("scale layer_scale",))]
    # Output channel o of fc (row o of its [out, in] weight, and its bias) times factor o.
    np.testing.assert_array_equal(done.weights["fc.weight"], [[0.5, 1.0], [0.75, 1.0]])
    np.testing.assert_array_equal(done.weights["fc.bias"], [0.5, -0.25])
    assert weights["fc.weight"].tolist() == [[1, 2], [3, 4]]  # the given arrays are left as they are
    (remaining,) = [n for n in done.typed.graph.nodes if n.name == "scale"]
    assert remaining.type == "Eltwise" and remaining.inputs == ("nchw", "x")
    assert done.typed.of("scale").outputs == typed.of("scale").outputs


@pytest.mark.ort
def test_a_scale_without_a_residual_folds_to_an_identity() -> None:
    typed = bind(elaborate(SourceFile("t.net", SPEC.replace("bottom: [nchw, x]", "bottom: nchw"))))
    done = fold_layer_scale(typed, by_hand())
    np.testing.assert_array_equal(done.weights["fc.weight"], [[0.5, 1.0], [0.75, 1.0]])
    (remaining,) = [n for n in done.typed.graph.nodes if n.name == "scale"]
    # Dropout is the identity at inference, emitted as an Identity the emitter elides.
    assert remaining.type == "Dropout" and remaining.inputs == ("nchw",)
    model = compile_graph(typed, by_hand())
    assert "Mul" not in [n.op_type for n in model.graph.node]
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    (got,) = create_session(model.SerializeToString(), "cpu").run({"x": x}).values()
    (expected,) = (
        create_session(compile_graph(typed, by_hand(), fold_bn=False).SerializeToString(), "cpu")
        .run({"x": x})
        .values()
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize(
    "change",
    [
        # The linear layer's output is read by another layer too: the factor stays.
        (
            "LayerScale scale { bottom: [nchw, x] }",
            "LayerScale scale { bottom: [nchw, x] }\nReLU other { bottom: fc }",
        ),
        # A Permute that does not bring fc's output features onto the scaled axis.
        ("Permute nchw { order: [0, 3, 1, 2] }", "Permute nchw { order: [0, 2, 1, 3] }"),
        # A non-linear layer in between.
        ("Permute nchw { order: [0, 3, 1, 2] }", "ReLU relu\nPermute nchw { order: [0, 3, 1, 2] }"),
    ],
    ids=["another-reader", "other-axis", "relu-between"],
)
def test_a_factor_that_cannot_fold_stays(change: tuple[str, str]) -> None:
    text = SPEC.replace(*change)
    typed = bind(elaborate(SourceFile("t.net", text)))
    weights = initialize_weights(typed, 0)
    done = fold_layer_scale(typed, weights)
    assert done.folds == () and done.typed.graph.nodes == typed.graph.nodes


@pytest.mark.zoo
@pytest.mark.ort
def test_convnext_compiles_without_its_18_layer_scale_multiplies() -> None:
    typed = bind(load_graph("convnext_tiny"), 1, {"data": (1, 3, 64, 64)})
    rng = np.random.default_rng(0)
    weights = initialize_weights(typed, 0)
    for name in weights:
        if name.endswith("layer_scale"):  # torchvision's 1e-6 would hide the blocks
            weights[name] = rng.uniform(0.1, 1.0, weights[name].shape).astype(np.float32)
    folded, kept = compile_graph(typed, weights), compile_graph(typed, weights, fold_bn=False)
    removed = Counter(n.op_type for n in kept.graph.node) - Counter(n.op_type for n in folded.graph.node)
    assert removed == Counter({"Mul": 18})  # one per CNBlock: 3 + 3 + 9 + 3
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    (got,) = create_session(folded.SerializeToString(), "cpu").run({"data": x}).values()
    (expected,) = create_session(kept.SerializeToString(), "cpu").run({"data": x}).values()
    assert float(np.abs(got - expected).max() / np.abs(expected).max()) < 1e-5


class _Recorded(dict):  # type: ignore[type-arg]
    """Weights drawn on reading (as netspec.weights.InitialWeights does), recording each read."""

    def __init__(self, typed: object) -> None:
        super().__init__()
        self.shapes = {name: a.spec.shape for name, a in typed.expected_arrays.items()}  # type: ignore[attr-defined]
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        self.read.add(name)
        return np.full(self.shapes[name], 0.5, np.float32)

    def __contains__(self, name: object) -> bool:
        return name in self.shapes


@pytest.mark.zoo
def test_the_folding_passes_read_only_the_arrays_they_fold() -> None:
    from netspec.passes import folding_passes, run_passes

    # VGG-16 has nothing to fold: not one of its 138 M values may be drawn by asking.
    vgg = bind(load_graph("vgg16"))
    weights = _Recorded(vgg)
    assert run_passes(vgg, weights, folding_passes()).folds == ()
    assert weights.read == set()
    # ConvNeXt-T: each block's layer_scale and the InnerProduct it folds into, nothing else.
    convnext = bind(load_graph("convnext_tiny"))
    weights = _Recorded(convnext)
    folds = run_passes(convnext, weights, folding_passes()).folds
    assert len(folds) == 18
    expected = {f"{f.kept}.{array}" for f in folds for array in ("weight", "bias")}
    expected |= {f"{f.kept.rsplit('.block.', 1)[0]}.layer_scale" for f in folds}
    assert weights.read == expected
