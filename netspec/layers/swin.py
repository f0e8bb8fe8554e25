"""Swin Transformer's layers (Liu et al., ICCV 2021), on channels-last feature maps [N, H, W, C]
as torchvision keeps them: shifted-window self-attention with its relative-position bias, and
patch merging (2×2 neighbours concatenated into channels)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netspec.graph import TensorType
from netspec.layers.base import (
    ZEROS,
    Bool,
    Emitter,
    Filler,
    Int,
    Layer,
    LayerError,
    LayerParams,
    NoParams,
    ParamSpec,
    Window,
    batch_size,
    param,
    register,
    static_dim,
)
from netspec.layers.linear import ROWS, emit_attention_logits, emit_linear
from netspec.lazy import numpy as np

# The batch of windows (N·windows), symbolic in the shape constants.
WINDOWS = "windows"
MASKED = -100.0  # torchvision's additive mask between regions a shift brought together


def channels_last(x: TensorType) -> tuple[int, int, int]:
    """(H, W, C) of a channels-last feature map [N, H, W, C]."""
    if x.rank != 4:
        raise LayerError(f"expects a channels-last feature map [N, H, W, C], got {x.rank}-D {x}")
    return static_dim(x, 1), static_dim(x, 2), static_dim(x, 3)


def relative_position_index(window: int) -> np.ndarray:
    """torchvision's index into the bias table for every (query, key) pair of a window's w²
    positions: (Δy + w − 1)·(2w − 1) + (Δx + w − 1), flattened to w⁴ entries."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]).reshape(-1)


