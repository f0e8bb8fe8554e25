"""Receptive fields: for every tensor with a spatial layout, the size, stride (jump) and offset
of the input region one of its pixels sees, per axis (Araujo et al., Distill 2019).

Conventions, per axis, in input pixels (input pixel i spans [i − ½, i + ½], its centre at i):

- ``size``: the extent of the field, padding included, by the recurrence
  r_out = r_in + (k − 1)·j_in (k: the kernel's extent, dilation included);
- ``stride``: the distance between the fields of neighbouring output pixels, j_out = j_in·s;
- ``offset``: the centre of output pixel 0's field, c_out = c_in + ((k − 1)/2 − p)·j_in;
- ``padding``: the "effective padding" of the google-research ``receptive_field`` tables,
  (size − 1)/2 − offset: how far output pixel 0's field reaches left of input pixel 0.

Transposed windows (Deconvolution, nearest upsampling) invert a convolution's coordinate map:
j_out = j_in / s, c_out = c_in + (p − (k − 1)/2)·j_in / s, and an output pixel reads at most
⌊(k − 1)/s⌋ + 1 neighbouring inputs: r_out = r_in + ⌊(k − 1)/s⌋·j_in (rounded up when j_in is
fractional). Where paths merge (Eltwise, Concat), each axis takes the path with the largest
field, its stride and offset with it (inputs that only lend a shape, as Crop's second, do not
count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netspec.layers.base import IDENTITY_WINDOW, Window

if TYPE_CHECKING:
    from fractions import Fraction

    from netspec.typed import TypedGraph

    # Exact numbers: ints on the common path (Fractions are slow to build), Fractions where a
    # transposed window divides the stride or an even kernel puts a centre between pixels.
    Exact = int | Fraction


def _fraction(numerator: Exact, denominator: int = 1) -> Fraction:
    from fractions import Fraction  # on first use: most nets' fields stay integers

    return Fraction(numerator, denominator)


def _half(value: Exact) -> Exact:
    if isinstance(value, int):
        return value // 2 if value % 2 == 0 else _fraction(value, 2)
    return value / 2


@dataclass(frozen=True)
class AxisField:
    """The receptive field along one axis (see the module docstring for the conventions)."""

    size: int
    stride: Exact
    offset: Exact

    @property
    def padding(self) -> Exact:
        """The effective padding: how far the first field starts before input pixel 0."""
        return _half(self.size - 1) - self.offset

    def through(self, window: Window) -> AxisField:
        """The field one layer further, through ``window``."""
        kernel, stride, pad, jump = window.kernel, window.stride, window.pad, self.stride
        if window == IDENTITY_WINDOW:
            return self
        if window.transposed:
            return AxisField(
                math.ceil(self.size + (kernel - 1) // stride * jump),
                _fraction(jump) / stride,
                self.offset + _fraction(_half((2 * pad - (kernel - 1)) * jump)) / stride,
            )
        return AxisField(
            math.ceil(self.size + (kernel - 1) * jump),
            jump * stride,
            self.offset + _half((kernel - 1 - 2 * pad) * jump),
        )


@dataclass(frozen=True)
class ReceptiveField:
    """Size, stride (jump) and offset per spatial axis (H, W), in input pixels."""

    height: AxisField
    width: AxisField

    @property
    def size(self) -> tuple[int, int]:
        return (self.height.size, self.width.size)

    @property
    def stride(self) -> tuple[int | float, int | float]:
        """Per axis; an int where exact (a float after upsampling: 0.5 is two output pixels per
        input pixel). ``height``/``width`` hold the exact fractions."""
        return (_number(self.height.stride), _number(self.width.stride))

    @property
    def offset(self) -> tuple[int | float, int | float]:
        return (_number(self.height.offset), _number(self.width.offset))

    @property
    def padding(self) -> tuple[int | float, int | float]:
        return (_number(self.height.padding), _number(self.width.padding))

    def as_dict(self) -> dict[str, list[int | float]]:
        """Plain numbers for JSON: integers where exact, floats otherwise."""
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "offset": list(self.offset),
            "padding": list(self.padding),
        }


def _number(value: Exact) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


_PIXEL = AxisField(1, 1, 0)
INPUT_FIELD = ReceptiveField(_PIXEL, _PIXEL)


def _widest(fields: list[AxisField]) -> AxisField:
    return max(fields, key=lambda f: f.size)


def receptive_fields(typed: TypedGraph) -> dict[str, ReceptiveField | None]:
    """The receptive field of every tensor of ``typed`` with a spatial layout, relative to the
    graph's 4-D inputs; None for other tensors (and after a layer with no sliding window)."""
    fields: dict[str, ReceptiveField | None] = {}
    # Windows per layer and types (a template's layers are one object in all instances).
    windows_of: dict[tuple[object, ...], tuple[Window, Window] | None] = {}
    for typed_node in typed.nodes:
        node = typed_node.node
        if not node.inputs:
            spatial = typed_node.outputs[0].rank == 4
            fields[node.outputs[0]] = INPUT_FIELD if spatial else None
            continue
        inputs, outputs = list(typed_node.inputs), list(typed_node.outputs)
        incoming = [fields.get(t) for t in node.inputs[: node.layer.field_inputs]]
        known = [f for f in incoming if f is not None]
        windows = None
        if known:
            key = (node.layer, *typed_node.inputs, *typed_node.outputs)
            if key not in windows_of:
                windows_of[key] = node.layer.spatial_windows(inputs, outputs)
            windows = windows_of[key]
        result = None
        if windows is not None:
            result = ReceptiveField(
                _widest([f.height for f in known]).through(windows[0]),
                _widest([f.width for f in known]).through(windows[1]),
            )
        for tensor in node.outputs:
            fields[tensor] = result
    return fields
