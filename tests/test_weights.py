"""Weights: fillers against their definitions (Caffe's filler.hpp), deterministic per name; weight
files (.safetensors, .npz) read by name with errors that name every problem; torchvision-named
files driving the compiled zoo models, checked against the float64 reference executor."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from netspec.caffe import read_caffe
from netspec.cli import main
from netspec.compiler import load_graph
from netspec.diagnostics import NetspecError, SourceFile
from netspec.elaborate import elaborate
from netspec.graph import Graph
from netspec.layers.base import Filler
from netspec.typed import bind
from netspec.weightfile import fit_named_arrays, load_weights
from netspec.weights import initialize_weights

ZOO = Path(__file__).resolve().parent.parent / "zoo"


def build(text: str) -> Graph:
    return elaborate(SourceFile("t.net", text))


def initial(text: str, seed: int = 0) -> dict[str, np.ndarray]:
    graph = build(text)
    return initialize_weights(bind(graph, 1), seed)


def conv_spec(filler: str, cin: int = 64, cout: int = 128, k: int = 3, extra: str = "") -> str:
    return (
        f"input data: [N, {cin}, 8, 8]\n"
        f"Convolution c {{ num_output: {cout}  kernel_size: {k}  weight_filler {{ {filler} }}  {extra} }}\n"
    )


# ---------------------------------------------------------------------------------- fillers


@pytest.mark.unit
def test_filler_blocks_parse_as_in_caffe() -> None:
    graph = build(
        conv_spec(
            'type: "msra"  variance_norm: FAN_OUT',
            extra='bias_filler { type: "constant"  value: 0.5 }',
        )
    )
    params = graph.nodes[1].layer.params
    assert params.weight_filler == Filler("msra", variance_norm="FAN_OUT")
    assert params.bias_filler == Filler("constant", value=0.5)
    # Caffe's default type is constant 0, and fields a type does not read are ignored.
    assert build(conv_spec("std: 0.01")).nodes[1].layer.params.weight_filler == Filler("constant")
    assert build(conv_spec('type: "xavier"  std: 0.01')).nodes[1].layer.params.weight_filler == Filler(
        "xavier"
    )
    # Inside a Caffe-style convolution_param block too.
    nested = build(
        "input data: [N, 3, 8, 8]\n"
        "Convolution c { convolution_param { num_output: 4  kernel_size: 3\n"
        '  weight_filler { type: "xavier" } } }\n'
    )
    assert nested.nodes[1].layer.params.weight_filler == Filler("xavier")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("filler", "message", "column", "hint"),
    [
        ('type: "msra"  sdt: 2', "a filler has no field 'sdt'", 80, "did you mean 'std'?"),
        ('type: "mrsa"', "filler field 'type': expected one of constant", 72, "did you mean 'msra'?"),
        ('type: "gaussian"  std: -1', "filler field 'std': expected a number >= 0", 89, None),
        ('type: "uniform"  min: 2  max: 1', "a uniform filler needs min <= max", 50, None),
        ('type: "bilinear"', None, None, None),
    ],
)
def test_bad_fillers_point_at_the_field(filler: str, message: str | None, column: int, hint: str) -> None:
    text = conv_spec(filler, k=3)
    if message is None:  # bilinear on a non-square kernel
        text = text.replace("kernel_size: 3", "kernel_size: [3, 5]")
        message, column = "the bilinear filler needs a square kernel, got 3x5", 55
    with pytest.raises(NetspecError) as caught:
        build(text)
    diagnostic = caught.value.diagnostics[0]
    assert message in diagnostic.message
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (2, column)
    assert diagnostic.hint == hint


@pytest.mark.unit
def test_filler_block_on_a_layer_without_fillers_is_refused() -> None:
    with pytest.raises(NetspecError, match="'weight_filler' is a block"):
        build('input data: [N, 3, 8, 8]\nReLU r { weight_filler { type: "msra" } }\n')


@pytest.mark.unit
def test_constant_filler_is_exact() -> None:
    weights = initial(conv_spec('type: "constant"  value: -0.375', extra="bias_filler { value: 2.5 }"))
    assert np.array_equal(weights["c.weight"], np.full((128, 64, 3, 3), -0.375, np.float32))
    assert np.array_equal(weights["c.bias"], np.full(128, 2.5, np.float32))


@pytest.mark.unit
def test_gaussian_filler_moments() -> None:
    values = initial(conv_spec('type: "gaussian"  mean: 0.5  std: 0.02'))["c.weight"].astype(np.float64)
    assert values.dtype == np.float64 and values.size == 73_728
    # The standard error of the mean is 0.02 / sqrt(73728) ≈ 7e-5.
    assert abs(values.mean() - 0.5) < 5e-4
    assert abs(values.std() - 0.02) < 0.02 * 0.02


@pytest.mark.unit
def test_sparse_gaussian_keeps_sparse_over_num_of_the_values() -> None:
    values = initial(conv_spec('type: "gaussian"  sparse: 32'))["c.weight"]
    # Caffe keeps each value with probability sparse / num_outputs = 32 / 128.
    assert abs(np.count_nonzero(values) / values.size - 0.25) < 0.01


@pytest.mark.unit
def test_uniform_filler_bounds_and_moments() -> None:
    values = initial(conv_spec('type: "uniform"  min: -0.25  max: 0.75'))["c.weight"].astype(np.float64)
    assert values.min() >= -0.25 and values.max() <= 0.75
    assert values.min() < -0.24 and values.max() > 0.74
    assert abs(values.mean() - 0.25) < 0.01
    assert abs(values.var() - 1.0 / 12) < 0.01 / 12


@pytest.mark.unit
def test_positive_unitball_rows_sum_to_one() -> None:
    values = initial(conv_spec('type: "positive_unitball"'))["c.weight"].astype(np.float64)
    assert values.min() >= 0
    assert np.allclose(values.reshape(128, -1).sum(axis=1), 1.0, rtol=1e-5)


# Conv weight [Cout=128, Cin=64, 3, 3]: Caffe's fan_in = count / num = 64·9, fan_out = count /
# channels = 128·9.
FANS = {"FAN_IN": 64 * 9, "FAN_OUT": 128 * 9, "AVERAGE": (64 * 9 + 128 * 9) / 2}


@pytest.mark.unit
@pytest.mark.parametrize("norm", FANS)
def test_xavier_filler_bound_from_the_fans(norm: str) -> None:
    values = initial(conv_spec(f'type: "xavier"  variance_norm: {norm}'))["c.weight"].astype(np.float64)
    scale = math.sqrt(3.0 / FANS[norm])
    assert np.abs(values).max() <= scale * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * scale
    assert abs(values.var() - scale**2 / 3) < 0.02 * scale**2 / 3


@pytest.mark.unit
@pytest.mark.parametrize("norm", FANS)
def test_msra_filler_std_from_the_fans(norm: str) -> None:
    values = initial(conv_spec(f'type: "msra"  variance_norm: {norm}'))["c.weight"].astype(np.float64)
    std = math.sqrt(2.0 / FANS[norm])
    assert abs(values.mean()) < 0.02 * std
    assert abs(values.std() - std) < 0.01 * std


@pytest.mark.unit
def test_fans_of_fully_connected_and_deconvolution_weights() -> None:
    weights = initial(
        "input data: [N, 16, 4, 4]\n"
        "Deconvolution up { num_output: 32  kernel_size: 4  stride: 2\n"
        '  weight_filler { type: "xavier"  variance_norm: FAN_OUT } }\n'
        'InnerProduct fc { num_output: 300  weight_filler { type: "xavier" } }\n'
    )
    # Deconvolution weight [Cin=16, Cout=32, 4, 4]: fan_out = count / shape[1] = 16·16.
    assert np.abs(weights["up.weight"]).max() <= math.sqrt(3.0 / (16 * 16))
    assert np.abs(weights["up.weight"]).max() > 0.98 * math.sqrt(3.0 / (16 * 16))
    # InnerProduct weight [300, in = 32·10·10]: fan_in = 3200.
    assert np.abs(weights["fc.weight"]).max() <= math.sqrt(3.0 / 3200)
    assert np.abs(weights["fc.weight"]).max() > 0.99 * math.sqrt(3.0 / 3200)


@pytest.mark.unit
def test_locally_connected_weights_take_the_fans_of_one_positions_filter() -> None:
    weights = initial("input data: [N, 8, 6, 6]\nLocallyConnected lc { num_output: 16  kernel_size: 3 }\n")
    # Weight [Ho·Wo = 16, patch = 8·3·3, 16]: each position's filter has fan_in 72, as a 3×3
    # convolution over 8 channels, not Caffe's count / shape[0] of the stacked layout.
    bound = math.sqrt(6.0 / 72)
    assert np.abs(weights["lc.weight"]).max() <= bound
    assert np.abs(weights["lc.weight"]).max() > 0.98 * bound


@pytest.mark.unit
def test_default_weights_are_he_uniform_biases_zero_batchnorm_identity() -> None:
    weights = initial(
        conv_spec('type: "msra"').replace('weight_filler { type: "msra" }', "") + "BatchNorm bn\n"
    )
    bound = math.sqrt(6.0 / (64 * 9))
    assert np.abs(weights["c.weight"]).max() <= bound and np.abs(weights["c.weight"]).max() > 0.99 * bound
    assert not weights["c.bias"].any()
    assert np.array_equal(weights["bn.weight"], np.ones(128, np.float32))
    assert np.array_equal(weights["bn.running_var"], np.ones(128, np.float32))
    assert not weights["bn.bias"].any() and not weights["bn.running_mean"].any()


def caffe_bilinear(size: int) -> np.ndarray:
    """Caffe's BilinearFiller, index by index as filler.hpp writes it."""
    f = math.ceil(size / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    kernel = np.empty(size * size)
    for i in range(size * size):
        x, y = i % size, (i // size) % size
        kernel[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return kernel.reshape(size, size)


@pytest.mark.unit
@pytest.mark.parametrize(("size", "stride"), [(4, 2), (16, 8), (64, 32), (3, 1), (5, 3)])
def test_bilinear_filler_is_caffes_upsampling_kernel(size: int, stride: int) -> None:
    weights = initial(
        "input data: [N, 3, 8, 8]\n"
        f"Deconvolution up {{ num_output: 3  group: 3  kernel_size: {size}  stride: {stride}  "
        'bias_term: false  weight_filler { type: "bilinear" } }\n'
    )
    kernel = weights["up.weight"]
    assert kernel.shape == (3, 1, size, size)
    for channel in range(3):
        assert np.allclose(kernel[channel, 0], caffe_bilinear(size), rtol=0, atol=1e-7)
    if size == 4:  # FCN's 2x upsampling kernel
        assert np.allclose(kernel[0, 0, 0], [0.0625, 0.1875, 0.1875, 0.0625])
        assert np.allclose(kernel[0, 0, 1], [0.1875, 0.5625, 0.5625, 0.1875])


@pytest.mark.unit
def test_values_depend_on_seed_and_name_not_on_layer_order() -> None:
    head = "input data: [N, 3, 8, 8]\n"
    a = 'Convolution a { bottom: data  num_output: 8  kernel_size: 3  weight_filler { type: "msra" } }\n'
    b = 'Convolution b { bottom: data  num_output: 8  kernel_size: 3  weight_filler { type: "gaussian" } }\n'
    fc = 'InnerProduct fc { bottom: b  num_output: 5  weight_filler { type: "xavier" } }\n'
    first = initial(head + a + b + fc, seed=7)
    reordered = initial(head + b + fc + a, seed=7)
    assert sorted(first) == sorted(reordered)
    for name, value in first.items():
        assert np.array_equal(value, reordered[name]), name
    other_seed = initial(head + a + b + fc, seed=8)
    assert not np.array_equal(first["a.weight"], other_seed["a.weight"])
    assert not np.array_equal(first["a.weight"], first["b.weight"])


# ---------------------------------------------------------------------------------- Caffe files

CAFFE_NET = """
name: "fillers"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 bias_term: false
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 3 } } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" prelu_param { filler { value: 0.1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
  param { lr_mult: 0 } param { lr_mult: 0 }
  inner_product_param { num_output: 2 weight_filler { type: "xavier" variance_norm: AVERAGE }
    bias_filler { type: "constant" value: 0.2 } } }
"""


@pytest.mark.unit
def test_caffe_fillers_are_read() -> None:
    graph = read_caffe(SourceFile("net.prototxt", CAFFE_NET))
    conv, fc = graph.nodes[1].layer.params, graph.nodes[3].layer.params
    assert conv.weight_filler == Filler("gaussian", std=0.01)
    assert conv.bias_filler is None  # Caffe ignores the bias filler of a layer without a bias
    assert fc.weight_filler == Filler("xavier", variance_norm="AVERAGE")
    weights = initialize_weights(bind(graph, 1))
    assert np.array_equal(weights["fc.bias"], np.full(2, 0.2, np.float32))
    assert np.array_equal(weights["prelu.weight"], np.full(4, 0.1, np.float32))


@pytest.mark.unit
def test_prelu_scale_and_bias_fillers_and_their_caffe_defaults() -> None:
    head = "input data: [N, 6, 4, 4]\n"
    defaults = initial(head + "PReLU p\nScale s { bias_term: true }\nBias b\n")
    assert np.array_equal(defaults["p.weight"], np.full(6, 0.25, np.float32))
    assert np.array_equal(defaults["s.weight"], np.ones(6, np.float32))
    assert not defaults["s.bias"].any() and not defaults["b.bias"].any()
    given = initial(
        head + "PReLU p { filler { value: 0.1 } }\n"
        "Scale s { bias_term: true  filler { value: 2 }\n"
        '  bias_filler { type: "uniform"  min: 1  max: 1.5 } }\n'
        "Bias b { filler { value: -1 } }\n"
    )
    assert np.array_equal(given["p.weight"], np.full(6, 0.1, np.float32))
    assert np.array_equal(given["s.weight"], np.full(6, 2.0, np.float32))
    assert given["s.bias"].min() >= 1 and given["s.bias"].max() <= 1.5
    assert np.array_equal(given["b.bias"], np.full(6, -1.0, np.float32))


# ---------------------------------------------------------------------------------- weight files

SMALL = (
    "input data: [N, 3, 8, 8]\n"
    "Convolution conv1 { num_output: 4  kernel_size: 3  pad: 1 }\n"
    "BatchNorm bn1\n"
    "ReLU relu\n"
    "InnerProduct fc { num_output: 5 }\n"
)


def small_spec(tmp_path: Path) -> Path:
    path = tmp_path / "small.net"
    path.write_text(SMALL)
    return path


def torch_style(graph: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    """Random float32 arrays under the graph's names (a torchvision state_dict's keys), with
    BatchNorm's int64 num_batches_tracked where torchvision stores it."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for arrays_of_node in bind(graph).arrays.values():
        for array in arrays_of_node:
            shape, name = array.spec.shape, array.name
            if name.endswith("running_var") or (name.endswith("weight") and len(shape) == 1):
                arrays[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
            elif len(shape) > 1:
                fan_in = math.prod(shape[1:])
                arrays[name] = (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)
            else:
                arrays[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
            if name.endswith("running_var"):
                arrays[name.replace("running_var", "num_batches_tracked")] = np.array(1234, np.int64)
    return arrays


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(arrays, str(path))
    else:
        np.savez(path, **arrays)


def load(spec: Path, weights: Path) -> dict[str, np.ndarray]:
    graph = load_graph(spec)
    return load_weights(str(weights), bind(graph, 1))


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_files_load_by_name_and_skip_num_batches_tracked(tmp_path: Path, suffix: str) -> None:
    spec = small_spec(tmp_path)
    arrays = torch_style(load_graph(spec))
    assert arrays["bn1.num_batches_tracked"].dtype == np.int64
    path = tmp_path / f"w{suffix}"
    save(path, arrays)
    loaded = load(spec, path)
    assert sorted(loaded) == sorted(k for k in arrays if not k.endswith("num_batches_tracked"))
    for name, value in loaded.items():
        assert value.dtype == np.float32 and np.array_equal(value, arrays[name]), name


@pytest.mark.unit
def test_float16_float64_and_bfloat16_become_float32(tmp_path: Path) -> None:
    spec = small_spec(tmp_path)
    arrays = torch_style(load_graph(spec))
    mixed = dict(arrays)
    mixed["conv1.weight"] = arrays["conv1.weight"].astype(np.float16)
    mixed["fc.weight"] = arrays["fc.weight"].astype(np.float64)
    path = tmp_path / "w.safetensors"
    save(path, mixed)
    loaded = load(spec, path)
    assert np.array_equal(
        loaded["conv1.weight"], arrays["conv1.weight"].astype(np.float16).astype(np.float32)
    )
    assert np.array_equal(loaded["fc.weight"], arrays["fc.weight"])

    # bfloat16, which numpy has no type for: the top 16 bits of a float32, written here by hand
    # in the safetensors layout (8-byte little-endian header size, JSON header, raw data).
    bf16 = {
        name: (value.view(np.uint32) >> 16).astype("<u2")
        for name, value in arrays.items()
        if value.dtype == np.float32
    }
    header, offset, blobs = {}, 0, []
    for name, bits in bf16.items():
        header[name] = {
            "dtype": "BF16",
            "shape": list(bits.shape),
            "data_offsets": [offset, offset + bits.nbytes],
        }
        offset += bits.nbytes
        blobs.append(bits.tobytes())
    text = json.dumps(header).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    loaded = load(spec, path)
    for name, bits in bf16.items():
        truncated = (bits.astype(np.uint32) << 16).view(np.float32)
        assert np.array_equal(loaded[name], truncated), name
        assert np.allclose(loaded[name], arrays[name], rtol=2**-7, atol=0)


@pytest.mark.unit
def test_safetensors_arrays_are_views_of_the_mapped_file(tmp_path: Path) -> None:
    import mmap

    spec = small_spec(tmp_path)
    arrays = torch_style(load_graph(spec))
    path = tmp_path / "w.safetensors"
    save(path, arrays)
    loaded = load(spec, path)
    for name, value in loaded.items():
        assert np.array_equal(value, arrays[name]), name
        # No copy on the way: each array's memory is the file's mapped pages, read-only.
        base: object = value
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap), name
        assert not value.flags.writeable, name


def cli(*args: str) -> int:
    return main(list(args))


@pytest.mark.unit
def test_integer_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = small_spec(tmp_path)
    arrays = torch_style(load_graph(spec))
    arrays["fc.bias"] = np.arange(5, dtype=np.int32)
    path = tmp_path / "w.npz"
    save(path, arrays)
    assert cli("compile", str(spec), "--weights", str(path), "-o", str(tmp_path / "m.onnx")) == 1
    err = capsys.readouterr().err
    assert f"{path}: weights must be floating point; fc.bias (int32) is not" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.unit
def test_a_file_that_does_not_fit_names_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = small_spec(tmp_path)
    arrays = torch_style(load_graph(spec))
    arrays["conv1.weights"] = arrays.pop("conv1.weight")  # a typo
    arrays["fc.weight"] = arrays["fc.weight"][:, :10]  # the wrong shape
    arrays["head.bias"] = np.zeros(3, np.float32)  # not in the net
    path = tmp_path / "w.safetensors"
    save(path, arrays)
    output = tmp_path / "m.onnx"
    assert cli("compile", str(spec), "--weights", str(path), "-o", str(output)) == 1
    err = capsys.readouterr().err
    assert f"error: the weights in {path} do not fit the net" in err
    assert "missing 1 array(s): conv1.weight [4, 3, 3, 3] (did you mean 'conv1.weights'?)" in err
    assert "shapes that do not fit: fc.weight: file [5, 10], net [5, 256]" in err
    assert "arrays the net does not have: conv1.weights (did you mean 'conv1.weight'?); head.bias" in err
    assert not output.exists()


class _Marker:
    """Unpickling this would create a file: proof that loading runs no code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.path,))


@pytest.mark.unit
def test_pickled_npz_is_refused_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = small_spec(tmp_path)
    marker = tmp_path / "executed"
    path = tmp_path / "evil.npz"
    np.savez(path, **{"conv1.weight": np.array([_Marker(marker)], dtype=object)})
    assert cli("check", str(spec)) == 0
    assert cli("run", str(spec), "--weights", str(path), "--device", "cpu") == 1
    assert "pickled Python objects, which netspec does not load" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("w.safetensors", b"not a safetensors file", "not a safetensors file"),
        ("w.npz", b"not a zip", "not an npz archive"),
        ("w.pt", b"", "unknown weights format '.pt'; expected one of .safetensors, .npz, .caffemodel"),
        ("absent.npz", None, "no such weights file"),
    ],
)
def test_unreadable_files_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, message: str
) -> None:
    spec = small_spec(tmp_path)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert cli("compile", str(spec), "--weights", str(path), "-o", str(tmp_path / "m.onnx")) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


