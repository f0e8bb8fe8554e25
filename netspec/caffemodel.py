"""Caffe's binary weights file (``.caffemodel``, a serialized ``caffe.NetParameter``), read and
written through the protobuf runtime with a schema built here from caffe.proto's field numbers."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from netspec.diagnostics import did_you_mean, error
from netspec.output import write_atomic

__all__ = ["CaffeLayer", "CaffeWeights", "read_caffemodel", "write_caffemodel"]

# The part of BVLC caffe.proto (src/caffe/proto/caffe.proto) that carries weights, with Caffe's
# field numbers. Every other field of a real file (layer parameters, ParamSpec, gradients in
# `diff`, input shapes, ...) is unknown to this schema, and protobuf skips it while parsing.
# Each field: (name, number, label, type); a capitalised type names a message of this table.
_SCHEMA: dict[str, tuple[tuple[str, int, str, str], ...]] = {
    "BlobShape": (("dim", 1, "repeated", "int64"),),
    "BlobProto": (
        ("num", 1, "optional", "int64"),
        ("channels", 2, "optional", "int64"),
        ("height", 3, "optional", "int64"),
        ("width", 4, "optional", "int64"),
        ("data", 5, "repeated", "float"),
        ("shape", 7, "optional", "BlobShape"),
        ("double_data", 8, "repeated", "double"),
    ),
    "LayerParameter": (
        ("name", 1, "optional", "string"),
        ("type", 2, "optional", "string"),
        ("bottom", 3, "repeated", "string"),
        ("top", 4, "repeated", "string"),
        ("blobs", 7, "repeated", "BlobProto"),
    ),
    # Files from 2013 wrap each layer's name, type and blobs in a V0LayerParameter.
    "V0LayerParameter": (
        ("name", 1, "optional", "string"),
        ("type", 2, "optional", "string"),
        ("blobs", 50, "repeated", "BlobProto"),
    ),
    "V1LayerParameter": (
        ("layer", 1, "optional", "V0LayerParameter"),
        ("bottom", 2, "repeated", "string"),
        ("top", 3, "repeated", "string"),
        ("name", 4, "optional", "string"),
        # NOTE: caffe.proto declares `type` as the closed enum LayerType. int32 has the same
        # varint encoding and keeps the numbers that forks added, which a closed enum drops.
        ("type", 5, "optional", "int32"),
        ("blobs", 6, "repeated", "BlobProto"),
    ),
    "NetParameter": (
        ("name", 1, "optional", "string"),
        ("layers", 2, "repeated", "V1LayerParameter"),
        ("layer", 100, "repeated", "LayerParameter"),
    ),
}

# V1LayerParameter.LayerType, number -> the word a V1 prototxt writes (`type: CONVOLUTION`).
_V1_LAYER_TYPES: dict[int, str] = {
    0: "NONE", 1: "ACCURACY", 2: "BNLL", 3: "CONCAT", 4: "CONVOLUTION", 5: "DATA", 6: "DROPOUT",
    7: "EUCLIDEAN_LOSS", 8: "FLATTEN", 9: "HDF5_DATA", 10: "HDF5_OUTPUT", 11: "IM2COL",
    12: "IMAGE_DATA", 13: "INFOGAIN_LOSS", 14: "INNER_PRODUCT", 15: "LRN",
    16: "MULTINOMIAL_LOGISTIC_LOSS", 17: "POOLING", 18: "RELU", 19: "SIGMOID", 20: "SOFTMAX",
    21: "SOFTMAX_LOSS", 22: "SPLIT", 23: "TANH", 24: "WINDOW_DATA", 25: "ELTWISE", 26: "POWER",
    27: "SIGMOID_CROSS_ENTROPY_LOSS", 28: "HINGE_LOSS", 29: "MEMORY_DATA", 30: "ARGMAX",
    31: "THRESHOLD", 32: "DUMMY_DATA", 33: "SLICE", 34: "MVN", 35: "ABSVAL", 36: "SILENCE",
    37: "CONTRASTIVE_LOSS", 38: "EXP", 39: "DECONVOLUTION",
}  # fmt: skip
_V1_LAYER_NUMBERS = {word: number for number, word in _V1_LAYER_TYPES.items()}

_FIELD = descriptor_pb2.FieldDescriptorProto
_LABELS = {"optional": _FIELD.LABEL_OPTIONAL, "repeated": _FIELD.LABEL_REPEATED}
_SCALARS = {
    "int32": _FIELD.TYPE_INT32,
    "int64": _FIELD.TYPE_INT64,
    "float": _FIELD.TYPE_FLOAT,
    "double": _FIELD.TYPE_DOUBLE,
    "string": _FIELD.TYPE_STRING,
}


def _schema_file() -> descriptor_pb2.FileDescriptorProto:
    """``_SCHEMA`` as a protobuf file descriptor (what protoc would make of the .proto text)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="netspec/caffemodel.proto", package="caffe", syntax="proto2"
    )
    for message_name, fields in _SCHEMA.items():
        message = file.message_type.add(name=message_name)
        for field_name, number, label, kind in fields:
            field = message.field.add(name=field_name, number=number, label=_LABELS[label])
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
                # caffe.proto declares these [packed = true]; parsing accepts both forms.
                if label == "repeated" and kind != "string":
                    field.options.packed = True
            else:
                field.type = _FIELD.TYPE_MESSAGE
                field.type_name = f".caffe.{kind}"
    return file


