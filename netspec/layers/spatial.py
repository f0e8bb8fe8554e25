"""Layers that resample feature maps by coordinates: the spatial transformer's affine grid and
grid sampling, RoI max pooling and RoI align over region boxes, and resizing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from netspec.graph import TensorType
from netspec.layers.base import (
    Arity,
    Bool,
    Emitter,
    Enum,
    Float,
    Int,
    Layer,
    LayerError,
    LayerParams,
    P,
    Spatial,
    Window,
    batch_size,
    emit_reshape,
    expect_rank,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np

AFFINE_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))

# NOTE: onnxruntime has CPU kernels for MaxRoiPool and RoiAlign only up to opset 21 (DESIGN.md §6).
ROI_MAX_OPSET = 21


def normalized_coordinates(size: int, align_corners: bool) -> np.ndarray:
    """The [-1, 1] coordinates of the ``size`` pixel centres along one axis (torch's
    ``affine_grid``/``grid_sample`` convention): with ``align_corners`` −1 and 1 are the centres
    of the first and last pixels, without it they are the outer edges of the image."""
    index = np.arange(size, dtype=np.float64)
    if align_corners:
        return index * 2.0 / (size - 1) - 1.0 if size > 1 else np.zeros(1)
    return (2.0 * index + 1.0) / size - 1.0


def pixel_coordinate(normalized: np.ndarray, size: int, align_corners: bool) -> np.ndarray:
    """A [-1, 1] coordinate as a pixel index along an axis of ``size`` pixels (the inverse of
    :func:`normalized_coordinates`)."""
    if align_corners:
        return (normalized + 1.0) / 2.0 * (size - 1)
    return ((normalized + 1.0) * size - 1.0) / 2.0


class Resampling(Layer[P]):
    """A layer whose outputs read the input at computed coordinates, not through a sliding
    window: no receptive field is reported after it."""

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        return None


class InterpolationParams(LayerParams):
    """What the schema of an :class:`Interpolation` layer declares (as a field of its own)."""

    mode: str


InterpolationP = TypeVar("InterpolationP", bound=InterpolationParams)


class Interpolation(Resampling[InterpolationP]):
    """Resampling with a ``mode`` of BILINEAR (FLOPs = 7 per output element: four products and
    three sums) or NEAREST (a gather, 0 FLOPs)."""

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return 7 * numel(outputs[0]) if self.params.mode == "BILINEAR" else 0


@register
class AffineGrid(Resampling["AffineGrid.Params"]):
    """The spatial transformer's sampling grid (torch ``affine_grid``): for each θ of the input
    [N, 2, 3] and each output pixel (i, j), the source point θ·(x_j, y_i, 1) in [-1, 1]
    coordinates, as an [N, H, W, 2] grid of (x, y) for GridSample. ``align_corners`` as in torch
    (see GridSample). With ``relative_to_identity`` the input is θ's offset from the identity
    [[1, 0, 0], [0, 1, 0]]: a localisation net whose last layer starts at zero then starts at
    the identity transform, the spatial transformer's initialisation (Jaderberg et al. 2015).

    Emitted as one MatMul of a constant [H·W, 3] base grid with θᵀ (ONNX AffineGrid has no CUDA
    kernel). MACs = N·H·W·6 (that matmul); FLOPs = 2·MACs (+ 6·N adds relative to identity).
    """

    type_name = "AffineGrid"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        output_size: tuple[int, int] = param(
            Spatial(), doc="grid size, s or [h, w] (the sampled output's H, W)"
        )
        align_corners: bool = param(
            Bool(), False, "-1 and 1 are the corner pixels' centres (else their edges)"
        )
        relative_to_identity: bool = param(
            Bool(), False, "the input is θ minus the identity transform (added back here)"
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (theta,) = inputs
        if theta.rank != 3 or theta.dims[1:] != (2, 3):
            raise LayerError(
                f"expects θ shaped [N, 2, 3], got {theta}",
                hint="reshape the localisation net's 6 outputs with Reshape { shape: [0, 2, 3] }",
            )
        return (TensorType((theta.dims[0], *self.params.output_size, 2), theta.dtype),)

    def base_grid(self) -> np.ndarray:
        """[H·W, 3] rows (x_j, y_i, 1), row-major over (i, j)."""
        height, width = self.params.output_size
        ys = normalized_coordinates(height, self.params.align_corners)
        xs = normalized_coordinates(width, self.params.align_corners)
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        return np.stack([grid_x.ravel(), grid_y.ravel(), np.ones(height * width)], axis=1)

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        return numel(outputs[0]) * 3

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        offset = numel(inputs[0]) if self.params.relative_to_identity else 0
        return 2 * self.macs(inputs, outputs) + offset

    def emit(self, node: Emitter) -> None:
        theta = node.input_types[0]
        height, width = self.params.output_size
        base = node.constant("base_grid", self.base_grid().astype(np.float32))
        source = node.inputs[0]
        if self.params.relative_to_identity:
            source = node.temp("theta")
            identity = node.constant("identity", np.array(AFFINE_IDENTITY, np.float32))
            node.add("Add", [node.inputs[0], identity], [source])
        theta_t, points = node.temp("theta_t"), node.temp("points")
        node.add("Transpose", [source], [theta_t], perm=[0, 2, 1])
        node.add("MatMul", [base, theta_t], [points])  # [H·W, 3] @ [N, 3, 2] -> [N, H·W, 2]
        flat = TensorType((theta.dims[0], height * width, 2))
        emit_reshape(node, points, flat, (theta.dims[0], height, width, 2), node.outputs[0])

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        theta = np.asarray(inputs[0], np.float64)
        if self.params.relative_to_identity:
            theta = theta + np.array(AFFINE_IDENTITY)
        height, width = self.params.output_size
        ys = normalized_coordinates(height, self.params.align_corners)
        xs = normalized_coordinates(width, self.params.align_corners)
        grid = np.empty((theta.shape[0], height, width, 2))
        for n in range(theta.shape[0]):
            for i in range(height):
                for j in range(width):
                    grid[n, i, j] = theta[n] @ np.array([xs[j], ys[i], 1.0])
        return [grid]


@register
class GridSample(Interpolation["GridSample.Params"]):
    """Samples the input [N, C, H, W] at the points of a grid [N, Ho, Wo, 2] of (x, y) in
    [-1, 1] coordinates (torch ``grid_sample``, ONNX GridSample): bilinear or nearest, with
    zeros or the border value outside the image. ``align_corners`` false (torch's default):
    −1 and 1 are the outer edges of the corner pixels; true: their centres. Nearest rounds
    half to even, as torch and onnxruntime do.

    No params, MACs 0; FLOPs = N·C·Ho·Wo·7 for bilinear (four products, three sums), 0 for
    nearest (a gather).
    """

    type_name = "GridSample"
    arity = Arity(2, 2)

    @dataclass(frozen=True, kw_only=True)
    class Params(InterpolationParams):
        mode: str = param(Enum(("BILINEAR", "NEAREST")), "BILINEAR", "interpolation")
        padding_mode: str = param(Enum(("ZEROS", "BORDER")), "ZEROS", "value outside the image")
        align_corners: bool = param(
            Bool(), False, "-1 and 1 are the corner pixels' centres (else their edges)"
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, grid = inputs
        expect_rank(x, 4)
        if grid.rank != 4 or grid.dims[3] != 2:
            raise LayerError(f"expects a grid shaped [N, Ho, Wo, 2] as its second input, got {grid}")
        if grid.dims[0] != x.dims[0]:
            raise LayerError(
                f"the grid's batch {grid.dims[0]} differs from the input's {x.dims[0]} ({grid}, {x})"
            )
        return (TensorType((x.dims[0], x.dims[1], grid.dims[1], grid.dims[2]), x.dtype),)

    def emit(self, node: Emitter) -> None:
        p = self.params
        # Opset 20 renamed the modes ("bilinear" -> "linear").
        mode = ("linear" if node.opset >= 20 else "bilinear") if p.mode == "BILINEAR" else "nearest"
        node.add(
            "GridSample",
            node.inputs,
            node.outputs,
            mode=mode,
            padding_mode=p.padding_mode.lower(),
            align_corners=int(p.align_corners),
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        grid = np.asarray(inputs[1], np.float64)
        batch, channels, height, width = x.shape
        _, out_h, out_w, _ = grid.shape
        result = np.zeros((batch, channels, out_h, out_w))
        for n in range(batch):
            for i in range(out_h):
                for j in range(out_w):
                    px = float(pixel_coordinate(grid[n, i, j, 0], width, p.align_corners))
                    py = float(pixel_coordinate(grid[n, i, j, 1], height, p.align_corners))
                    if p.padding_mode == "BORDER":
                        px, py = min(max(px, 0.0), width - 1.0), min(max(py, 0.0), height - 1.0)
                    result[n, :, i, j] = self._sample(x[n], px, py)
        return [result]

    def _sample(self, image: np.ndarray, px: float, py: float) -> np.ndarray:
        """One point of a [C, H, W] image: pixels outside it read zero."""
        if self.params.mode == "NEAREST":
            return bilinear_sample(image, float(np.rint(py)), float(np.rint(px)))
        return bilinear_sample(image, py, px)


def bilinear_sample(image: np.ndarray, py: float, px: float) -> np.ndarray:
    """The bilinear interpolation of a [C, H, W] image at row ``py``, column ``px``, pixels
    outside the image reading zero (at integer coordinates: that pixel)."""
    height, width = image.shape[1:]

    def pixel(row: int, col: int) -> np.ndarray:
        if 0 <= row < height and 0 <= col < width:
            return image[:, row, col]
        return np.zeros(image.shape[0])

    y0, x0 = math.floor(py), math.floor(px)
    fy, fx = py - y0, px - x0
    return (
        pixel(y0, x0) * (1 - fy) * (1 - fx)
        + pixel(y0, x0 + 1) * (1 - fy) * fx
        + pixel(y0 + 1, x0) * fy * (1 - fx)
        + pixel(y0 + 1, x0 + 1) * fy * fx
    )


class RegionPooling(Resampling["RegionPooling.Params"]):
    """What RoI max pooling and RoI align share: inputs [features N, C, H, W] and regions [R, 5]
    of (batch index, x1, y1, x2, y2) in input-image pixels, scaled to the feature map by
    ``spatial_scale``; the output [R, C, pooled_h, pooled_w]."""

    arity = Arity(2, 2)

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        pooled_h: int = param(Int(min=1), doc="output height")
        pooled_w: int = param(Int(min=1), doc="output width")
        spatial_scale: float = param(
            Float(min=0, exclusive_min=True), 1.0, "feature map / image size, e.g. 1/16"
        )

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        features, rois = inputs
        expect_rank(features, 4, "feature map")
        if rois.rank != 2 or rois.dims[1] != 5:
            raise LayerError(
                f"expects regions shaped [R, 5] as its second input, got {rois}",
                hint="each region is (batch index, x1, y1, x2, y2) in input-image pixels",
            )
        p = self.params
        return (TensorType((rois.dims[0], features.dims[1], p.pooled_h, p.pooled_w), features.dtype),)

    def sample_input(
        self, index: int, input_types: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray | None:
        """Valid random regions for input 1 (for differential checks): batch indices within the
        batch, and boxes with x1 ≤ x2 and y1 ≤ y2 inside the image the feature map covers."""
        if index != 1:
            return None
        features, rois = input_types
        count = static_dim(rois, 0)
        image_h = static_dim(features, 2) / self.params.spatial_scale
        image_w = static_dim(features, 3) / self.params.spatial_scale
        corners_x = np.sort(rng.uniform(0, image_w - 1, (count, 2)), axis=1)
        corners_y = np.sort(rng.uniform(0, image_h - 1, (count, 2)), axis=1)
        batch = rng.integers(0, batch_size(features), count)
        regions = np.stack(
            [batch, corners_x[:, 0], corners_y[:, 0], corners_x[:, 1], corners_y[:, 1]], axis=1
        )
        return regions.astype(np.float32)

    def check_opset(self, node: Emitter) -> None:
        if node.opset > ROI_MAX_OPSET:
            raise LayerError(
                f"needs opset {ROI_MAX_OPSET} or lower: onnxruntime has no kernel for it at "
                f"opset {node.opset}",
                hint=f"compile with --opset {ROI_MAX_OPSET}",
            )


@register
class ROIPooling(RegionPooling):
    """Fast R-CNN's RoI max pooling (Caffe ROIPooling, torchvision ``roi_pool``, ONNX
    MaxRoiPool, which all bin the same way). Caffe's bins, followed here: a box's corners are
    rounded (half away from zero) after scaling,
    its size is end − start + 1 (at least 1), bin (i, j) spans rows
    [floor(i·h/ph), ceil((i+1)·h/ph)) from its start, computed in float32 as Caffe does, clipped
    to the map; an empty bin gives 0.

    No params, MACs 0; FLOPs = one comparison per feature read: R·C·Σ bin sizes, counted as
    R·C·ph·pw·⌈H/ph⌉·⌈W/pw⌉ (a box as large as the map).
    """

    type_name = "ROIPooling"

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        p = self.params
        bin_h = -(-static_dim(inputs[0], 2) // p.pooled_h)
        bin_w = -(-static_dim(inputs[0], 3) // p.pooled_w)
        return numel(outputs[0]) * bin_h * bin_w

    def emit(self, node: Emitter) -> None:
        self.check_opset(node)
        p = self.params
        node.add(
            "MaxRoiPool",
            node.inputs,
            node.outputs,
            pooled_shape=[p.pooled_h, p.pooled_w],
            spatial_scale=p.spatial_scale,
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        rois = np.asarray(inputs[1], np.float32)
        height, width = x.shape[2:]
        scale = np.float32(p.spatial_scale)
        result = np.zeros((rois.shape[0], x.shape[1], p.pooled_h, p.pooled_w))
        for r, roi in enumerate(rois):
            # Rounded half away from zero (C's round), in float32 as Caffe computes.
            x1, y1, x2, y2 = (int(np.sign(v) * np.floor(np.abs(v * scale) + 0.5)) for v in roi[1:])
            bins_h = _caffe_bins(y1, max(y2 - y1 + 1, 1), p.pooled_h, height)
            bins_w = _caffe_bins(x1, max(x2 - x1 + 1, 1), p.pooled_w, width)
            image = x[int(roi[0])]
            for i, (h0, h1) in enumerate(bins_h):
                for j, (w0, w1) in enumerate(bins_w):
                    if h1 > h0 and w1 > w0:
                        result[r, :, i, j] = image[:, h0:h1, w0:w1].max(axis=(1, 2))
        return [result]


def _caffe_bins(start: int, length: int, bins: int, size: int) -> list[tuple[int, int]]:
    """Caffe's RoI pooling bins along one axis: [floor(i·b), ceil((i+1)·b)) + start with
    b = length / bins in float32, clipped to [0, size]."""
    bin_size = np.float32(length) / np.float32(bins)
    result = []
    for i in range(bins):
        begin = int(np.floor(np.float32(i) * bin_size)) + start
        end = int(np.ceil(np.float32(i + 1) * bin_size)) + start
        result.append((min(max(begin, 0), size), min(max(end, 0), size)))
    return result


@register
class ROIAlign(RegionPooling):
    """RoI align (Mask R-CNN; torchvision ``roi_align``, ONNX RoiAlign with average pooling):
    each of the pooled_h × pooled_w bins of a box averages bilinear samples on a regular grid of
    ``sampling_ratio`` × ``sampling_ratio`` points (0: ⌈box size / bins⌉ per axis). ``aligned``
    true (torchvision ``aligned=True``, ONNX ``half_pixel``) shifts the scaled box by −0.5 so a
    pixel's centre is at its index; false is Detectron's original (boxes at least 1 pixel).
    A sample more than one pixel outside the map reads 0; others are clamped to it.

    No params, MACs 0; FLOPs = R·C·ph·pw·(8·samples per bin), samples counted at 2×2 when
    adaptive (7 per bilinear sample plus the average's add).
    """

    type_name = "ROIAlign"

    @dataclass(frozen=True, kw_only=True)
    class Params(RegionPooling.Params):
        sampling_ratio: int = param(Int(min=0), 0, "samples per bin and axis (0: adaptive)")
        aligned: bool = param(Bool(), True, "half-pixel offset (torchvision aligned=True)")

    params: ROIAlign.Params

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        samples = (self.params.sampling_ratio or 2) ** 2
        return numel(outputs[0]) * 8 * samples

    def emit(self, node: Emitter) -> None:
        self.check_opset(node)
        from onnx import TensorProto

        p = self.params
        rois = node.input_types[1]
        boxes, column, indices, flat_indices = (
            node.temp("boxes"),
            node.temp("batch_column"),
            node.temp("batch_indices"),
            node.temp("flat_indices"),
        )
        one, five, axis = (
            node.constant("one", np.array([1], np.int64)),
            node.constant("five", np.array([5], np.int64)),
            node.constant("axis", np.array([1], np.int64)),
        )
        zero = node.constant("zero", np.array([0], np.int64))
        node.add("Slice", [node.inputs[1], one, five, axis], [boxes])
        node.add("Slice", [node.inputs[1], zero, one, axis], [column])
        node.add("Cast", [column], [indices], to=TensorProto.INT64)
        emit_reshape(
            node, indices, TensorType((rois.dims[0], 1)), (rois.dims[0],), flat_indices, "index_shape"
        )
        node.add(
            "RoiAlign",
            [node.inputs[0], boxes, flat_indices],
            node.outputs,
            mode="avg",
            output_height=p.pooled_h,
            output_width=p.pooled_w,
            sampling_ratio=p.sampling_ratio,
            spatial_scale=p.spatial_scale,
            coordinate_transformation_mode="half_pixel" if p.aligned else "output_half_pixel",
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        rois = np.asarray(inputs[1], np.float32)
        result = np.zeros((rois.shape[0], x.shape[1], p.pooled_h, p.pooled_w))
        offset = 0.5 if p.aligned else 0.0
        for r, roi in enumerate(rois):
            # Box geometry in float32, as the reference implementations compute it.
            x1, y1, x2, y2 = (np.float32(v) * np.float32(p.spatial_scale) for v in roi[1:])
            start_x, start_y = float(x1) - offset, float(y1) - offset
            box_w, box_h = np.float32(x2 - x1), np.float32(y2 - y1)
            if not p.aligned:
                box_w, box_h = max(box_w, np.float32(1)), max(box_h, np.float32(1))
            bin_h, bin_w = box_h / np.float32(p.pooled_h), box_w / np.float32(p.pooled_w)
            grid_h = p.sampling_ratio or int(np.ceil(box_h / np.float32(p.pooled_h)))
            grid_w = p.sampling_ratio or int(np.ceil(box_w / np.float32(p.pooled_w)))
            image = x[int(roi[0])]
            for i in range(p.pooled_h):
                for j in range(p.pooled_w):
                    total = np.zeros(x.shape[1])
                    for a in range(grid_h):
                        py = start_y + float(bin_h) * (i + (a + 0.5) / grid_h)
                        for b in range(grid_w):
                            px = start_x + float(bin_w) * (j + (b + 0.5) / grid_w)
                            total += _roi_align_sample(image, py, px)
                    result[r, :, i, j] = total / max(grid_h * grid_w, 1)
        return [result]


def _roi_align_sample(image: np.ndarray, py: float, px: float) -> np.ndarray:
    """RoI align's sample of a [C, H, W] image: zero beyond one pixel outside, otherwise the
    bilinear value at the point clamped into the map."""
    height, width = image.shape[1:]
    if py < -1.0 or py > height or px < -1.0 or px > width:
        return np.zeros(image.shape[0])
    return bilinear_sample(image, min(max(py, 0.0), height - 1.0), min(max(px, 0.0), width - 1.0))


@register
class Resize(Interpolation["Resize.Params"]):
    """Resizes H and W by integer factors (``scale``) or to a ``size`` (torch ``interpolate``,
    ONNX Resize). NEAREST reads source pixel ⌊i·H/Ho⌋ (torch's ``nearest``, ONNX asymmetric
    with floor). BILINEAR with ``align_corners`` false (torch's default) reads
    (i + 0.5)·H/Ho − 0.5, clamped to [0, H − 1] (half-pixel centres); with it true, i·(H − 1)/(Ho − 1),
    so the corner pixels map onto each other.

    No params, MACs 0; FLOPs = 7 per output element for BILINEAR (four products, three sums),
    0 for NEAREST. A ``size`` needs opset 18 or later (Resize with ``axes``).
    """

    type_name = "Resize"

    @dataclass(frozen=True, kw_only=True)
    class Params(InterpolationParams):
        scale: tuple[int, int] | None = param(Spatial(), None, "integer factor, s or [sh, sw]")
        size: tuple[int, int] | None = param(Spatial(), None, "output size, s or [h, w] (instead of scale)")
        mode: str = param(Enum(("NEAREST", "BILINEAR")), "NEAREST", "interpolation")
        align_corners: bool = param(Bool(), False, "BILINEAR: the corner pixels' centres map onto each other")

    def check(self) -> None:
        p = self.params
        if (p.scale is None) == (p.size is None):
            raise LayerError(
                "needs exactly one of 'scale' and 'size'",
                param="scale" if p.scale is not None else None,
                hint="scale: 2 doubles H and W; size: [h, w] sets them",
            )
        if p.align_corners and p.mode == "NEAREST":
            raise LayerError("align_corners applies to BILINEAR only", param="align_corners")

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        if p.size is not None:
            return p.size
        assert p.scale is not None
        return (height * p.scale[0], width * p.scale[1])

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        height, width = self.output_hw(static_dim(x, 2), static_dim(x, 3))
        return (TensorType((x.dims[0], x.dims[1], height, width), x.dtype),)

    def emit(self, node: Emitter) -> None:
        p = self.params
        if p.mode == "NEAREST":
            attributes = {
                "mode": "nearest",
                "coordinate_transformation_mode": "asymmetric",
                "nearest_mode": "floor",
            }
        else:
            # NOTE: half_pixel, not pytorch_half_pixel: that one reads an output of one pixel at
            # source 0 instead of the centre (i + 0.5)·H/Ho − 0.5 that torch's own kernel reads.
            transform = "align_corners" if p.align_corners else "half_pixel"
            attributes = {"mode": "linear", "coordinate_transformation_mode": transform}
        if p.scale is not None:
            # Integer factors are exact in float32: Resize's floor(H·scale) is H·scale.
            scales = node.constant("scales", np.array([1, 1, *p.scale], np.float32))
            node.add("Resize", [node.inputs[0], "", scales], node.outputs, **attributes)
            return
        if node.opset < 18:
            raise LayerError(
                f"a size needs opset 18 or later (ONNX Resize with axes), not {node.opset}",
                hint="compile with --opset 18 or later, or give an integer scale",
            )
        sizes = node.constant("sizes", np.array(p.size, np.int64))
        node.add("Resize", [node.inputs[0], "", "", sizes], node.outputs, axes=[2, 3], **attributes)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        height, width = x.shape[2:]
        out_h, out_w = self.output_hw(height, width)
        rows = self._source_taps(height, out_h)
        cols = self._source_taps(width, out_w)
        result = np.zeros((*x.shape[:2], out_h, out_w))
        for i, row_taps in enumerate(rows):
            for j, col_taps in enumerate(cols):
                for r, row_weight in row_taps:
                    for c, col_weight in col_taps:
                        result[:, :, i, j] += row_weight * col_weight * x[:, :, r, c]
        return [result]

    def _source_taps(self, size: int, out: int) -> list[list[tuple[int, float]]]:
        """For each output index along an axis, the source indices it reads and their weights."""
        taps = []
        for i in range(out):
            if self.params.mode == "NEAREST":
                taps.append([(min(i * size // out, size - 1), 1.0)])
                continue
            if self.params.align_corners:
                source = i * (size - 1) / (out - 1) if out > 1 else 0.0
            else:
                source = max((i + 0.5) * size / out - 0.5, 0.0)
            source = min(source, size - 1.0)
            low = math.floor(source)
            high = min(low + 1, size - 1)
            fraction = source - low
            taps.append([(low, 1.0 - fraction), (high, fraction)])
        return taps
