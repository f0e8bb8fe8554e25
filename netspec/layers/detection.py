"""Faster R-CNN's test-time box stages inside the graph: the region proposal layer (anchors,
box decoding, clipping, minimum size, non-maximum suppression) and the per-class detection
stage (class-specific decoding, score threshold, NMS, the best detections of the image).

Both follow py-faster-rcnn (``lib/rpn/proposal_layer.py``, ``lib/fast_rcnn/test.py``) with its
pixel convention (a box [x1, y1, x2, y2] is x2 − x1 + 1 wide) and lower to ONNX TopK, Gather and
NonMaxSuppression. Their outputs have a fixed size: where fewer boxes survive, the rest is
padding (stated per layer). The float64 references order and break ties as onnxruntime does:
scores descending, equal scores by lower index; a box is suppressed when its IoU with a kept box
is greater than the threshold, and a score must be greater than the score threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import (
    Arity,
    Emitter,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    ListOf,
    expect_rank,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np

# NOTE: ONNX NonMaxSuppression measures boxes without py-faster-rcnn's +1; the same IoU comes out
# when x2 and y2 move one pixel out, which this offset does before every NMS.
PIXEL_EXTENT = (0.0, 0.0, 1.0, 1.0)
DECODE_FLOPS = 20  # per box: sizes, centres, shifted centres, exp-scaled sizes, corners


def generate_anchors(base_size: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """py-faster-rcnn's ``generate_anchors``: a base_size square at the origin reshaped to each
    aspect ratio (area kept, sides rounded half to even as numpy rounds) and scaled; [A, 4]
    ordered ratio-major."""

    def corners(widths: np.ndarray, heights: np.ndarray, cx: float, cy: float) -> np.ndarray:
        return np.stack(
            [
                cx - 0.5 * (widths - 1),
                cy - 0.5 * (heights - 1),
                cx + 0.5 * (widths - 1),
                cy + 0.5 * (heights - 1),
            ],
            axis=1,
        )

    centre = 0.5 * (base_size - 1)
    widths = np.round(np.sqrt(base_size * base_size / np.asarray(ratios, np.float64)))
    heights = np.round(widths * np.asarray(ratios, np.float64))
    anchors = []
    for w, h in zip(widths, heights, strict=True):
        anchors.append(corners(w * np.asarray(scales), h * np.asarray(scales), centre, centre))
    return np.concatenate(anchors, axis=0)


def shifted_anchors(anchors: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """Every anchor at every feature-map position, [H·W·A, 4], ordered (y, x, anchor) as the
    proposal layer reads its score and delta maps."""
    ys, xs = np.meshgrid(np.arange(height) * stride, np.arange(width) * stride, indexing="ij")
    shifts = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    return (shifts[:, None, :] + anchors[None, :, :]).reshape(-1, 4)


def decode_boxes(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """py-faster-rcnn's ``bbox_transform_inv`` over the last axis (x1, y1, x2, y2 / dx, dy, dw, dh)."""
    widths = boxes[..., 2] - boxes[..., 0] + 1.0
    heights = boxes[..., 3] - boxes[..., 1] + 1.0
    cx, cy = boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights
    pcx, pcy = deltas[..., 0] * widths + cx, deltas[..., 1] * heights + cy
    pw, ph = np.exp(deltas[..., 2]) * widths, np.exp(deltas[..., 3]) * heights
    return np.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], axis=-1)