def shift_mask(height: int, width: int, window: int, shift: tuple[int, int]) -> np.ndarray:
    """torchvision's attention mask for a shifted grid: [windows, w², w²], 0 between positions
    of one region of the unshifted image and −100 between regions the roll brought together
    (its slices as written there, so an axis without shift behaves as there too)."""
    regions = np.zeros((height, width))
    count = 0
    for rows in (slice(0, -window), slice(-window, -shift[0]), slice(-shift[0], None)):
        for cols in (slice(0, -window), slice(-window, -shift[1]), slice(-shift[1], None)):
            regions[rows, cols] = count
            count += 1
    grid = regions.reshape(height // window, window, width // window, window).transpose(0, 2, 1, 3)
    flat = grid.reshape(-1, window * window)
    return np.where(flat[:, None, :] - flat[:, :, None] != 0, MASKED, 0.0)


@register
class ShiftedWindowAttention(Layer["ShiftedWindowAttention.Params"]):
    """Swin's (shifted) window multi-head self-attention on [N, H, W, C] (torchvision
    ``ShiftedWindowAttention``): the map zero-padded to multiples of the window w, rolled by
    −``shift_size`` (a shifted block; no shift when the window covers the map), cut into w×w
    windows; in each, attention over its w² positions with ``num_heads`` heads plus a learned
    bias per head and relative offset, masked (−100) between regions the roll joined; then
    projected, merged back, rolled back and cropped.

    Stored as torchvision names them: ``qkv.weight`` [3C, C], ``qkv.bias``, ``proj.weight``
    [C, C], ``proj.bias`` (params), ``relative_position_bias_table`` [(2w − 1)², heads]
    (params) and ``relative_position_index`` [w⁴] (a buffer fixed by w: torch's integer
    buffer, in float32 here).

    params = 4·C² + 4·C + (2w − 1)²·heads; buffers = w⁴; with P = Hp·Wp padded positions,
    MACs = N·P·(4·C² + 2·w²·C) (projections, then QKᵀ and AV within each window);
    FLOPs = 2·MACs + N·P·(4·C + C + w²·heads·(1 + 3)) (biases, scale, the bias table add and
    softmax; the mask add not counted). Receptive field: each pixel reads the w×w window it falls
    in, shifted or not within w − 1 pixels of it on each side; fields grow by that bound, a
    window of 2w − 1 (an upper bound: windows are not translation invariant).
    """

    type_name = "ShiftedWindowAttention"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_heads: int = param(Int(min=1), doc="attention heads (C must divide by them)")
        window_size: int = param(Int(min=1), 7, "window side w")
        shift_size: int = param(Int(min=0), 0, "the roll (torchvision: w // 2 in odd blocks, else 0)")
        qkv_bias: bool = param(Bool(), True, "a learned bias on the query/key/value projection")
        proj_bias: bool = param(Bool(), True, "a learned bias on the output projection")

    def check(self) -> None:
        if self.params.shift_size >= self.params.window_size:
            raise LayerError(
                f"shift_size {self.params.shift_size} must be below window_size {self.params.window_size}",
                param="shift_size",
            )

    def geometry(self, x: TensorType) -> tuple[int, int, int, int, int, tuple[int, int]]:
        """(H, W, C, padded H, padded W, the effective shift per axis)."""
        height, width, channels = channels_last(x)
        if channels % self.params.num_heads:
            raise LayerError(
                f"num_heads {self.params.num_heads} does not divide the {channels} channels of {x}",
                param="num_heads",
            )
        window = self.params.window_size
        padded_h, padded_w = -(-height // window) * window, -(-width // window) * window
        # torchvision: no shift along an axis the window covers whole.
        shift = tuple(0 if window >= size else self.params.shift_size for size in (padded_h, padded_w))
        return height, width, channels, padded_h, padded_w, shift  # type: ignore[return-value]  # shift has two items

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        self.geometry(inputs[0])
        return (inputs[0],)

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        _, _, channels, _, _, _ = self.geometry(inputs[0])
        p = self.params
        window = p.window_size
        arrays = [ParamSpec("qkv.weight", (3 * channels, channels))]
        if p.qkv_bias:
            arrays.append(ParamSpec("qkv.bias", (3 * channels,), init=ZEROS))
        arrays.append(ParamSpec("proj.weight", (channels, channels)))
        if p.proj_bias:
            arrays.append(ParamSpec("proj.bias", (channels,), init=ZEROS))
        table = ((2 * window - 1) ** 2, p.num_heads)
        arrays.append(ParamSpec("relative_position_bias_table", table, init=Filler("gaussian", std=0.02)))
        index = tuple(int(i) for i in relative_position_index(window))
        arrays.append(
            ParamSpec("relative_position_index", (window**4,), learnable=False, init=ZEROS, fixed=index)
        )
        return tuple(arrays)

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        _, _, channels, padded_h, padded_w, _ = self.geometry(inputs[0])
        positions = padded_h * padded_w
        window_area = self.params.window_size**2
        return batch_size(inputs[0]) * positions * (4 * channels * channels + 2 * window_area * channels)

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        _, _, channels, padded_h, padded_w, _ = self.geometry(inputs[0])
        p = self.params
        biases = (3 * channels if p.qkv_bias else 0) + (channels if p.proj_bias else 0)
        per_position = biases + channels + 4 * p.window_size**2 * p.num_heads
        return 2 * self.macs(inputs, outputs) + batch_size(inputs[0]) * padded_h * padded_w * per_position

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window] | None:
        # NOTE: windows are not translation invariant: a pixel reads its own window, which
        # (shifted or not) lies within w − 1 of it on either side. The symmetric bound 2w − 1.
        window = self.params.window_size
        return (Window(2 * window - 1, 1, window - 1), Window(2 * window - 1, 1, window - 1))

    # -- ONNX ------------------------------------------------------------------------------
    def emit(self, node: Emitter) -> None:
        x_type = node.input_types[0]
        height, width, channels, padded_h, padded_w, shift = self.geometry(x_type)
        p = self.params
        window, heads = p.window_size, p.num_heads
        head = channels // heads
        area = window * window
        rows, cols = padded_h // window, padded_w // window
        x = node.inputs[0]

        def shape(suffix: str, dims: Sequence[int]) -> str:
            return node.constant(suffix, np.array(dims, np.int64))

        if (padded_h, padded_w) != (height, width):
            padded = node.temp("padded")
            pads = [0, 0, 0, 0, 0, padded_h - height, padded_w - width, 0]
            node.add("Pad", [x, shape("pads", pads)], [padded])
            x = padded
        shifted = sum(shift) > 0
        if shifted:
            x = self._emit_roll(node, x, (-shift[0], -shift[1]), padded_h, padded_w, "shifted")
        # window partition: [N, rows, w, cols, w, C] -> [N·windows, w², C]
        grid, windows, tokens = node.temp("grid"), node.temp("windows"), node.temp("tokens")
        node.add("Reshape", [x, shape("grid_shape", [-1, rows, window, cols, window, channels])], [grid])
        node.add("Transpose", [grid], [windows], perm=[0, 1, 3, 2, 4, 5])
        node.add("Reshape", [windows, shape("tokens_shape", [-1, channels])], [tokens])

        # the projection: one Gemm on the window tokens' rows, torch's [3C, C] weight as stored
        split = node.temp("qkv_heads")
        emit_linear(
            node,
            tokens,
            TensorType((ROWS, channels)),
            node.param("qkv.weight"),
            node.param("qkv.bias") if p.qkv_bias else None,
            3 * channels,
            split,
            reshaped_to=(WINDOWS, area, 3, heads, head),
            suffix="heads",
        )
        logits, v = emit_attention_logits(node, split, head)  # per window: [N·windows, heads, w², w²]
        biased = node.temp("biased")
        node.add("Add", [logits, self._emit_bias(node, window, heads)], [biased])
        if shifted:
            per_image, masked, flat = node.temp("per_image"), node.temp("masked"), node.temp("masked_flat")
            mask = shift_mask(padded_h, padded_w, window, shift)[:, None].astype(np.float32)
            node.add(
                "Reshape", [biased, shape("image_shape", [-1, rows * cols, heads, area, area])], [per_image]
            )
            node.add("Add", [per_image, node.constant("mask", mask)], [masked])
            node.add("Reshape", [masked, shape("flat_shape", [-1, heads, area, area])], [flat])
            biased = flat
        weights, mixed, merged = node.temp("weights"), node.temp("mixed"), node.temp("merged")
        node.add("Softmax", [biased], [weights], axis=-1)
        node.add("MatMul", [weights, v], [mixed])
        node.add("Transpose", [mixed], [merged], perm=[0, 2, 1, 3])  # [N·windows, w², heads, d]
        joined, projected = node.temp("joined"), node.temp("projected")
        node.add("Reshape", [merged, shape("join_shape", [-1, channels])], [joined])
        emit_linear(
            node,
            joined,
            TensorType((ROWS, channels)),
            node.param("proj.weight"),
            node.param("proj.bias") if p.proj_bias else None,
            channels,
            projected,
        )
        # window merge: [N·windows, w², C] -> [N, Hp, Wp, C]
        unmerged, reordered, image = node.temp("unmerged"), node.temp("reordered"), node.temp("image")
        node.add(
            "Reshape",
            [projected, shape("unmerge_shape", [-1, rows, cols, window, window, channels])],
            [unmerged],
        )
        node.add("Transpose", [unmerged], [reordered], perm=[0, 1, 3, 2, 4, 5])
        cropped = (padded_h, padded_w) != (height, width)
        last = not shifted and not cropped
        node.add(
            "Reshape",
            [reordered, shape("image_shape_out", [-1, padded_h, padded_w, channels])],
            node.outputs if last else [image],
        )
        result = image
        if shifted:
            result = self._emit_roll(node, result, shift, padded_h, padded_w, "unshifted", final=not cropped)
        if cropped:
            starts, ends = shape("crop_starts", [0, 0]), shape("crop_ends", [height, width])
            node.add("Slice", [result, starts, ends, shape("crop_axes", [1, 2])], node.outputs)

    def _emit_bias(self, node: Emitter, window: int, heads: int) -> str:
        """The relative-position bias [heads, w², w²]: the table gathered by the index (all
        constants: onnxruntime folds it before the first run)."""
        area = window * window
        index, gathered, square, bias = (
            node.temp(s) for s in ("index_int", "bias_rows", "bias_square", "bias")
        )
        node.add("Cast", [node.param("relative_position_index")], [index], to=7)  # INT64
        node.add("Gather", [node.param("relative_position_bias_table"), index], [gathered], axis=0)
        node.add(
            "Reshape",
            [gathered, node.constant("bias_shape", np.array([area, area, heads], np.int64))],
            [square],
        )
        node.add("Transpose", [square], [bias], perm=[2, 0, 1])
        return bias

    def _emit_roll(
        self,
        node: Emitter,
        x: str,
        amounts: tuple[int, int],
        height: int,
        width: int,
        suffix: str,
        final: bool = False,
    ) -> str:
        """torch.roll by ``amounts`` along H and W: two Slices and a Concat per rolled axis."""
        current = x
        moves = [
            (axis, size, amount % size)
            for axis, size, amount in ((1, height, amounts[0]), (2, width, amounts[1]))
        ]
        moves = [move for move in moves if move[2]]
        for step, (axis, size, cut) in enumerate(moves):  # roll right by a: the last a elements first
            head, tail = node.temp(f"{suffix}_{axis}_head"), node.temp(f"{suffix}_{axis}_tail")
            axes = node.constant(f"{suffix}_{axis}_axes", np.array([axis], np.int64))
            node.add(
                "Slice",
                [
                    current,
                    node.constant(f"{suffix}_{axis}_a", np.array([size - cut], np.int64)),
                    node.constant(f"{suffix}_{axis}_b", np.array([size], np.int64)),
                    axes,
                ],
                [tail],
            )
            node.add(
                "Slice",
                [
                    current,
                    node.constant(f"{suffix}_{axis}_c", np.array([0], np.int64)),
                    node.constant(f"{suffix}_{axis}_d", np.array([size - cut], np.int64)),
                    axes,
                ],
                [head],
            )
            rolled = node.outputs[0] if final and step == len(moves) - 1 else node.temp(f"{suffix}_{axis}")
            node.add("Concat", [tail, head], [rolled], axis=axis)
            current = rolled
        return current

    # -- float64 reference ------------------------------------------------------------------
    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        height, width, channels, padded_h, padded_w, shift = self.geometry(TensorType(x.shape))
        p = self.params
        window, heads = p.window_size, p.num_heads
        head, area = channels // heads, window * window
        batch = x.shape[0]
        x = np.pad(x, ((0, 0), (0, padded_h - height), (0, padded_w - width), (0, 0)))
        if sum(shift):
            x = np.roll(x, (-shift[0], -shift[1]), axis=(1, 2))
        rows, cols = padded_h // window, padded_w // window
        tokens = x.reshape(batch, rows, window, cols, window, channels).transpose(0, 1, 3, 2, 4, 5)
        tokens = tokens.reshape(-1, area, channels)
        qkv = tokens @ np.asarray(weights["qkv.weight"], np.float64).T
        if p.qkv_bias:
            qkv = qkv + np.asarray(weights["qkv.bias"], np.float64)
        q, k, v = (part.reshape(-1, area, heads, head).transpose(0, 2, 1, 3) for part in np.split(qkv, 3, -1))
        logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head)
        index = np.asarray(weights["relative_position_index"]).astype(np.int64)
        table = np.asarray(weights["relative_position_bias_table"], np.float64)
        logits = logits + table[index].reshape(area, area, heads).transpose(2, 0, 1)
        if sum(shift):
            mask = shift_mask(padded_h, padded_w, window, shift)
            logits = (logits.reshape(batch, rows * cols, heads, area, area) + mask[:, None]).reshape(
                logits.shape
            )
        logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
        attention = logits / logits.sum(axis=-1, keepdims=True)
        mixed = (attention @ v).transpose(0, 2, 1, 3).reshape(-1, area, channels)
        y = mixed @ np.asarray(weights["proj.weight"], np.float64).T
        if p.proj_bias:
            y = y + np.asarray(weights["proj.bias"], np.float64)
        y = y.reshape(batch, rows, cols, window, window, channels).transpose(0, 1, 3, 2, 4, 5)
        y = y.reshape(batch, padded_h, padded_w, channels)
        if sum(shift):
            y = np.roll(y, shift, axis=(1, 2))
        return [y[:, :height, :width]]