# ---------------------------------------------------------------------------------- netspec weights


@pytest.mark.unit
def test_weights_command_lists_every_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = small_spec(tmp_path)
    assert cli("weights", str(spec), "--format", "json") == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {a["name"]: (a["shape"], a["dtype"], a["kind"], a["frozen"]) for a in listing["arrays"]}
    assert list(rows) == [
        "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "fc.weight", "fc.bias",
    ]  # fmt: skip
    assert rows["conv1.weight"] == ([4, 3, 3, 3], "float32", "param", False)
    assert rows["bn1.running_var"] == ([4], "float32", "buffer", False)
    assert rows["fc.weight"] == ([5, 4 * 8 * 8], "float32", "param", False)

    assert cli("weights", str(spec)) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["name", "shape", "dtype", "kind"]
    assert text[1].split() == ["conv1.weight", "4x3x3x3", "float32", "param"]
    values = 108 + 4 + 4 * 4 + 5 * 256 + 5
    assert text[-1] == f"8 arrays, {values:,} values ({4 * values:,} bytes as float32)"


@pytest.mark.zoo
def test_weights_listing_of_resnet50_totals_torchvisions_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("weights", str(ZOO / "resnet50.net"), "--format", "json") == 0
    arrays = json.loads(capsys.readouterr().out)["arrays"]
    totals = {"param": 0, "buffer": 0}
    for entry in arrays:
        totals[entry["kind"]] += math.prod(entry["shape"])
    # torchvision's ResNet-50: num_params 25,557,032; BatchNorm running statistics 2 x 26,560.
    assert totals == {"param": 25_557_032, "buffer": 53_120}
    assert len(arrays) == 320 - 53  # torchvision's 320 state_dict keys less 53 num_batches_tracked