def clip_boxes(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Corners clipped to the image: x to [0, width − 1], y to [0, height − 1]."""
    limits = np.array([width - 1.0, height - 1.0, width - 1.0, height - 1.0])
    return np.minimum(np.maximum(boxes, 0.0), limits)


def ranked(scores: np.ndarray) -> np.ndarray:
    """Indices by score, descending, equal scores by lower index (ONNX TopK's order)."""
    return np.lexsort((np.arange(len(scores)), -scores))


def greedy_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float
) -> list[int]:
    """onnxruntime's NonMaxSuppression for one class, with py-faster-rcnn's +1 box extent: the
    indices kept, best first. Boxes with score ≤ score_threshold take no part. Both thresholds
    are compared as the float32 values the ONNX graph holds."""
    iou_threshold, score_threshold = float(np.float32(iou_threshold)), float(np.float32(score_threshold))
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    kept: list[int] = []
    for index in ranked(scores):
        if scores[index] <= score_threshold:
            break
        if kept:
            others = boxes[kept]
            w = np.minimum(others[:, 2], boxes[index, 2]) - np.maximum(others[:, 0], boxes[index, 0]) + 1.0
            h = np.minimum(others[:, 3], boxes[index, 3]) - np.maximum(others[:, 1], boxes[index, 1]) + 1.0
            inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
            if np.any(inter / (areas[kept] + areas[index] - inter) > iou_threshold):
                continue
        kept.append(int(index))
    return kept


def _column(node: Emitter, source: str, start: int, suffix: str, axis: int = 1) -> str:
    """``source[..., start:start + 1]`` along ``axis`` (kept as a size-1 axis)."""
    out = node.temp(suffix)
    starts = node.constant(f"{suffix}_start", np.array([start], np.int64))
    ends = node.constant(f"{suffix}_end", np.array([start + 1], np.int64))
    axes = node.constant(f"{suffix}_axis", np.array([axis], np.int64))
    node.add("Slice", [source, starts, ends, axes], [out])
    return out


def _emit_decode(node: Emitter, boxes: str, deltas: str, axis: int, prefix: str) -> str:
    """ONNX nodes of :func:`decode_boxes`: ``boxes`` and ``deltas`` hold 4 values along
    ``axis`` (broadcasting elsewhere); returns the decoded corners, 4 along ``axis``."""
    x1, y1, x2, y2 = (_column(node, boxes, i, f"{prefix}_box{i}", axis) for i in range(4))
    dx, dy, dw, dh = (_column(node, deltas, i, f"{prefix}_delta{i}", axis) for i in range(4))
    one, half = (
        node.constant(f"{prefix}_one", np.array(1.0, np.float32)),
        node.constant(f"{prefix}_half", np.array(0.5, np.float32)),
    )
    names = {}
    for axis_name, low, high, shift, scale in (("x", x1, x2, dx, dw), ("y", y1, y2, dy, dh)):
        t = {
            k: node.temp(f"{prefix}_{axis_name}_{k}")
            for k in ("span", "size", "half", "ctr", "moved", "pctr", "exp", "psize", "phalf", "lo", "hi")
        }
        node.add("Sub", [high, low], [t["span"]])
        node.add("Add", [t["span"], one], [t["size"]])
        node.add("Mul", [t["size"], half], [t["half"]])
        node.add("Add", [low, t["half"]], [t["ctr"]])
        node.add("Mul", [shift, t["size"]], [t["moved"]])
        node.add("Add", [t["moved"], t["ctr"]], [t["pctr"]])
        node.add("Exp", [scale], [t["exp"]])
        node.add("Mul", [t["exp"], t["size"]], [t["psize"]])
        node.add("Mul", [t["psize"], half], [t["phalf"]])
        node.add("Sub", [t["pctr"], t["phalf"]], [t["lo"]])
        node.add("Add", [t["pctr"], t["phalf"]], [t["hi"]])
        names[axis_name] = (t["lo"], t["hi"])
    decoded = node.temp(f"{prefix}_decoded")
    node.add("Concat", [names["x"][0], names["y"][0], names["x"][1], names["y"][1]], [decoded], axis=axis)
    return decoded


def _emit_clip(node: Emitter, boxes: str, im_info: str, rank: int, prefix: str) -> str:
    """Corners clipped to the image that ``im_info`` [1, 3] = (height, width, scale) gives."""
    height, width = (
        _column(node, im_info, 0, f"{prefix}_height"),
        _column(node, im_info, 1, f"{prefix}_width"),
    )
    sizes, limits = node.temp(f"{prefix}_sizes"), node.temp(f"{prefix}_limits")
    node.add("Concat", [width, height, width, height], [sizes], axis=1)  # [1, 4]
    flat_limits = node.temp(f"{prefix}_limits_flat")
    node.add("Sub", [sizes, node.constant(f"{prefix}_one_px", np.array(1.0, np.float32))], [flat_limits])
    shape = node.constant(f"{prefix}_limits_shape", np.array([1] * (rank - 1) + [4], np.int64))
    node.add("Reshape", [flat_limits, shape], [limits])
    low, clipped = node.temp(f"{prefix}_low"), node.temp(f"{prefix}_clipped")
    node.add("Max", [boxes, node.constant(f"{prefix}_zero", np.array(0.0, np.float32))], [low])
    node.add("Min", [low, limits], [clipped])
    return clipped


def _check_im_info(im_info: TensorType) -> None:
    if im_info.dims != (1, 3):
        raise LayerError(
            f"expects the image info [1, 3] = (height, width, scale) as its last input, got {im_info}",
            hint="py-faster-rcnn tests one image at a time",
        )


@register
class Proposal(Layer["Proposal.Params"]):
    """Faster R-CNN's region proposal layer (py-faster-rcnn ``rpn.proposal_layer``) at test time.

    Inputs: the RPN's object probabilities [1, 2A, H, W] (background maps, then foreground),
    its box deltas [1, 4A, H, W] and the image info [1, 3] = (height, width, scale). The A =
    len(ratios)·len(scales) anchors of ``generate_anchors`` are shifted to every feature-map
    position (``feat_stride`` apart) and decoded by the deltas; corners are clipped to the image,
    boxes narrower or lower than min_size·scale are dropped, the best ``pre_nms_top_n`` by
    foreground probability go through NMS at ``nms_threshold``, and the first
    ``post_nms_top_n`` kept become the output [post_nms_top_n, 5] = (0, x1, y1, x2, y2).

    Fixed size: where fewer boxes survive, the remaining rows repeat the best proposal (a
    duplicate of a kept box, which the detection stage's NMS removes again). No params, no
    MACs; FLOPs = 20 per anchor position (the decoding; NMS comparisons are data-dependent and
    not counted). Batch 1 only, as in py-faster-rcnn.
    """

    type_name = "Proposal"
    arity = Arity(3, 3)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        feat_stride: int = param(Int(min=1), 16, "image pixels between feature-map positions")
        base_size: int = param(Int(min=1), 16, "side of the base anchor")
        ratios: tuple[float, ...] = param(
            ListOf(Float(min=0, exclusive_min=True), min_length=1),
            (0.5, 1.0, 2.0),
            "anchor aspect ratios h/w",
        )
        scales: tuple[float, ...] = param(
            ListOf(Float(min=0, exclusive_min=True), min_length=1), (8.0, 16.0, 32.0), "anchor scales"
        )
        pre_nms_top_n: int = param(Int(min=1), 6000, "boxes ranked by score before NMS (test: 6000)")
        post_nms_top_n: int = param(Int(min=1), 300, "proposals kept after NMS (test: 300)")
        nms_threshold: float = param(Float(min=0, max=1), 0.7, "IoU above which a box is suppressed")
        min_size: float = param(Float(min=0), 16.0, "smallest box side, in pixels of the unscaled image")

    def anchor_count(self) -> int:
        return len(self.params.ratios) * len(self.params.scales)

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        scores, deltas, im_info = inputs
        expect_rank(scores, 4, "score map")
        expect_rank(deltas, 4, "delta map")
        anchors = self.anchor_count()
        if scores.dims[0] != 1 or static_dim(scores, 1) != 2 * anchors:
            raise LayerError(
                f"expects object probabilities [1, {2 * anchors}, H, W] for {anchors} anchors, got {scores}"
            )
        if deltas.dims != (1, 4 * anchors, *scores.dims[2:]):
            raise LayerError(
                f"expects box deltas [1, {4 * anchors}, H, W] on the score map's grid, got {deltas}"
            )
        _check_im_info(im_info)
        return (TensorType((self.params.post_nms_top_n, 5), scores.dtype),)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return DECODE_FLOPS * self.anchor_count() * static_dim(inputs[0], 2) * static_dim(inputs[0], 3)

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def sample_input(
        self, index: int, input_types: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray | None:
        """Inputs of the right kind for differential checks: probabilities in [0, 1], deltas of
        a trained RPN's size, and the image the feature map covers (scale 1)."""
        dims = input_types[index].static_dims
        if index == 0:
            return rng.uniform(0.0, 1.0, dims).astype(np.float32)
        if index == 1:
            return (0.3 * rng.standard_normal(dims)).astype(np.float32)
        grid = input_types[0]
        stride = self.params.feat_stride
        return np.array([[static_dim(grid, 2) * stride, static_dim(grid, 3) * stride, 1.0]], np.float32)

    def anchors(self, height: int, width: int) -> np.ndarray:
        p = self.params
        return shifted_anchors(
            generate_anchors(p.base_size, p.ratios, p.scales), height, width, p.feat_stride
        )

    def candidates(self, height: int, width: int) -> int:
        return min(self.params.pre_nms_top_n, height * width * self.anchor_count())

    def emit(self, node: Emitter) -> None:
        p, count = self.params, self.anchor_count()
        height, width = static_dim(node.input_types[0], 2), static_dim(node.input_types[0], 3)
        total, top = height * width * count, self.candidates(height, width)
        probs, deltas, im_info = node.inputs
        fg, fg_t, fg_flat = node.temp("fg"), node.temp("fg_t"), node.temp("scores")
        node.add(
            "Slice",
            [
                probs,
                *(
                    node.constant(k, np.array(v, np.int64))
                    for k, v in (("fg_start", [count]), ("fg_end", [2 * count]), ("fg_axis", [1]))
                ),
            ],
            [fg],
        )
        node.add("Transpose", [fg], [fg_t], perm=[0, 2, 3, 1])
        node.add("Reshape", [fg_t, node.constant("scores_shape", np.array([total], np.int64))], [fg_flat])
        deltas_t, deltas_flat = node.temp("deltas_t"), node.temp("deltas")
        node.add("Transpose", [deltas], [deltas_t], perm=[0, 2, 3, 1])
        node.add(
            "Reshape",
            [deltas_t, node.constant("deltas_shape", np.array([total, 4], np.int64))],
            [deltas_flat],
        )
        anchors = node.constant("anchors", self.anchors(height, width).astype(np.float32))
        boxes = _emit_clip(node, _emit_decode(node, anchors, deltas_flat, 1, "decode"), im_info, 2, "clip")
        # Boxes below the minimum size score −1: ranked last, and below NMS's score threshold.
        scale = _column(node, im_info, 2, "scale")
        smallest = node.temp("smallest")
        node.add("Mul", [scale, node.constant("min_size", np.array(p.min_size, np.float32))], [smallest])
        extents = {}
        for name, lo, hi in (("w", 0, 2), ("h", 1, 3)):
            span, side, big = node.temp(f"span_{name}"), node.temp(f"side_{name}"), node.temp(f"big_{name}")
            node.add(
                "Sub",
                [_column(node, boxes, hi, f"hi_{name}"), _column(node, boxes, lo, f"lo_{name}")],
                [span],
            )
            node.add("Add", [span, node.constant(f"one_{name}", np.array(1.0, np.float32))], [side])
            node.add("GreaterOrEqual", [side, smallest], [big])
            extents[name] = big
        big_enough, big_flat, filtered = node.temp("big_enough"), node.temp("big_flat"), node.temp("filtered")
        node.add("And", [extents["w"], extents["h"]], [big_enough])
        node.add("Reshape", [big_enough, node.constant("big_shape", np.array([total], np.int64))], [big_flat])
        node.add(
            "Where", [big_flat, fg_flat, node.constant("dropped", np.array(-1.0, np.float32))], [filtered]
        )
        top_scores, top_index, top_boxes = (
            node.temp("top_scores"),
            node.temp("top_index"),
            node.temp("top_boxes"),
        )
        node.add(
            "TopK",
            [filtered, node.constant("top_k", np.array([top], np.int64))],
            [top_scores, top_index],
            axis=0,
        )
        node.add("Gather", [boxes, top_index], [top_boxes], axis=0)
        selected = _emit_nms(
            node,
            top_boxes,
            top_scores,
            [1, top, 4],
            [1, 1, top],
            p.post_nms_top_n,
            p.nms_threshold,
            -0.5,
            "nms",
        )
        kept = _selected_column(node, selected, 2, "kept")
        padded, first = node.temp("padded"), node.temp("first")
        node.add(
            "Concat", [kept, node.constant("padding", np.zeros(p.post_nms_top_n, np.int64))], [padded], axis=0
        )
        node.add(
            "Slice",
            [
                padded,
                node.constant("pad_start", np.array([0], np.int64)),
                node.constant("pad_end", np.array([p.post_nms_top_n], np.int64)),
            ],
            [first],
        )
        proposals = node.temp("proposals")
        node.add("Gather", [top_boxes, first], [proposals], axis=0)
        node.add(
            "Concat",
            [node.constant("image_index", np.zeros((p.post_nms_top_n, 1), np.float32)), proposals],
            node.outputs,
            axis=1,
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p, count = self.params, self.anchor_count()
        probs, deltas, im_info = (np.asarray(x, np.float64) for x in inputs)
        height, width = probs.shape[2:]
        scores = probs[0, count:].transpose(1, 2, 0).ravel()
        boxes = decode_boxes(self.anchors(height, width), deltas[0].transpose(1, 2, 0).reshape(-1, 4))
        boxes = clip_boxes(boxes, im_info[0, 0], im_info[0, 1])
        smallest = p.min_size * im_info[0, 2]
        big = (boxes[:, 2] - boxes[:, 0] + 1 >= smallest) & (boxes[:, 3] - boxes[:, 1] + 1 >= smallest)
        scores = np.where(big, scores, -1.0)
        order = ranked(scores)[: self.candidates(height, width)]
        boxes, scores = boxes[order], scores[order]
        kept = greedy_nms(boxes, scores, p.nms_threshold, -0.5)[: p.post_nms_top_n]
        kept += [0] * (p.post_nms_top_n - len(kept))
        return [np.concatenate([np.zeros((len(kept), 1)), boxes[kept]], axis=1)]


def _selected_column(node: Emitter, selected: str, column: int, suffix: str) -> str:
    """Column ``column`` of NonMaxSuppression's [K, 3] output as a [K] vector."""
    cut, flat = node.temp(f"{suffix}_column"), node.temp(suffix)
    node.add("Gather", [selected, node.constant(f"{suffix}_at", np.array([column], np.int64))], [cut], axis=1)
    node.add("Reshape", [cut, node.constant(f"{suffix}_shape", np.array([-1], np.int64))], [flat])
    return flat


def _emit_nms(
    node: Emitter,
    boxes: str,
    scores: str,
    boxes_shape: list[int],
    scores_shape: list[int],
    max_boxes: int,
    iou_threshold: float,
    score_threshold: float,
    prefix: str,
) -> str:
    """NonMaxSuppression over ``boxes`` (given the +1 extent) reshaped to ``boxes_shape``
    [batches, boxes, 4] and ``scores`` to ``scores_shape`` [batches, 1, boxes]; the selected
    [K, 3] (batch, class, box) indices."""
    extended, boxes_3d, scores_3d, selected = (
        node.temp(f"{prefix}_{k}") for k in ("extended", "boxes", "scores", "selected")
    )
    extent = node.constant(f"{prefix}_extent", np.array(PIXEL_EXTENT, np.float32))
    node.add("Add", [boxes, extent], [extended])
    node.add(
        "Reshape",
        [extended, node.constant(f"{prefix}_boxes_shape", np.array(boxes_shape, np.int64))],
        [boxes_3d],
    )
    node.add(
        "Reshape",
        [scores, node.constant(f"{prefix}_scores_shape", np.array(scores_shape, np.int64))],
        [scores_3d],
    )
    node.add(
        "NonMaxSuppression",
        [
            boxes_3d,
            scores_3d,
            node.constant(f"{prefix}_max", np.array([max_boxes], np.int64)),
            node.constant(f"{prefix}_iou", np.array([iou_threshold], np.float32)),
            node.constant(f"{prefix}_score", np.array([score_threshold], np.float32)),
        ],
        [selected],
    )
    return selected


@register
class RCNNDetection(Layer["RCNNDetection.Params"]):
    """Fast R-CNN's test-time detections (py-faster-rcnn ``fast_rcnn.test.im_detect`` and
    ``test_net``): each region of ``rois`` [R, 5] is decoded by its class-specific deltas
    (``bbox_pred`` [R, 4C]) and clipped to the image (``im_info`` [1, 3]); for every class but the
    background (0), regions scoring above ``score_threshold`` in ``cls_prob`` [R, C] go through
    NMS at ``nms_threshold``; of all kept, the ``max_detections`` best by score are the outputs:
    boxes [M, 4] (x1, y1, x2, y2 in the network input's pixels), scores [M] and labels [M]
    (int64 class indices), best first, equal scores in class order.

    Fixed size: rows past the detections found are padding (box 0, score 0, label −1). Unlike
    test_net, which keeps every detection tied with the 100th best, exactly M are kept. No
    params, no MACs; FLOPs = 20 per region and class (the decoding).
    """

    type_name = "RCNNDetection"
    arity = Arity(4, 4)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        score_threshold: float = param(Float(min=0, max=1), 0.05, "least class score considered (test: 0.05)")
        nms_threshold: float = param(
            Float(min=0, max=1), 0.3, "IoU above which a box is suppressed (test: 0.3)"
        )
        max_detections: int = param(Int(min=1), 100, "detections kept per image (test: 100)")

    def output_arity(self) -> Arity:
        return Arity(3, 3)

    def classes(self, inputs: Sequence[TensorType]) -> tuple[int, int]:
        rois, probs, deltas, im_info = inputs
        if rois.rank != 2 or rois.dims[1] != 5:
            raise LayerError(f"expects regions [R, 5] as its first input, got {rois}")
        regions, classes = static_dim(rois, 0), static_dim(probs, 1) if probs.rank == 2 else 0
        if probs.dims != (regions, classes) or classes < 2:
            raise LayerError(f"expects class scores [{regions}, C] (C ≥ 2, background first), got {probs}")
        if deltas.dims != (regions, 4 * classes):
            raise LayerError(f"expects box deltas [{regions}, {4 * classes}] (4 per class), got {deltas}")
        _check_im_info(im_info)
        return regions, classes

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.classes(inputs)
        m, dtype = self.params.max_detections, inputs[1].dtype
        return (TensorType((m, 4), dtype), TensorType((m,), dtype), TensorType((m,), "int64"))

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        regions, classes = self.classes(inputs)
        return DECODE_FLOPS * regions * classes

    def spatial_windows(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> None:
        return None

    def sample_input(
        self, index: int, input_types: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray | None:
        """Regions inside a 100×150 image, class probabilities that sum to one, deltas of a
        trained head's size and that image's info."""
        regions, classes = self.classes(input_types)
        if index == 0:
            xs = np.sort(rng.uniform(0, 149, (regions, 2)), axis=1)
            ys = np.sort(rng.uniform(0, 99, (regions, 2)), axis=1)
            return np.stack([np.zeros(regions), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(
                np.float32
            )
        if index == 1:
            logits = rng.standard_normal((regions, classes))
            return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
        if index == 2:
            return (0.3 * rng.standard_normal((regions, 4 * classes))).astype(np.float32)
        return np.array([[100.0, 150.0, 1.0]], np.float32)

    def emit(self, node: Emitter) -> None:
        p = self.params
        regions, classes = self.classes(node.input_types)
        rois, probs, deltas, im_info = node.inputs
        # Regions [R, 1, 4] against deltas [R, C, 4]: decoded per class, clipped.
        corners, region_boxes, class_deltas = (
            node.temp("corners"),
            node.temp("region_boxes"),
            node.temp("class_deltas"),
        )
        node.add(
            "Slice",
            [
                rois,
                *(
                    node.constant(k, np.array(v, np.int64))
                    for k, v in (("corner_start", [1]), ("corner_end", [5]), ("corner_axis", [1]))
                ),
            ],
            [corners],
        )
        node.add(
            "Reshape",
            [corners, node.constant("region_shape", np.array([regions, 1, 4], np.int64))],
            [region_boxes],
        )
        node.add(
            "Reshape",
            [deltas, node.constant("delta_shape", np.array([regions, classes, 4], np.int64))],
            [class_deltas],
        )
        boxes = _emit_clip(
            node, _emit_decode(node, region_boxes, class_deltas, 2, "decode"), im_info, 3, "clip"
        )
        # Classes 1 … C−1 as NMS batches: boxes [C−1, R, 4], scores [C−1, 1, R].
        foreground = {}
        for name, source, axis in (("boxes", boxes, 1), ("scores", probs, 1)):
            cut = node.temp(f"fg_{name}")
            starts, ends = (
                node.constant(f"fg_{name}_start", np.array([1], np.int64)),
                node.constant(f"fg_{name}_end", np.array([classes], np.int64)),
            )
            node.add(
                "Slice",
                [source, starts, ends, node.constant(f"fg_{name}_axis", np.array([axis], np.int64))],
                [cut],
            )
            moved = node.temp(f"class_{name}")
            node.add("Transpose", [cut], [moved], perm=[1, 0, 2] if name == "boxes" else [1, 0])
            foreground[name] = moved
        selected = _emit_nms(
            node,
            foreground["boxes"],
            foreground["scores"],
            [classes - 1, regions, 4],
            [classes - 1, 1, regions],
            regions,
            p.nms_threshold,
            p.score_threshold,
            "nms",
        )
        label = _selected_column(node, selected, 0, "class_index")
        region = _selected_column(node, selected, 2, "region_index")
        flat = node.temp("flat_index")
        offset = node.temp("class_offset")
        node.add("Mul", [label, node.constant("regions", np.array(regions, np.int64))], [offset])
        node.add("Add", [offset, region], [flat])
        all_scores, all_boxes = node.temp("all_scores"), node.temp("all_boxes")
        node.add(
            "Reshape",
            [foreground["scores"], node.constant("scores_flat", np.array([-1], np.int64))],
            [all_scores],
        )
        node.add(
            "Reshape",
            [foreground["boxes"], node.constant("boxes_flat", np.array([-1, 4], np.int64))],
            [all_boxes],
        )
        found_scores, found_boxes, found_labels = (
            node.temp("found_scores"),
            node.temp("found_boxes"),
            node.temp("found_labels"),
        )
        node.add("Gather", [all_scores, flat], [found_scores], axis=0)
        node.add("Gather", [all_boxes, flat], [found_boxes], axis=0)
        node.add("Add", [label, node.constant("label_offset", np.array(1, np.int64))], [found_labels])
        # The best M of the K found: TopK with k = min(K, M).
        found, k = node.temp("found"), node.temp("k")
        node.add("Shape", [found_scores], [found])
        node.add("Min", [found, node.constant("max_detections", np.array([p.max_detections], np.int64))], [k])
        best_scores, best = node.temp("best_scores"), node.temp("best")
        node.add("TopK", [found_scores, k], [best_scores, best], axis=0)
        picks = {"boxes": found_boxes, "labels": found_labels}
        padding: dict[str, np.ndarray] = {
            "boxes": np.zeros((p.max_detections, 4), np.float32),
            "scores": np.zeros(p.max_detections, np.float32),
            "labels": np.full(p.max_detections, -1, np.int64),
        }
        chosen = {"scores": best_scores}
        for name in ("boxes", "labels"):
            chosen[name] = node.temp(f"best_{name}")
            node.add("Gather", [picks[name], best], [chosen[name]], axis=0)
        for output, name in zip(node.outputs, ("boxes", "scores", "labels"), strict=True):
            joined = node.temp(f"padded_{name}")
            node.add(
                "Concat", [chosen[name], node.constant(f"{name}_padding", padding[name])], [joined], axis=0
            )
            node.add(
                "Slice",
                [
                    joined,
                    node.constant(f"{name}_start", np.array([0], np.int64)),
                    node.constant(f"{name}_end", np.array([p.max_detections], np.int64)),
                ],
                [output],
            )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        rois, probs, deltas, im_info = (np.asarray(x, np.float64) for x in inputs)
        regions, classes = probs.shape
        boxes = decode_boxes(rois[:, None, 1:5], deltas.reshape(regions, classes, 4))
        boxes = clip_boxes(boxes, im_info[0, 0], im_info[0, 1])
        found: list[tuple[np.ndarray, float, int]] = []  # in NMS output order: class, then rank
        for label in range(1, classes):
            for index in greedy_nms(boxes[:, label], probs[:, label], p.nms_threshold, p.score_threshold):
                found.append((boxes[index, label], probs[index, label], label))
        order = ranked(np.array([score for _, score, _ in found], np.float64))[: p.max_detections]
        out_boxes = np.zeros((p.max_detections, 4))
        out_scores = np.zeros(p.max_detections)
        out_labels = np.full(p.max_detections, -1, np.int64)
        for row, index in enumerate(order):
            out_boxes[row], out_scores[row], out_labels[row] = found[index]
        return [out_boxes, out_scores, out_labels]