# NOTE: a private pool, not the default one: pycaffe's caffe_pb2 (or another tool's copy of
# caffe.proto) may already define caffe.NetParameter there, and the two would conflict. The
# pool and the classes of every message live as long as the module: protobuf 4.22's upb holds
# them weakly and crashes adding a sub-message whose class has been collected.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema_file())
_CLASSES: dict[str, type[Message]] = message_factory.GetMessageClassesForFiles(
    ["netspec/caffemodel.proto"], _POOL
)
_NET_PARAMETER = _CLASSES["caffe.NetParameter"]


@dataclass(frozen=True, eq=False)
class CaffeLayer:
    """One layer record of a .caffemodel: its name, its Caffe type (the string of a ``layer``
    record, the enum word such as ``CONVOLUTION`` of a V1 ``layers`` record) and its blobs."""

    name: str
    type: str
    blobs: tuple[np.ndarray, ...]


class CaffeWeights(Mapping[str, list[np.ndarray]]):
    """The blobs of a .caffemodel by layer name, in file order: float32 arrays shaped as stored
    (``shape.dim``, or ``[num, channels, height, width]`` for legacy blobs). Layers without
    weights map to an empty list. ``layers`` keeps every record, with its type."""

    def __init__(self, layers: Sequence[CaffeLayer], name: str = "") -> None:
        self.name = name
        self.layers = tuple(layers)
        self._by_name: dict[str, CaffeLayer] = {}
        for layer in self.layers:
            self._by_name.setdefault(layer.name, layer)

    def __getitem__(self, name: str) -> list[np.ndarray]:
        return list(self._by_name[name].blobs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def layer(self, name: str) -> CaffeLayer:
        """The record of the layer called ``name`` (KeyError if there is none)."""
        return self._by_name[name]

    def __repr__(self) -> str:
        return f"CaffeWeights(name={self.name!r}, layers={list(self._by_name)!r})"


def read_caffemodel(path: str | os.PathLike[str]) -> CaffeWeights:
    """Read the weights of a Caffe binary NetParameter file (``layer`` and V1 ``layers`` forms).

    Raises NetspecError when the file cannot be read, is not a NetParameter, holds no layers,
    has a blob whose values do not fill its shape, or names two weighted layers alike.
    """
    try:
        payload = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read Caffe weights file '{path}': {exc.strerror or exc}.") from None
    net: Any = _NET_PARAMETER()
    try:
        # NOTE: the upb runtime has no 64 MiB message limit (C++'s old CodedInputStream default);
        # tests read a file larger than that. Protobuf itself caps a message at 2 GiB.
        net.ParseFromString(payload)
    except DecodeError as exc:
        raise error(
            f"'{path}' is not a Caffe weights file: it does not parse as a binary caffe.NetParameter"
            f" ({exc}).",
            hint=_format_hint(payload),
        ) from None
    del payload
    if len(net.layer) and len(net.layers):
        raise error(
            f"'{path}' holds both 'layer' and V1 'layers' records; Caffe refuses such a file too.",
            hint="keep one form: upgrade the file with Caffe's upgrade_net_proto_binary tool.",
        )
    if not len(net.layer) and not len(net.layers):
        raise error(f"'{path}' holds no layers: it is empty or not a Caffe weights file.")
    layers = [_read_layer(record, path) for record in net.layer]
    layers += [_read_v1_layer(record, path) for record in net.layers]
    _check_unique_names(layers, path)
    return CaffeWeights(layers, net.name)


def _read_layer(record: Any, path: str | os.PathLike[str]) -> CaffeLayer:
    return CaffeLayer(record.name, record.type, _read_blobs(record.name, record.blobs, path))


def _read_v1_layer(record: Any, path: str | os.PathLike[str]) -> CaffeLayer:
    if record.HasField("layer"):
        v0 = record.layer
        return CaffeLayer(v0.name, v0.type, _read_blobs(v0.name, v0.blobs, path))
    number = record.type
    kind = _V1_LAYER_TYPES.get(number, str(number)) if record.HasField("type") else ""
    return CaffeLayer(record.name, kind, _read_blobs(record.name, record.blobs, path))


def _read_blobs(layer: str, blobs: Any, path: str | os.PathLike[str]) -> tuple[np.ndarray, ...]:
    return tuple(
        _blob_array(blob, f"blob {index} of layer '{layer}' in '{path}'") for index, blob in enumerate(blobs)
    )


def _blob_array(blob: Any, where: str) -> np.ndarray:
    # Caffe's Blob::FromProto: any of the four legacy fields makes the blob 4-D (missing ones
    # are 0); otherwise the shape is shape.dim, and no dims at all is a scalar.
    if any(blob.HasField(field) for field in ("num", "channels", "height", "width")):
        shape = [blob.num, blob.channels, blob.height, blob.width]
    else:
        shape = list(blob.shape.dim)
    if any(size < 0 for size in shape):
        raise error(f"{where} has a negative dimension in its shape {shape}.")
    # Caffe reads double_data when there is any, and data otherwise.
    values = blob.double_data if len(blob.double_data) else blob.data
    count = math.prod(shape)
    if count != len(values):
        raise error(
            f"{where} has shape {shape}, which holds {count} values, but stores {len(values)}.",
            hint="the file is damaged, or was written by a tool that does not follow Caffe's BlobProto.",
        )
    return np.array(values, dtype=np.float32).reshape(shape)


def _check_unique_names(layers: Sequence[CaffeLayer], path: str | os.PathLike[str]) -> None:
    # Weights are matched by layer name, so a name is ambiguous when two records share it and
    # either carries weights; repeated names of weightless layers (ReLU, Dropout...) are harmless.
    seen: dict[str, CaffeLayer] = {}
    for layer in layers:
        first = seen.setdefault(layer.name, layer)
        if first is not layer and (first.blobs or layer.blobs):
            raise error(
                f"'{path}' has two layers named '{layer.name}'; their weights cannot be told apart.",
                hint="rename one of them in the network that wrote the file.",
            )


def _format_hint(payload: bytes) -> str | None:
    """What the file looks like instead, when that is recognisable."""
    if payload.startswith(b"\x89HDF"):
        return "this is an HDF5 file (Caffe's .caffemodel.h5 snapshot format), which netspec does not read."
    head = payload[:512]
    if head and all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head):
        return "this looks like a text file; the .prototxt describes the network, the .caffemodel is binary."
    return None