@pytest.mark.unit
def test_weights_command_marks_frozen_caffe_arrays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(CAFFE_NET)
    assert cli("weights", str(path), "--format", "json") == 0
    frozen = {a["name"]: a["frozen"] for a in json.loads(capsys.readouterr().out)["arrays"]}
    assert frozen == {"conv.weight": False, "prelu.weight": False, "fc.weight": True, "fc.bias": True}


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_weights_init_writes_the_initial_values(tmp_path: Path, suffix: str) -> None:
    spec = tmp_path / "f.net"
    spec.write_text(conv_spec('type: "msra"', cin=3, cout=4, extra="bias_filler { value: 0.5 }"))
    output = tmp_path / f"init{suffix}"
    assert cli("weights", str(spec), "--init", "-o", str(output), "--seed", "3") == 0
    graph = load_graph(spec)
    expected = initialize_weights(bind(graph, 1), seed=3)
    loaded = load(spec, output)
    assert sorted(loaded) == sorted(expected)
    for name, value in expected.items():
        assert np.array_equal(loaded[name], value), name
    assert np.array_equal(loaded["c.bias"], np.full(4, 0.5, np.float32))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.unit
def test_weights_init_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = small_spec(tmp_path)
    assert cli("weights", str(spec), "--init") == 2
    assert "--init and -o go together" in capsys.readouterr().err
    assert cli("weights", str(spec), "--init", "-o", str(tmp_path / "w.pt")) == 1
    assert "unknown format '.pt'; expected one of .safetensors, .npz" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


