"""Weight files: reading ``.safetensors``, ``.npz`` and ``.caffemodel`` onto a graph's stored
arrays by name, with errors that name what does not fit, and writing ``.safetensors``/``.npz``.

Conventions: arrays are matched by their full name (``layer1.0.conv1.weight``: a torchvision
``state_dict`` key). Floating arrays become float32 (float16, bfloat16 and float64 are converted;
float64 rounds); integer and boolean arrays are refused, except ``num_batches_tracked``, which
torchvision's BatchNorm stores and which is ignored whatever its type. Nothing in a file is
executed: npz is read without pickle, safetensors holds only raw tensors.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from netspec.diagnostics import did_you_mean, error
from netspec.typed import TypedGraph

READ_FORMATS = (".safetensors", ".npz", ".caffemodel")
WRITE_FORMATS = (".safetensors", ".npz")

# torchvision's BatchNorm counts its training steps in this int64 buffer; no inference uses it.
IGNORED_SUFFIX = "num_batches_tracked"

_MAX_LISTED = 8


def load_weights(path: str, typed: TypedGraph) -> dict[str, np.ndarray]:
    """Every stored array of ``typed`` from a weights file, as float32 by full name.

    ``.safetensors`` and ``.npz`` hold arrays by full name; each must have the array's exact
    shape, and every array of the net must be there and nothing else. A ``.caffemodel`` holds
    blobs by layer name in the layer's array order; blobs whose element count matches are
    reshaped (Caffe's legacy 4-D blobs), and layers the net lacks (training heads) are skipped.
    A file that does not fit is one error listing the missing, unexpected and mis-shaped arrays.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in READ_FORMATS:
        raise error(
            f"{path}: unknown weights format '{suffix or path}'; expected one of {', '.join(READ_FORMATS)}"
        )
    if not Path(path).is_file():
        raise error(f"no such weights file: {path}")
    if suffix == ".caffemodel":
        found = _caffemodel_arrays(path, typed)
        return _match_arrays(path, found, typed, by_name=False)
    if suffix == ".safetensors":
        found = read_safetensors(path)
    else:
        sizes = {name: math.prod(a.spec.shape) for name, a in typed.expected_arrays.items()}
        found = read_npz(path, sizes)
    return fit_named_arrays(path, found, typed)


def fit_named_arrays(path: str, found: Mapping[str, np.ndarray], typed: TypedGraph) -> dict[str, np.ndarray]:
    """Arrays by full name (read from ``path``) checked against ``graph``'s and made float32,
    or one error naming every array that does not fit."""
    fixed = {name: a.spec for name, a in typed.expected_arrays.items() if a.spec.fixed is not None}
    arrays = _match_arrays(path, _as_float32(path, found, fixed), typed, by_name=True)
    for name, spec in fixed.items():
        if not np.array_equal(arrays[name].reshape(-1), np.array(spec.fixed, np.float32)):
            raise error(
                f"{path}: '{name}' is fixed by the architecture and the file's values differ from it",
                hint="a weights file for another window size or another model?",
            )
    return arrays


def read_npz(path: str, expected: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file as stored, read without pickle. With ``expected`` (array
    name -> element count), every member's declared size is checked against it before anything
    is inflated (a zip bomb is refused from its directory alone), and a member the net does not
    have is not read (an empty stand-in keeps its name for the mismatch report)."""
    import zipfile
    import zlib

    if not zipfile.is_zipfile(path):
        # NOTE: np.load would take any other file for a pickle or an .npy; an npz is a zip.
        raise error(f"cannot read weights from {path}: not an npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_npz_directory(path, members, expected)
            found: dict[str, np.ndarray] = {}
            for member in members:
                name = member.filename[: -len(".npy")]
                if expected is not None and name not in expected and not _ignored(name):
                    found[name] = np.zeros(0, np.float32)
                    continue
                with archive.open(member) as handle:
                    found[name] = _read_npy(path, name, handle, member.file_size)
            return found
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
            RuntimeError, NotImplementedError, OverflowError) as exc:  # fmt: skip
        # RuntimeError: an encrypted member; NotImplementedError: a compression zipfile lacks.
        raise error(f"cannot read weights from {path}: not a readable npz archive ({exc})") from None


# Bytes an .npy member may hold beyond its data: the header (numpy pads it to 64 bytes; format
# 2.0 allows up to 4 GiB, which no real file uses).
_NPY_HEADER_SLACK = 2**16
# The widest float dtype an array may be stored in (float128 is 16 bytes).
_WIDEST_ITEM = 16
# num_batches_tracked is one int64; a member of that name larger than this is not one.
_IGNORED_MAX_BYTES = 4096


def _ignored(name: str) -> bool:
    return name.rsplit(".", 1)[-1] == IGNORED_SUFFIX


def _check_npz_directory(path: str, members: list[Any], expected: Mapping[str, int] | None) -> None:
    """Refuse members that are not ``.npy`` arrays, and (with ``expected``) members whose
    declared size is larger than the array of that name can be, before any is inflated."""
    for member in members:
        # NOTE: not ZipInfo.is_dir(), which fails on an empty member name; a folder's name
        # ends with '/', not '.npy'.
        if not member.filename.endswith(".npy"):
            raise error(
                f"cannot read weights from {path}: the member '{member.filename}' is not an .npy array"
            )
        if expected is None:
            continue
        name = member.filename[: -len(".npy")]
        if _ignored(name):
            bound = _IGNORED_MAX_BYTES
        elif name in expected:
            bound = expected[name] * _WIDEST_ITEM + _NPY_HEADER_SLACK
        else:
            continue
        if member.file_size > bound:
            raise error(
                f"{path}: the member '{member.filename}' declares {member.file_size:,} bytes, more "
                f"than the array '{name}' of the net can hold ({bound:,} at most); nothing was read"
            )


def _read_npy(path: str, name: str, handle: Any, declared: int) -> np.ndarray:
    """One .npy member: its header read first, so that a shape claiming more bytes than the
    member holds is refused before any memory is allocated for it."""
    from numpy.lib import format as npy

    version = npy.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = npy.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):
        shape, fortran_order, dtype = npy.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise error(
            f"{path}: an array in the file is pickled Python objects, which netspec does not load",
            hint="save plain numeric arrays: np.savez(path, **{k: v.numpy() for k, v in sd.items()})",
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > declared:
        raise error(
            f"{path}: the array '{name}' claims shape {list(shape)} ({nbytes:,} bytes), more than "
            f"its member holds ({declared:,} bytes)"
        )
    data = handle.read(nbytes)
    if len(data) != nbytes:
        raise error(f"{path}: the array '{name}' is cut short ({len(data):,} of {nbytes:,} bytes)")
    array = np.frombuffer(data, dtype=dtype)
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The arrays of a ``.safetensors`` file as stored, memory-mapped: each is a read-only view
    of the file's pages, so loading copies nothing (bfloat16, which numpy lacks, becomes float32
    exactly, in a new array). The layout (safetensors' documented format): an 8-byte
    little-endian header size, a JSON header naming each tensor's dtype, shape and byte range,
    then the data, every byte of it belonging to exactly one tensor. Anything else is refused
    before a byte of data is read."""
    import mmap

    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data_start, entries = _safetensors_entries(path, handle, size)
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size > data_start else None
    except OSError as exc:
        raise error(f"cannot read weights from {path}: {exc.strerror or exc}") from None
    found: dict[str, np.ndarray] = {}
    for entry in entries:
        if entry.nbytes == 0 or mapped is None:
            stored = np.zeros(entry.shape, entry.dtype)
        else:
            count = entry.nbytes // entry.dtype.itemsize
            stored = np.frombuffer(mapped, entry.dtype, count, data_start + entry.begin).reshape(entry.shape)
        found[entry.name] = _bfloat16_to_float32(stored) if entry.raw_dtype == "BF16" else stored
    return found


@dataclass(frozen=True)
class _SafetensorsEntry:
    name: str
    raw_dtype: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    begin: int
    nbytes: int


# safetensors dtypes numpy reads (integers and booleans only to be refused by name, or ignored);
# bfloat16 is read as its bits and widened.
_SAFETENSORS_DTYPES = {
    "F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2", "BOOL": "|b1",
    "I8": "|i1", "I16": "<i2", "I32": "<i4", "I64": "<i8",
    "U8": "|u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
}  # fmt: skip
# safetensors' own reader refuses headers past 100 MB.
_MAX_SAFETENSORS_HEADER = 100_000_000


def _safetensors_entries(path: str, handle: BinaryIO, size: int) -> tuple[int, list[_SafetensorsEntry]]:
    """Where the data starts, and the tensors a ``.safetensors`` header declares in file order,
    checked to tile the data."""
    import json

    def refuse(reason: str) -> NoReturn:
        raise error(f"cannot read weights from {path}: not a safetensors file ({reason})")

    prefix = handle.read(8)
    if len(prefix) < 8:
        refuse("shorter than its 8-byte header size")
    header_size = int.from_bytes(prefix, "little")
    if header_size > min(size - 8, _MAX_SAFETENSORS_HEADER):
        refuse(f"its header size {header_size:,} is past the file's end or safetensors' 100 MB")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            refuse(f"the header names '{next(k for k in keys if keys.count(k) > 1)}' twice")
        return dict(pairs)

    text = handle.read(header_size)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError, RecursionError):
        refuse("its header is not JSON")
    if not isinstance(header, dict):
        refuse("its header is not a JSON object")
    entries = []
    for name, field in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(field, dict) or set(field) != {"dtype", "shape", "data_offsets"}:
            refuse(f"the header's entry for '{name}' is not dtype, shape and data_offsets")
        raw_dtype, shape, offsets = field["dtype"], field["shape"], field["data_offsets"]
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            refuse(f"the shape of '{name}' is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            refuse(f"the data_offsets of '{name}' are not two integers")
        if raw_dtype not in _SAFETENSORS_DTYPES:
            raise error(
                f"{path}: array '{name}' has dtype {raw_dtype}, which netspec does not read",
                hint="save it as float32, float16, bfloat16 or float64",
            )
        dtype = np.dtype(_SAFETENSORS_DTYPES[raw_dtype])
        begin, end = offsets
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected:
            refuse(f"'{name}' holds {end - begin} bytes; {raw_dtype} {shape} is {expected}")
        entries.append(_SafetensorsEntry(name, raw_dtype, dtype, tuple(shape), begin, end - begin))
    entries.sort(key=lambda entry: entry.begin)
    # The data must be tiled: no gap, no overlap, nothing past the last tensor (a polyglot file
    # hides its other content there).
    position = 0
    for entry in entries:
        if entry.begin != position:
            refuse(f"'{entry.name}' starts at byte {entry.begin} of the data, not {position}")
        position += entry.nbytes
    if 8 + header_size + position != size:
        refuse(
            f"the header's tensors take {position:,} bytes; the file has {size - 8 - header_size:,} after it"
        )
    return 8 + header_size, entries


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    # bfloat16 is the upper half of a float32: shifting its bits up is exact.
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _as_float32(
    path: str, found: Mapping[str, np.ndarray], fixed: Mapping[str, object] | None = None
) -> dict[str, np.ndarray]:
    """The file's arrays as float32, less ``num_batches_tracked``; other non-float arrays are
    an error naming them, except the integer arrays the net fixes (``fixed``: Swin's
    ``relative_position_index``)."""
    arrays, refused = {}, []
    for name, value in found.items():
        if name.rsplit(".", 1)[-1] == IGNORED_SUFFIX:
            continue
        if value.dtype.kind != "f" and not (fixed and name in fixed and value.dtype.kind in "iu"):
            refused.append(f"{name} ({value.dtype})")
            continue
        arrays[name] = value
    if refused:
        raise error(
            f"{path}: weights must be floating point; {_listing(refused)} "
            f"{'is' if len(refused) == 1 else 'are'} not",
            hint="float32, float16, bfloat16 and float64 arrays are read (as float32); "
            f"integer arrays only as '{IGNORED_SUFFIX}', which is ignored",
        )
    return arrays


def _caffemodel_arrays(path: str, typed: TypedGraph) -> dict[str, np.ndarray]:
    """Caffe blobs renamed to the graph's array names: blob i of layer L is array i of node L."""
    from netspec.caffemodel import read_caffemodel

    caffe = read_caffemodel(path)
    found: dict[str, np.ndarray] = {}
    for node, arrays in typed.arrays.items():
        if node.name not in caffe:
            continue
        blobs = caffe[node.name]
        if len(blobs) != len(arrays):
            names = ", ".join(a.spec.name for a in arrays)
            raise error(
                f"{path}: layer '{node.name}' has {len(blobs)} blobs; the {node.type} in the net "
                f"stores {len(arrays)} ({names})"
            )
        for array, blob in zip(arrays, blobs, strict=True):
            found.setdefault(array.name, blob)
    return found


def _match_arrays(
    path: str,
    found: Mapping[str, np.ndarray],
    typed: TypedGraph,
    by_name: bool,
) -> dict[str, np.ndarray]:
    """``found`` checked against the net's arrays. ``by_name``: shapes must be equal and every
    array in the file must belong to the net; otherwise (Caffe blobs) sizes must be equal."""
    expected = typed.expected_arrays
    weights: dict[str, np.ndarray] = {}
    missing, mismatched = [], []
    for name, array in expected.items():
        value = found.get(name)
        if value is None:
            missing.append(name)
        elif not _fits(value, array.spec.shape, by_name):
            mismatched.append(f"{name}: file {list(value.shape)}, net {list(array.spec.shape)}")
        else:
            weights[name] = _finite_float32(path, name, value).reshape(array.spec.shape)
    unexpected = [name for name in found if name not in expected] if by_name else []
    # "Did you mean" pairs a missing name with an unexpected one (only for the names shown:
    # a file for another net can have a thousand of each).
    problems = [
        f"{title}: {_listing(items, describe)}"
        for title, items, describe in (
            (
                f"missing {len(missing)} array(s)",
                missing,
                lambda n: f"{n} {list(expected[n].spec.shape)}{_hint(n, unexpected)}",
            ),
            ("shapes that do not fit", mismatched, str),
            ("arrays the net does not have", unexpected, lambda n: n + _hint(n, missing)),
        )
        if items
    ]
    if problems:
        # One line per kind of problem, each listing its arrays.
        raise error(f"the weights in {path} do not fit the net:" + "".join(f"\n  {p}" for p in problems))
    return weights


_CHECKED_AT_ONCE = 1 << 20


def _finite_float32(path: str, name: str, value: np.ndarray) -> np.ndarray:
    """``value`` as float32, or an error naming it when it holds NaN or infinity, or values
    past float32's range (which would become infinities)."""
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(value, dtype=np.float32)
    # In slices, so that a memory-mapped array is checked without a mask its size.
    flat = converted.reshape(-1)
    if not all(
        np.isfinite(flat[i : i + _CHECKED_AT_ONCE]).all() for i in range(0, flat.size, _CHECKED_AT_ONCE)
    ):
        source_finite = bool(np.isfinite(value).all())
        what = "values past float32's range (about 3.4e38)" if source_finite else "NaN or infinite values"
        raise error(
            f"{path}: the array '{name}' holds {what}",
            hint="trained weights must be finite numbers; check how the file was made",
        )
    return converted


def _fits(value: np.ndarray, shape: tuple[int, ...], by_name: bool) -> bool:
    return value.shape == shape if by_name else value.size == math.prod(shape)


def _hint(name: str, candidates: list[str]) -> str:
    hint = did_you_mean(name, candidates)
    return f" ({hint})" if hint else ""


def _listing(items: list[str], describe: Callable[[str], str] = str) -> str:
    shown = "; ".join(describe(item) for item in items[:_MAX_LISTED])
    return shown + (f", and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def write_weights(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` by name to a ``.safetensors`` or ``.npz`` file, atomically."""
    from netspec.output import write_atomic, write_atomic_with

    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        from safetensors.numpy import save

        write_atomic(path, save({name: np.ascontiguousarray(v) for name, v in arrays.items()}))
    elif suffix == ".npz":
        write_atomic_with(path, lambda handle: write_npz(handle, arrays))
    else:
        raise error(
            f"cannot write weights to {path}: unknown format '{suffix or path}'; "
            f"expected one of {', '.join(WRITE_FORMATS)}"
        )


def write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """``arrays`` as ``np.savez`` writes them (an uncompressed zip of one ``NAME.npy`` each),
    for any names: ``np.savez`` takes the names as keyword arguments, so it drops an array named
    ``allow_pickle`` and fails on one named ``file``."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


# ---------------------------------------------------------------- what a weights file holds


def array_listing(typed: TypedGraph) -> list[dict[str, Any]]:
    """What a weights file for ``typed`` holds, in the net's order: each array's name, shape,
    dtype, kind (``param``: learnable, ``buffer``: stored statistics) and whether a Caffe
    ``lr_mult: 0`` freezes it."""
    return [
        {
            "name": name,
            "shape": list(array.spec.shape),
            "dtype": "float32",
            "kind": "param" if array.spec.learnable else "buffer",
            "frozen": array.frozen,
        }
        for name, array in typed.expected_arrays.items()
    ]


def render_listing(graph_name: str, listing: list[dict[str, Any]], fmt: str) -> str:
    """``array_listing`` as text (aligned columns, then a total) or as one JSON object."""
    import json

    if fmt == "json":
        return json.dumps({"name": graph_name, "arrays": listing}) + "\n"
    table = [("name", "shape", "dtype", "kind", "")]
    for entry in listing:
        shape = "x".join(str(d) for d in entry["shape"])
        table.append(
            (entry["name"], shape, entry["dtype"], entry["kind"], "frozen" if entry["frozen"] else "")
        )
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    values = sum(math.prod(entry["shape"]) for entry in listing)
    lines.append(f"{len(listing)} arrays, {values:,} values ({4 * values:,} bytes as float32)")
    return "\n".join(lines) + "\n"