def write_caffemodel(
    path: str | os.PathLike[str],
    blobs: Mapping[str, Sequence[np.ndarray]],
    *,
    legacy: bool = False,
    v1: bool = False,
    double: bool = False,
    name: str = "",
    types: Mapping[str, str] | None = None,
) -> None:
    """Write ``blobs`` (layer name -> arrays, in order) as a Caffe binary NetParameter.

    One ``layer`` record per entry, or a V1 ``layers`` record when ``v1``. Blob shapes go in
    ``shape``, or in the legacy num/channels/height/width (at most 4-D, padded on the left with
    1s) when ``legacy``; values go in ``data`` as float32, or in ``double_data`` when ``double``.
    ``types`` gives layers a type: a string such as ``Convolution``, or for V1 records an enum
    word such as ``CONVOLUTION``. The file is written atomically.
    """
    types = dict(types or {})
    strangers = sorted(set(types) - set(blobs))
    if strangers:
        raise error(f"types are given for layers that have no blobs entry: {', '.join(strangers)}.")
    net: Any = _NET_PARAMETER()
    if name:
        net.name = name
    records = net.layers if v1 else net.layer
    for layer_name, arrays in blobs.items():
        record = records.add(name=layer_name)
        if layer_name in types:
            record.type = _v1_type_number(types[layer_name]) if v1 else types[layer_name]
        for index, array in enumerate(arrays):
            where = f"blob {index} of layer '{layer_name}'"
            _fill_blob(record.blobs.add(), np.asarray(array), where, legacy=legacy, double=double)
    write_atomic(path, net.SerializeToString())


def _fill_blob(blob: Any, array: np.ndarray, where: str, *, legacy: bool, double: bool) -> None:
    if legacy:
        if array.ndim > 4:
            raise error(
                f"{where} is {array.ndim}-D, but legacy blob dimensions (num, channels, height,"
                " width) hold at most 4.",
                hint="write it with a 'shape' (legacy=False).",
            )
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
    else:
        blob.shape.SetInParent()  # a 0-D blob still records its (empty) shape
        blob.shape.dim.extend(array.shape)
    values = array.astype(np.float64 if double else np.float32, copy=False).ravel()
    (blob.double_data if double else blob.data).extend(values.tolist())


def _v1_type_number(word: str) -> int:
    if word not in _V1_LAYER_NUMBERS:
        raise error(
            f"'{word}' is not a V1 layer type.",
            hint=did_you_mean(word, _V1_LAYER_NUMBERS) or "V1 types are enum words such as CONVOLUTION.",
        )
    return _V1_LAYER_NUMBERS[word]