# ---------------------------------------------------------------------------------- torchvision

# The zoo models torchvision has: a state_dict saved with its keys as they are fits each one.
TORCHVISION_SPECS = [
    "alexnet.net", "vgg11.net", "vgg13.net", "vgg16.net", "vgg19.net", "googlenet.net",
    "resnet18.net", "resnet34.net", "resnet50.net", "resnet101.net", "resnet152.net",
    "densenet121.net", "densenet161.net", "densenet169.net", "densenet201.net",
]  # fmt: skip


@pytest.mark.zoo
@pytest.mark.parametrize("spec", TORCHVISION_SPECS)
def test_torchvision_state_dict_fits_every_torchvision_model(spec: str) -> None:
    graph = load_graph(ZOO / spec)
    typed = bind(graph, 1)
    # np.zeros maps untouched pages: a full-size state_dict costs no memory here.
    state_dict: dict[str, np.ndarray] = {}
    for arrays in typed.arrays.values():
        for array in arrays:
            state_dict[array.name] = np.zeros(array.spec.shape, np.float32)
            if array.name.endswith(".running_var"):
                state_dict[array.name.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
    has_batchnorm = spec.startswith(("googlenet", "resnet", "densenet"))
    assert any(k.endswith("num_batches_tracked") for k in state_dict) == has_batchnorm
    loaded = fit_named_arrays(f"{spec}.safetensors", state_dict, typed)
    assert len(loaded) == sum(not k.endswith("num_batches_tracked") for k in state_dict)


# End to end through the CLI at a small input (each ends in global pooling).
END_TO_END = [
    ("resnet18.net", ".safetensors"),
    ("densenet121.net", ".npz"),
    ("googlenet.net", ".safetensors"),
]


@pytest.mark.zoo
@pytest.mark.ort
@pytest.mark.parametrize(("spec", "suffix"), END_TO_END)
def test_torchvision_file_drives_the_compiled_model(tmp_path: Path, spec: str, suffix: str) -> None:
    import onnxruntime as ort

    from netspec.reference import run_reference

    graph = load_graph(ZOO / spec)
    state_dict = torch_style(graph, seed=11)
    weights_path = tmp_path / f"{Path(spec).stem}{suffix}"
    save(weights_path, state_dict)
    model_path = tmp_path / "model.onnx"
    assert cli(
        "compile", str(ZOO / spec), "--weights", str(weights_path), "--input", "data:1x3x64x64",
        "-o", str(model_path),
    ) == 0  # fmt: skip
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"data": x})
    reference_weights = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    want = run_reference(graph, reference_weights, {"data": x})[graph.outputs[0]]
    assert got.shape == want.shape == (1, 1000)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
