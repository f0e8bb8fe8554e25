"""Per-layer tests of Swin's layers (issue 15): ShiftedWindowAttention and PatchMerge. Shapes
and hand-computed counts; each configuration (plain, shifted, padded, a window covering the
map) compiled to ONNX at opsets 13 and 21 and run in onnxruntime against the float64
reference, static and dynamic batch; the relative-position index, the shift mask and the
attention itself against independent formulas written out here.

Each case is one layer statement named ``layer`` reading input ``a`` (``N`` is bound to 2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_layers import Case, assert_shape_and_counts, case_params, compile_error, reference_of, run_case

from netspec.layers.swin import relative_position_index, shift_mask

CASES = [
    # params 4·8² + 4·8 + 13²·2 = 626; buffers 7⁴ = 2401; MACs 2·49·(4·64 + 2·49·8) = 101920;
    # FLOPs 2·101920 + 2·49·(32 + 8 + 4·49·2) = 246176
    Case(
        "window",
        "ShiftedWindowAttention layer { num_heads: 2 }",
        (("N", 7, 7, 8),),
        (2, 7, 7, 8),
        params=626,
        buffers=2401,
        macs=101920,
        flops=246176,
    ),
    # w 4, shift 2 on 8×8: params 288 + 7²·2 = 386; buffers 256; MACs 2·64·(256 + 2·16·8) = 65536;
    # FLOPs 131072 + 2·64·(40 + 4·16·2) = 152576
    Case(
        "shifted",
        "ShiftedWindowAttention layer { num_heads: 2  window_size: 4  shift_size: 2 }",
        (("N", 8, 8, 8),),
        (2, 8, 8, 8),
        params=386,
        buffers=256,
        macs=65536,
        flops=152576,
    ),
    # 6×5 padded to 8×8, 2 heads: params 4·16 + 16 + 49·2 = 178; MACs 2·64·(64 + 2·16·4) = 24576;
    # FLOPs 49152 + 2·64·(16 + 4 + 4·16·2) = 68096
    Case(
        "shifted-padded",
        "ShiftedWindowAttention layer { num_heads: 2  window_size: 4  shift_size: 2 }",
        (("N", 6, 5, 4),),
        (2, 6, 5, 4),
        params=178,
        buffers=256,
        macs=24576,
        flops=68096,
    ),
    # 3×3 padded to one 7×7 window: no shift (torchvision's rule); params 80 + 169 = 249;
    # MACs 2·49·(64 + 2·49·4) = 44688; FLOPs 89376 + 2·49·(20 + 4·49) = 110544
    Case(
        "window-covers-map",
        "ShiftedWindowAttention layer { num_heads: 1  shift_size: 3 }",
        (("N", 3, 3, 4),),
        (2, 3, 3, 4),
        params=249,
        buffers=2401,
        macs=44688,
        flops=110544,
    ),
    Case("patch-merge", "PatchMerge layer", (("N", 4, 6, 3),), (2, 2, 3, 12)),
    Case("patch-merge-odd", "PatchMerge layer", (("N", 5, 3, 2),), (2, 3, 2, 8)),
]


@pytest.mark.unit
@pytest.mark.parametrize("case", case_params(CASES))
def test_shape_and_counts(case: Case) -> None:
    assert_shape_and_counts(case, (case.output,))


@pytest.mark.ort
@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_onnx_matches_reference(case: Case, dynamic: bool, opset: int) -> None:
    run_case(case, dynamic=dynamic, opset=opset)


@pytest.mark.unit
def test_relative_position_index() -> None:
    # window 2: positions (0,0) (0,1) (1,0) (1,1); index (Δy + 1)·3 + (Δx + 1)
    index = relative_position_index(2).reshape(4, 4)
    assert index[0].tolist() == [4, 3, 1, 0]  # (0,0) against each: Δ = (0,0) (0,−1) (−1,0) (−1,−1)
    assert index[3].tolist() == [8, 7, 5, 4]
    assert relative_position_index(7).max() == 13 * 13 - 1


@pytest.mark.unit
def test_shift_mask_separates_the_regions_a_roll_joins() -> None:
    # 4×4 map, window 2, shift 1: the last window (bottom right) holds pixels of 4 regions
    mask = shift_mask(4, 4, 2, (1, 1))
    assert mask.shape == (4, 4, 4)
    assert (mask[0] == 0).all()  # the first window lies inside one region
    last = mask[3]
    assert (np.diag(last) == 0).all() and (last[0, 1:] == -100).all()


def naive_window_attention(x: np.ndarray, weights: dict, heads: int, window: int, shift: int) -> np.ndarray:
    """Swin's attention written position by position: roll, then each pixel attends to the
    pixels of its window that came from its own region of the unrolled image (others get −100)."""
    batch, height, width, channels = x.shape
    head = channels // heads
    rolled = np.roll(x, (-shift, -shift), axis=(1, 2))

    # region labels of the rolled grid: which of the 3×3 bands of the original each pixel is in
    def band(i: int, size: int) -> int:
        return 0 if i < size - window else (1 if i < size - shift else 2)

    out = np.zeros_like(rolled)
    w, b = weights["qkv.weight"], weights["qkv.bias"]
    table, index = weights["relative_position_bias_table"], relative_position_index(window)
    for n in range(batch):
        for wy in range(0, height, window):
            for wx in range(0, width, window):
                cells = [(wy + i, wx + j) for i in range(window) for j in range(window)]
                tokens = np.array([rolled[n, y, xx] for y, xx in cells])
                qkv = tokens @ w.T + b
                mixed = []
                for h in range(heads):
                    q = qkv[:, h * head : (h + 1) * head]
                    k = qkv[:, channels + h * head : channels + (h + 1) * head]
                    v = qkv[:, 2 * channels + h * head : 2 * channels + (h + 1) * head]
                    scores = q @ k.T / math.sqrt(head)
                    for i, (yi, xi) in enumerate(cells):
                        for j, (yj, xj) in enumerate(cells):
                            scores[i, j] += table[index[i * window * window + j], h]
                            same = (band(yi, height), band(xi, width)) == (band(yj, height), band(xj, width))
                            scores[i, j] += 0.0 if same or not shift else -100.0
                    p = np.exp(scores - scores.max(axis=1, keepdims=True))
                    mixed.append((p / p.sum(axis=1, keepdims=True)) @ v)
                projected = np.concatenate(mixed, axis=1) @ weights["proj.weight"].T + weights["proj.bias"]
                for (y, xx), value in zip(cells, projected, strict=True):
                    out[n, y, xx] = value
    return np.roll(out, (shift, shift), axis=(1, 2))


@pytest.mark.unit
@pytest.mark.parametrize("shift", [0, 1])
def test_window_attention_reference_against_a_naive_one(shift: int) -> None:
    rng = np.random.default_rng(1)
    channels, heads, window = 4, 2, 2
    x = rng.standard_normal((1, 4, 4, channels))
    weights = {
        "qkv.weight": rng.standard_normal((3 * channels, channels)),
        "qkv.bias": rng.standard_normal(3 * channels),
        "proj.weight": rng.standard_normal((channels, channels)),
        "proj.bias": rng.standard_normal(channels),
        "relative_position_bias_table": rng.standard_normal((9, heads)),
        "relative_position_index": relative_position_index(window).astype(np.float32),
    }
    got = reference_of(
        "ShiftedWindowAttention", [x], weights, num_heads=heads, window_size=window, shift_size=shift
    )
    np.testing.assert_allclose(got, naive_window_attention(x, weights, heads, window, shift), rtol=1e-10)


@pytest.mark.unit
def test_patch_merge_order() -> None:
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    got = reference_of("PatchMerge", [x])
    # torchvision: x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]
    assert got[0, 0, 0].tolist() == [0, 4, 1, 5]
    assert got[0, 1, 1].tolist() == [10, 14, 11, 15]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input a: [N, 7, 7, 6]\nShiftedWindowAttention s { num_heads: 4 }",
            "num_heads 4 does not divide the 6 channels",
        ),
        (
            "input a: [N, 7, 7, 8]\nShiftedWindowAttention s { num_heads: 2  shift_size: 7 }",
            "shift_size 7 must be below window_size 7",
        ),
        ("input a: [N, 7, 8]\nPatchMerge p", "expects a channels-last feature map [N, H, W, C]"),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert message in compile_error(text)
