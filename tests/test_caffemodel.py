"""Caffe binary weights (.caffemodel): files hand-encoded here in the protobuf wire format with
caffe.proto's field numbers are read as Caffe would read them, the writer produces the same
bytes, round trips keep every value, and broken files give errors that say what is wrong."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest

from netspec.caffemodel import CaffeWeights, read_caffemodel, write_caffemodel
from netspec.diagnostics import NetspecError

pytestmark = pytest.mark.unit


# --- a minimal protobuf wire-format encoder, independent of the protobuf runtime -------------

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def int_field(field: int, value: int) -> bytes:
    return key(field, VARINT) + varint(value)


def bytes_field(field: int, payload: bytes) -> bytes:
    return key(field, LENGTH_DELIMITED) + varint(len(payload)) + payload


def string_field(field: int, text: str) -> bytes:
    return bytes_field(field, text.encode())


def packed_floats(field: int, values: np.ndarray) -> bytes:
    return bytes_field(field, np.asarray(values, "<f4").tobytes())


def packed_doubles(field: int, values: np.ndarray) -> bytes:
    return bytes_field(field, np.asarray(values, "<f8").tobytes())


def packed_varints(field: int, values: list[int]) -> bytes:
    return bytes_field(field, b"".join(varint(v) for v in values))


# caffe.proto field numbers, written out here on their own (BVLC src/caffe/proto/caffe.proto).
NET_NAME, NET_LAYERS, NET_INPUT, NET_INPUT_DIM, NET_STATE, NET_LAYER = 1, 2, 3, 4, 6, 100
LAYER_NAME, LAYER_TYPE, LAYER_BOTTOM, LAYER_TOP, LAYER_PARAM, LAYER_BLOBS = 1, 2, 3, 4, 6, 7
LAYER_PHASE, LAYER_CONVOLUTION_PARAM = 10, 106
V1_LAYER, V1_BOTTOM, V1_TOP, V1_NAME, V1_TYPE, V1_BLOBS, V1_BLOBS_LR = 1, 2, 3, 4, 5, 6, 7
V1_CONVOLUTION_PARAM = 10
V0_NAME, V0_TYPE, V0_BLOBS = 1, 2, 50
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH, BLOB_DATA, BLOB_DIFF = 1, 2, 3, 4, 5, 6
BLOB_SHAPE, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF = 7, 8, 9
SHAPE_DIM = 1
V1_CONVOLUTION, V1_INNER_PRODUCT, V1_RELU = 4, 14, 18


def shaped_blob(values: np.ndarray) -> bytes:
    """A BlobProto as Caffe writes it today: packed data (5), then shape (7)."""
    return packed_floats(BLOB_DATA, values.ravel()) + bytes_field(
        BLOB_SHAPE, packed_varints(SHAPE_DIM, list(values.shape))
    )


def legacy_blob(values: np.ndarray, dims: tuple[int, int, int, int]) -> bytes:
    """A BlobProto as Caffe wrote it before 2015: num, channels, height, width, data."""
    fields = zip((BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH), dims, strict=True)
    return b"".join(int_field(f, d) for f, d in fields) + packed_floats(BLOB_DATA, values.ravel())


def write_bytes(tmp_path: Path, payload: bytes, name: str = "hand.caffemodel") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def read_error(path: Path) -> str:
    with pytest.raises(NetspecError) as caught:
        read_caffemodel(path)
    return caught.value.render()


WEIGHT = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3) / 7
BIAS = np.array([0.5, -1.25], dtype=np.float32)


# --- files encoded by hand: Caffe's field numbers, not just self-consistency -------------------


def test_reads_hand_encoded_layer_file_and_skips_unknown_fields(tmp_path: Path) -> None:
    conv = b"".join(
        [
            string_field(LAYER_NAME, "conv1"),
            string_field(LAYER_TYPE, "Convolution"),
            string_field(LAYER_BOTTOM, "data"),
            string_field(LAYER_TOP, "conv1"),
            bytes_field(LAYER_PARAM, key(3, FIXED32) + struct.pack("<f", 1.0)),  # ParamSpec.lr_mult
            bytes_field(LAYER_BLOBS, shaped_blob(WEIGHT)),
            bytes_field(LAYER_BLOBS, shaped_blob(BIAS)),
            int_field(LAYER_PHASE, 1),
            bytes_field(LAYER_CONVOLUTION_PARAM, int_field(1, 2) + int_field(4, 3)),
        ]
    )
    relu = string_field(LAYER_NAME, "relu1") + string_field(LAYER_TYPE, "ReLU")
    net = b"".join(
        [
            string_field(NET_NAME, "Tiny"),
            string_field(NET_INPUT, "data"),
            packed_varints(NET_INPUT_DIM, [1, 1, 5, 5]),
            bytes_field(NET_STATE, int_field(1, 1)),
            bytes_field(NET_LAYER, conv),
            bytes_field(NET_LAYER, relu),
        ]
    )
    weights = read_caffemodel(write_bytes(tmp_path, net))
    assert isinstance(weights, CaffeWeights)
    assert weights.name == "Tiny"
    assert list(weights) == ["conv1", "relu1"]
    assert [layer.type for layer in weights.layers] == ["Convolution", "ReLU"]
    weight, bias = weights["conv1"]
    assert weight.dtype == np.float32 and weight.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(weight, WEIGHT)
    np.testing.assert_array_equal(bias, BIAS)
    assert weights["relu1"] == []


def test_reads_hand_encoded_v1_file_with_enum_types_and_legacy_dims(tmp_path: Path) -> None:
    fc = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    conv = b"".join(
        [
            string_field(V1_BOTTOM, "data"),
            string_field(V1_TOP, "conv1"),
            string_field(V1_NAME, "conv1"),
            int_field(V1_TYPE, V1_CONVOLUTION),
            bytes_field(V1_BLOBS, legacy_blob(WEIGHT, (2, 1, 3, 3))),
            bytes_field(V1_BLOBS, legacy_blob(BIAS, (1, 1, 1, 2))),
            packed_floats(V1_BLOBS_LR, np.array([1.0, 2.0])),
            bytes_field(V1_CONVOLUTION_PARAM, int_field(1, 2)),
        ]
    )
    ip = b"".join(
        [
            string_field(V1_NAME, "fc"),
            int_field(V1_TYPE, V1_INNER_PRODUCT),
            bytes_field(V1_BLOBS, legacy_blob(fc, (1, 1, 4, 6))),
        ]
    )
    relu = string_field(V1_NAME, "relu") + int_field(V1_TYPE, V1_RELU)
    net = string_field(NET_NAME, "Old") + b"".join(bytes_field(NET_LAYERS, r) for r in (conv, ip, relu))
    weights = read_caffemodel(write_bytes(tmp_path, net))
    assert list(weights) == ["conv1", "fc", "relu"]
    assert [layer.type for layer in weights.layers] == ["CONVOLUTION", "INNER_PRODUCT", "RELU"]
    weight, bias = weights["conv1"]
    np.testing.assert_array_equal(weight, WEIGHT)
    assert bias.shape == (1, 1, 1, 2)  # legacy blobs come back 4-D, as stored
    np.testing.assert_array_equal(bias.ravel(), BIAS)
    (fc_weight,) = weights["fc"]
    assert fc_weight.shape == (1, 1, 4, 6)
    np.testing.assert_array_equal(fc_weight.reshape(4, 6), fc)


def test_reads_v0_layers_wrapped_in_v1_records(tmp_path: Path) -> None:
    v0 = b"".join(
        [
            string_field(V0_NAME, "conv1"),
            string_field(V0_TYPE, "conv"),
            bytes_field(V0_BLOBS, legacy_blob(WEIGHT, (2, 1, 3, 3))),
        ]
    )
    record = bytes_field(V1_LAYER, v0) + string_field(V1_BOTTOM, "data") + string_field(V1_TOP, "conv1")
    weights = read_caffemodel(write_bytes(tmp_path, bytes_field(NET_LAYERS, record)))
    assert weights.layer("conv1").type == "conv"
    np.testing.assert_array_equal(weights["conv1"][0], WEIGHT)


def test_unknown_v1_type_number_is_kept(tmp_path: Path) -> None:
    record = string_field(V1_NAME, "axpy") + int_field(V1_TYPE, 50)  # a fork's own layer type
    weights = read_caffemodel(write_bytes(tmp_path, bytes_field(NET_LAYERS, record)))
    assert weights.layer("axpy").type == "50"


def test_double_data_is_read_and_gradients_are_skipped(tmp_path: Path) -> None:
    values = np.array([1e-3, 2.5, -7.0], dtype=np.float64)
    blob = b"".join(
        [
            packed_floats(BLOB_DIFF, np.ones(3)),
            bytes_field(BLOB_SHAPE, packed_varints(SHAPE_DIM, [3])),
            packed_doubles(BLOB_DOUBLE_DATA, values),
            packed_doubles(BLOB_DOUBLE_DIFF, np.ones(3)),
        ]
    )
    layer = string_field(LAYER_NAME, "scale") + bytes_field(LAYER_BLOBS, blob)
    (array,) = read_caffemodel(write_bytes(tmp_path, bytes_field(NET_LAYER, layer)))["scale"]
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, values.astype(np.float32))


def test_unpacked_repeated_fields_are_read(tmp_path: Path) -> None:
    # Parsers must accept repeated numbers one record each, as well as packed.
    data = b"".join(key(BLOB_DATA, FIXED32) + struct.pack("<f", v) for v in BIAS)
    shape = bytes_field(BLOB_SHAPE, b"".join(int_field(SHAPE_DIM, d) for d in BIAS.shape))
    layer = string_field(LAYER_NAME, "b") + bytes_field(LAYER_BLOBS, data + shape)
    (array,) = read_caffemodel(write_bytes(tmp_path, bytes_field(NET_LAYER, layer)))["b"]
    np.testing.assert_array_equal(array, BIAS)


def test_reads_a_file_larger_than_64_mib(tmp_path: Path) -> None:
    # The old C++ protobuf parser stopped at 64 MiB by default; VGG-16 weights are 528 MiB.
    count = 17 * 2**20  # 68 MiB of float32
    values = np.arange(count, dtype=np.float32)
    layer = string_field(LAYER_NAME, "fc6") + bytes_field(LAYER_BLOBS, shaped_blob(values))
    path = write_bytes(tmp_path, bytes_field(NET_LAYER, layer))
    assert path.stat().st_size > 64 * 2**20
    (array,) = read_caffemodel(path)["fc6"]
    assert array.shape == (count,)
    np.testing.assert_array_equal(array, values)


# --- the writer produces Caffe's bytes ------------------------------------------------------------


def test_writer_bytes_are_caffe_layer_records(tmp_path: Path) -> None:
    path = tmp_path / "w.caffemodel"
    write_caffemodel(
        path, {"conv1": [WEIGHT, BIAS], "relu1": []}, name="Tiny", types={"conv1": "Convolution"}
    )
    conv = b"".join(
        [
            string_field(LAYER_NAME, "conv1"),
            string_field(LAYER_TYPE, "Convolution"),
            bytes_field(LAYER_BLOBS, shaped_blob(WEIGHT)),
            bytes_field(LAYER_BLOBS, shaped_blob(BIAS)),
        ]
    )
    relu = string_field(LAYER_NAME, "relu1")
    expected = string_field(NET_NAME, "Tiny") + bytes_field(NET_LAYER, conv) + bytes_field(NET_LAYER, relu)
    assert path.read_bytes() == expected


def test_writer_bytes_are_caffe_v1_records_with_legacy_dims(tmp_path: Path) -> None:
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, {"fc": [BIAS]}, v1=True, legacy=True, types={"fc": "INNER_PRODUCT"})
    record = b"".join(
        [
            string_field(V1_NAME, "fc"),
            int_field(V1_TYPE, V1_INNER_PRODUCT),
            bytes_field(V1_BLOBS, legacy_blob(BIAS, (1, 1, 1, 2))),
        ]
    )
    assert path.read_bytes() == bytes_field(NET_LAYERS, record)


def test_writer_puts_double_values_in_double_data(tmp_path: Path) -> None:
    path = tmp_path / "w.caffemodel"
    values = np.array([0.1, 0.2], dtype=np.float64)
    write_caffemodel(path, {"s": [values]}, double=True)
    blob = bytes_field(BLOB_SHAPE, packed_varints(SHAPE_DIM, [2])) + packed_doubles(BLOB_DOUBLE_DATA, values)
    layer = string_field(LAYER_NAME, "s") + bytes_field(LAYER_BLOBS, blob)
    assert path.read_bytes() == bytes_field(NET_LAYER, layer)


# --- round trips ----------------------------------------------------------------------------------

BLOBS = {
    "conv1": [WEIGHT, BIAS],
    "relu1": [],
    "bn": [np.full(2, 0.25, np.float32), np.array([3.0, 4.0], np.float32), np.array([0.999], np.float32)],
    "fc": [np.linspace(-2, 2, 30, dtype=np.float32).reshape(5, 6)],
    "scalar": [np.array(1.5, np.float32)],
    "empty": [np.zeros((0, 3), np.float32)],
}


@pytest.mark.parametrize(
    ("v1", "legacy", "double"),
    list(itertools.product([False, True], repeat=3)),
    ids=lambda flag: str(flag),
)
def test_round_trip(tmp_path: Path, v1: bool, legacy: bool, double: bool) -> None:
    path = tmp_path / "r.caffemodel"
    write_caffemodel(path, BLOBS, v1=v1, legacy=legacy, double=double, name="net")
    weights = read_caffemodel(path)
    assert weights.name == "net"
    assert list(weights) == list(BLOBS)
    for name, arrays in BLOBS.items():
        read = weights[name]
        assert len(read) == len(arrays), name
        for original, back in zip(arrays, read, strict=True):
            expected_shape = (1,) * (4 - original.ndim) + original.shape if legacy else original.shape
            assert back.shape == expected_shape, name
            assert back.dtype == np.float32
            np.testing.assert_array_equal(back.reshape(original.shape), original)


def test_round_trip_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "t.caffemodel"
    write_caffemodel(path, {"c": [BIAS], "r": []}, types={"c": "Convolution", "r": "ReLU"})
    assert [layer.type for layer in read_caffemodel(path).layers] == ["Convolution", "ReLU"]
    write_caffemodel(path, {"c": [BIAS], "r": []}, v1=True, types={"c": "CONVOLUTION"})
    assert [layer.type for layer in read_caffemodel(path).layers] == ["CONVOLUTION", ""]


def test_float64_input_is_stored_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "f.caffemodel"
    write_caffemodel(path, {"x": [np.array([0.1, 1 / 3])]})
    np.testing.assert_array_equal(read_caffemodel(path)["x"][0], np.array([0.1, 1 / 3], np.float32))


def test_repeated_name_of_weightless_layers_is_accepted(tmp_path: Path) -> None:
    relu = string_field(LAYER_NAME, "relu")
    net = b"".join(bytes_field(NET_LAYER, r) for r in (relu, shaped_blob_layer("fc"), relu))
    weights = read_caffemodel(write_bytes(tmp_path, net))
    assert list(weights) == ["relu", "fc"]
    assert len(weights.layers) == 3


def shaped_blob_layer(name: str) -> bytes:
    return string_field(LAYER_NAME, name) + bytes_field(LAYER_BLOBS, shaped_blob(BIAS))


# --- errors -----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = read_error(tmp_path / "nope.caffemodel")
    assert "cannot read Caffe weights file" in message and "No such file or directory" in message


def test_directory_is_unreadable(tmp_path: Path) -> None:
    assert "cannot read Caffe weights file" in read_error(tmp_path)


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        pytest.param(b"\x07garbage\xff\xff", None, id="garbage"),
        pytest.param(
            b'name: "LeNet"\nlayer {\n  name: "conv1"\n}\n', "looks like a text file", id="prototxt"
        ),
        pytest.param(b"\x89HDF\r\n\x1a\n" + bytes(64), "HDF5 file", id="hdf5"),
    ],
)
def test_not_a_net_parameter(tmp_path: Path, payload: bytes, hint: str | None) -> None:
    message = read_error(write_bytes(tmp_path, payload))
    assert "is not a Caffe weights file: it does not parse as a binary caffe.NetParameter" in message
    if hint:
        assert hint in message


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "t.caffemodel"
    write_caffemodel(path, {"conv1": [WEIGHT, BIAS]})
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) - 5])  # cut inside the last blob's data
    assert "does not parse as a binary caffe.NetParameter" in read_error(path)


def test_empty_file(tmp_path: Path) -> None:
    assert "holds no layers" in read_error(write_bytes(tmp_path, b""))


def test_data_length_must_fill_the_shape(tmp_path: Path) -> None:
    blob = packed_floats(BLOB_DATA, np.ones(5)) + bytes_field(BLOB_SHAPE, packed_varints(SHAPE_DIM, [2, 3]))
    layer = string_field(LAYER_NAME, "fc") + bytes_field(LAYER_BLOBS, blob)
    message = read_error(write_bytes(tmp_path, bytes_field(NET_LAYER, layer)))
    assert "blob 0 of layer 'fc'" in message
    assert "has shape [2, 3], which holds 6 values, but stores 5" in message


def test_legacy_dims_missing_count_as_zero(tmp_path: Path) -> None:
    # Caffe's rule: any legacy field makes the blob 4-D, absent ones 0, so 'num: 2' alone is empty.
    blob = int_field(BLOB_NUM, 2) + packed_floats(BLOB_DATA, BIAS)
    layer = string_field(LAYER_NAME, "b") + bytes_field(LAYER_BLOBS, blob)
    message = read_error(write_bytes(tmp_path, bytes_field(NET_LAYER, layer)))
    assert "has shape [2, 0, 0, 0], which holds 0 values, but stores 2" in message


def test_negative_dimension(tmp_path: Path) -> None:
    blob = packed_floats(BLOB_DATA, BIAS) + bytes_field(BLOB_SHAPE, packed_varints(SHAPE_DIM, [-1, -2]))
    layer = string_field(LAYER_NAME, "b") + bytes_field(LAYER_BLOBS, blob)
    message = read_error(write_bytes(tmp_path, bytes_field(NET_LAYER, layer)))
    assert "negative dimension in its shape [-1, -2]" in message


def test_duplicate_weighted_layer_names(tmp_path: Path) -> None:
    net = bytes_field(NET_LAYER, shaped_blob_layer("fc")) + bytes_field(
        NET_LAYER, string_field(LAYER_NAME, "fc")
    )
    assert "has two layers named 'fc'" in read_error(write_bytes(tmp_path, net))


def test_layer_and_v1_layers_together(tmp_path: Path) -> None:
    net = bytes_field(NET_LAYER, string_field(LAYER_NAME, "a")) + bytes_field(
        NET_LAYERS, string_field(V1_NAME, "b")
    )
    assert "holds both 'layer' and V1 'layers' records" in read_error(write_bytes(tmp_path, net))


def test_legacy_writer_refuses_more_than_four_dims(tmp_path: Path) -> None:
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, {"a": [BIAS]})
    before = path.read_bytes()
    with pytest.raises(NetspecError, match=r"blob 0 of layer 'c3d' is 5-D, but legacy blob dimensions"):
        write_caffemodel(path, {"c3d": [np.zeros((1, 1, 1, 1, 2))]}, legacy=True)
    assert path.read_bytes() == before  # nothing half-written


def test_writer_rejects_unknown_v1_type(tmp_path: Path) -> None:
    with pytest.raises(NetspecError) as caught:
        write_caffemodel(tmp_path / "w.caffemodel", {"c": []}, v1=True, types={"c": "Convolution"})
    message = caught.value.render()
    assert "'Convolution' is not a V1 layer type" in message
    assert "did you mean 'CONVOLUTION'?" in message


def test_writer_rejects_types_for_absent_layers(tmp_path: Path) -> None:
    with pytest.raises(NetspecError, match="types are given for layers that have no blobs entry: x"):
        write_caffemodel(tmp_path / "w.caffemodel", {"c": []}, types={"x": "ReLU"})
