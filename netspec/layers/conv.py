"""Convolution layers: Caffe Convolution, its depthwise fork types and Deconvolution
(transposed convolution)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from netspec.graph import TensorType
from netspec.layers.base import (
    HE_UNIFORM,
    ZEROS,
    Bool,
    Emitter,
    Filler,
    FillerBlock,
    Int,
    Layer,
    LayerError,
    LayerParams,
    Padding,
    ParamSpec,
    Spatial,
    Window,
    check_filler,
    expect_rank,
    numel,
    param,
    register,
    static_dim,
)
from netspec.lazy import numpy as np


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    """Caffe/ONNX convolution arithmetic: floor((H + p0 + p1 - (d(k-1)+1)) / s) + 1."""
    return (size + pad_begin + pad_end - (dilation * (kernel - 1) + 1)) // stride + 1


def sliding_windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """A (N, C, Ho, Wo, kh, kw) view of the windows of an already padded (N, C, H, W) array."""
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    return windows[:, :, : out_hw[0], : out_hw[1]]


def pad_nchw(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad H and W by (top, left, bottom, right)."""
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


@register
class Convolution(Layer["Convolution.Params"]):
    """2-D convolution (Caffe Convolution, torch Conv2d).

    params = Cout·(Cin/g)·kh·kw (+ Cout bias); MACs = N·Cout·Ho·Wo·(Cin/g)·kh·kw;
    FLOPs = 2·MACs + N·Cout·Ho·Wo when there is a bias.
    """

    type_name = "Convolution"

    @dataclass(frozen=True, kw_only=True)
    class Params(LayerParams):
        num_output: int = param(Int(min=1), doc="output channels")
        kernel_size: tuple[int, int] = param(Spatial(), doc="kernel size, k or [kh, kw]")
        stride: tuple[int, int] = param(Spatial(), 1, "stride, s or [sh, sw]")
        pad: tuple[int, int, int, int] = param(
            Padding(), 0, "zero padding: p, [ph, pw] or [top, left, bottom, right]"
        )
        dilation: tuple[int, int] = param(Spatial(), 1, "dilation, d or [dh, dw]")
        group: int = param(Int(min=1), 1, "channel groups (group = channels: depthwise)")
        bias_term: bool = param(Bool(), True, "add a learned bias")
        weight_filler: Filler | None = param(
            FillerBlock(), None, "initial weights (default: He-uniform, bound √(6/fan_in))"
        )
        bias_filler: Filler | None = param(FillerBlock(), None, "initial bias (default: constant 0)")

    def check(self) -> None:
        if self.params.num_output % self.params.group:
            raise LayerError(
                f"group {self.params.group} does not divide num_output {self.params.num_output}",
                param="group",
            )
        self.check_fillers()

    def check_fillers(self) -> None:
        check_filler(self.params.weight_filler, "weight_filler", self.params.kernel_size)
        check_filler(self.params.bias_filler, "bias_filler", None)

    def groups(self, channels: int) -> int:
        """The channel groups for ``channels`` input channels (the ``group`` parameter here)."""
        return self.params.group

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        channels = static_dim(x, 1)
        group = self.groups(channels)
        if channels % group:
            raise LayerError(f"group {group} does not divide the {channels} input channels", param="group")
        height, width = self.output_hw(static_dim(x, 2), static_dim(x, 3))
        return (TensorType((x.dims[0], self.params.num_output, height, width), x.dtype),)

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        return (
            conv_output_size(height, p.kernel_size[0], p.stride[0], p.pad[0], p.pad[2], p.dilation[0]),
            conv_output_size(width, p.kernel_size[1], p.stride[1], p.pad[1], p.pad[3], p.dilation[1]),
        )

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        p = self.params
        channels = static_dim(inputs[0], 1)
        in_per_group = channels // self.groups(channels)
        weight = ParamSpec("weight", (p.num_output, in_per_group, *p.kernel_size), init=self.weight_init())
        if not p.bias_term:
            return (weight,)
        return (weight, ParamSpec("bias", (p.num_output,), init=self.bias_init()))

    def weight_init(self) -> Filler:
        return self.params.weight_filler or HE_UNIFORM

    def bias_init(self) -> Filler:
        return self.params.bias_filler or ZEROS

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        p = self.params
        channels = static_dim(inputs[0], 1)
        in_per_group = channels // self.groups(channels)
        return numel(outputs[0]) * in_per_group * p.kernel_size[0] * p.kernel_size[1]

    def flops(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        bias = numel(outputs[0]) if self.params.bias_term else 0
        return 2 * self.macs(inputs, outputs) + bias

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        p = self.params
        return (
            Window(p.dilation[0] * (p.kernel_size[0] - 1) + 1, p.stride[0], p.pad[0]),
            Window(p.dilation[1] * (p.kernel_size[1] - 1) + 1, p.stride[1], p.pad[1]),
        )

    def absorbs_channel_affine(self, output: TensorType, axis: int = 1) -> bool:
        return axis == 1

    def scale_output_channels(self, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
        # The weight leads with the output channel: [Cout, Cin/g, kh, kw].
        return weight * scale.reshape(-1, *(1,) * (weight.ndim - 1))

    def emit(self, node: Emitter) -> None:
        p = self.params
        inputs = [node.inputs[0], node.param("weight")]
        if p.bias_term:
            inputs.append(node.param("bias"))
        top, left, bottom, right = p.pad
        node.add(
            "Conv",
            inputs,
            node.outputs,
            kernel_shape=list(p.kernel_size),
            strides=list(p.stride),
            pads=[top, left, bottom, right],
            dilations=list(p.dilation),
            group=self.groups(static_dim(node.input_types[0], 1)),
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = pad_nchw(np.asarray(inputs[0], np.float64), p.pad)
        w = np.asarray(weights["weight"], np.float64)
        out_hw = self.output_hw(inputs[0].shape[2], inputs[0].shape[3])
        windows = sliding_windows(x, p.kernel_size, p.stride, p.dilation, out_hw)
        group = self.groups(x.shape[1])
        in_per_group = x.shape[1] // group
        out_per_group = p.num_output // group
        outputs = []
        for g in range(group):
            patch = windows[:, g * in_per_group : (g + 1) * in_per_group]
            kernel = w[g * out_per_group : (g + 1) * out_per_group]
            outputs.append(np.einsum("nchwij,ocij->nohw", patch, kernel, optimize=True))
        y = np.concatenate(outputs, axis=1)
        if p.bias_term:
            y = y + np.asarray(weights["bias"], np.float64)[None, :, None, None]
        return [y]


@register
class ConvolutionDepthwise(Convolution):
    """Depthwise convolution of the Caffe forks (MobileNet ports): Convolution with one group per
    input channel (``group`` may be left out; if written, it must equal the channel count), and
    ``num_output`` a multiple of the input channels.

    params = Cout·kh·kw (+ Cout bias), the weight shaped [Cout, 1, kh, kw];
    MACs = N·Cout·Ho·Wo·kh·kw; FLOPs = 2·MACs + N·Cout·Ho·Wo when there is a bias.
    """

    type_name = "ConvolutionDepthwise"

    @dataclass(frozen=True, kw_only=True)
    class Params(Convolution.Params):
        group: int | None = param(  # type: ignore[assignment]  # optional here: set from the input
            Int(min=1), None, "the input channels (set from the input; if written, it must match)"
        )

    params: ConvolutionDepthwise.Params

    def check(self) -> None:
        self.check_fillers()  # the group is known only with the input

    def groups(self, channels: int) -> int:
        return channels

    def infer(self, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        expect_rank(x, 4)
        channels = static_dim(x, 1)
        p = self.params
        if p.group is not None and p.group != channels:
            raise LayerError(
                f"group {p.group} differs from the {channels} input channels; a depthwise "
                "convolution has one group per input channel",
                param="group",
            )
        if p.num_output % channels:
            raise LayerError(
                f"num_output {p.num_output} is not a multiple of the {channels} input channels",
                param="num_output",
            )
        return super().infer(inputs)


@register
class DepthwiseConvolution(ConvolutionDepthwise):
    """The same depthwise convolution under the other fork's type name (see
    ConvolutionDepthwise): params = Cout·kh·kw (+ Cout); MACs = N·Cout·Ho·Wo·kh·kw;
    FLOPs = 2·MACs + N·Cout·Ho·Wo with a bias.
    """

    type_name = "DepthwiseConvolution"


def deconv_output_size(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int
) -> int:
    """Caffe/ONNX transposed convolution arithmetic: s(H − 1) + d(k − 1) + 1 − p0 − p1."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - pad_begin - pad_end


@register
class Deconvolution(Convolution):
    """Transposed convolution (Caffe Deconvolution, torch ConvTranspose2d): each input pixel adds
    its kernel-weighted copy to the output, ``stride`` apart; Ho = s(H − 1) + d(k − 1) + 1 − 2p
    + output_padding (torch's extra bottom rows / right columns, which only the bias reaches
    beyond the kernels' extent).

    The weight is [Cin, Cout/g, kh, kw] (Caffe's and ONNX's layout). params = Cin·(Cout/g)·kh·kw
    (+ Cout bias); MACs = N·Cin·H·W·(Cout/g)·kh·kw (per input pixel); FLOPs = 2·MACs +
    N·Cout·Ho·Wo when there is a bias. Receptive field: a transposed window (kernel extent,
    stride, pad), output pixels 1/stride input pixels apart.
    """

    type_name = "Deconvolution"

    @dataclass(frozen=True, kw_only=True)
    class Params(Convolution.Params):
        output_padding: tuple[int, int] = param(
            Spatial(min=0), 0, "extra output rows/columns at the bottom/right, each < stride"
        )

    params: Deconvolution.Params

    def check(self) -> None:
        super().check()
        p = self.params
        # NOTE: torch also allows output_padding < dilation; onnxruntime refuses it at run time.
        if any(extra >= stride for extra, stride in zip(p.output_padding, p.stride, strict=True)):
            raise LayerError(
                f"output_padding {list(p.output_padding)} must be smaller than the stride "
                f"{list(p.stride)} on each axis",
                param="output_padding",
            )

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        extra_h, extra_w = p.output_padding
        return (
            deconv_output_size(height, p.kernel_size[0], p.stride[0], p.pad[0], p.pad[2], p.dilation[0])
            + extra_h,
            deconv_output_size(width, p.kernel_size[1], p.stride[1], p.pad[1], p.pad[3], p.dilation[1])
            + extra_w,
        )

    def scale_output_channels(self, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
        # The weight is [Cin, Cout/g, kh, kw]: input channel i of group i // (Cin/g) feeds
        # output channel (i // (Cin/g))·(Cout/g) + j.
        group = self.params.group
        in_channels, out_per_group = weight.shape[0], weight.shape[1]
        rows = scale.reshape(group, out_per_group)[np.arange(in_channels) // (in_channels // group)]
        return weight * rows.reshape(in_channels, out_per_group, *(1,) * (weight.ndim - 2))

    def parameters(self, inputs: Sequence[TensorType]) -> tuple[ParamSpec, ...]:
        p = self.params
        out_per_group = p.num_output // p.group
        weight = ParamSpec(
            "weight", (static_dim(inputs[0], 1), out_per_group, *p.kernel_size), init=self.weight_init()
        )
        if not p.bias_term:
            return (weight,)
        return (weight, ParamSpec("bias", (p.num_output,), init=self.bias_init()))

    def macs(self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> int:
        p = self.params
        return numel(inputs[0]) * (p.num_output // p.group) * p.kernel_size[0] * p.kernel_size[1]

    def spatial_windows(
        self, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> tuple[Window, Window]:
        height, width = super().spatial_windows(inputs, outputs)
        return (replace(height, transposed=True), replace(width, transposed=True))

    def emit(self, node: Emitter) -> None:
        p = self.params
        inputs = [node.inputs[0], node.param("weight")]
        if p.bias_term:
            inputs.append(node.param("bias"))
        # NOTE: explicit pads and no output_shape (DESIGN.md §6): output_shape makes onnxruntime
        # compute the padding itself, and its split of odd padding differs from Caffe's.
        node.add(
            "ConvTranspose",
            inputs,
            node.outputs,
            kernel_shape=list(p.kernel_size),
            strides=list(p.stride),
            pads=list(p.pad),
            dilations=list(p.dilation),
            group=p.group,
            **({"output_padding": list(p.output_padding)} if any(p.output_padding) else {}),
        )

    def reference(self, inputs: Sequence[np.ndarray], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float64)
        w = np.asarray(weights["weight"], np.float64)
        batch, channels, height, width = x.shape
        (kh, kw), (sh, sw), (dh, dw) = p.kernel_size, p.stride, p.dilation
        full_h = sh * (height - 1) + dh * (kh - 1) + 1
        full_w = sw * (width - 1) + dw * (kw - 1) + 1
        full = np.zeros((batch, p.num_output, full_h, full_w))
        in_per_group, out_per_group = channels // p.group, p.num_output // p.group
        for g in range(p.group):
            x_g = x[:, g * in_per_group : (g + 1) * in_per_group]
            w_g = w[g * in_per_group : (g + 1) * in_per_group]
            out = slice(g * out_per_group, (g + 1) * out_per_group)
            # Kernel tap (i, j) scatters every input pixel to (s·h + d·i, s·w + d·j).
            for i in range(kh):
                for j in range(kw):
                    rows = slice(dh * i, dh * i + sh * (height - 1) + 1, sh)
                    cols = slice(dw * j, dw * j + sw * (width - 1) + 1, sw)
                    full[:, out, rows, cols] += np.einsum("nchw,co->nohw", x_g, w_g[:, :, i, j])
        top, left, bottom, right = p.pad
        # output_padding extends the cropped window downwards and rightwards, past the
        # scattered extent if need be (zeros there).
        extra_h, extra_w = p.output_padding
        full = np.pad(full, ((0, 0), (0, 0), (0, extra_h), (0, extra_w)))
        y = full[:, :, top : full_h - bottom + extra_h, left : full_w - right + extra_w]
        if p.bias_term:
            y = y + np.asarray(weights["bias"], np.float64)[None, :, None, None]
        return [y]