@register
class PatchMerge(Layer[NoParams]):
    """Swin's patch merging gather (torchvision ``PatchMerging`` before its norm and reduction):
    a channels-last map [N, H, W, C], zero-padded to even H and W, becomes [N, H/2, W/2, 4C],
    each output pixel the concatenation of its 2×2 neighbours in torchvision's order
    (0, 0), (1, 0), (0, 1), (1, 1) as (row, column) offsets. Emitted as Reshape, Transpose,
    Reshape. Counts nothing; receptive fields: a 2×2 window of stride 2."""

    type_name = "PatchMerge"

    def sizes(self, x: TensorType) -> tuple[int, int, int]:
        height, width, channels = channels_last(x)
        return height + height % 2, width + width % 2, channels

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        height, width, channels = self.sizes(inputs[0])
        return (TensorType((inputs[0].dims[0], height // 2, width // 2, 4 * channels), inputs[0].dtype),)

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        return (Window(2, 2, 0), Window(2, 2, 0))

    def emit(self, node: Emitter) -> None:
        x = node.input_types[0]
        height, width, channels = self.sizes(x)
        source = node.inputs[0]
        if (height, width) != x.dims[1:3]:
            source = node.temp("padded")
            pads = [0, 0, 0, 0, 0, height - x.dims[1], width - x.dims[2], 0]  # type: ignore[operator]  # sizes() read them as numbers
            node.add("Pad", [node.inputs[0], node.constant("pads", np.array(pads, np.int64))], [source])
        grid, reordered = node.temp("grid"), node.temp("reordered")
        grid_shape = np.array([-1, height // 2, 2, width // 2, 2, channels], np.int64)
        node.add("Reshape", [source, node.constant("grid_shape", grid_shape)], [grid])
        # [N, H/2, dy, W/2, dx, C] -> [N, H/2, W/2, dx, dy, C]: channel block dx·2 + dy
        node.add("Transpose", [grid], [reordered], perm=[0, 1, 3, 4, 2, 5])
        out_shape = np.array([-1, height // 2, width // 2, 4 * channels], np.int64)
        node.add("Reshape", [reordered, node.constant("out_shape", out_shape)], node.outputs)

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], np.float64)
        height, width, _ = self.sizes(TensorType(x.shape))
        x = np.pad(x, ((0, 0), (0, height - x.shape[1]), (0, width - x.shape[2]), (0, 0)))
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return [np.concatenate(parts, axis=-1)]
