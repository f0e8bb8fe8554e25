"""Writing output files atomically: a temporary file in the target's folder, renamed into
place, so a failed or interrupted command never leaves a half-written file. ONNX models past
protobuf's 2 GiB limit are written with their weights in a data file beside them."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from netspec.diagnostics import NetspecException, UsageError
from netspec.progress import QUIET, Advance, Progress

if TYPE_CHECKING:
    import onnx

    from netspec.export.onnx import LoweredModel

Writer = Callable[[BinaryIO], object]


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` all at once or not at all."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda handle: handle.write(payload))


def write_atomic_with(path: str | os.PathLike[str], writer: Writer) -> None:
    """Let ``writer`` fill a temporary file, then rename it to ``path``."""
    write_atomic_group([(path, writer)])


class OutputError(OSError, NetspecException):
    """An output file could not be written where the user asked (a read-only folder, a full
    disk, a folder missing); exit code 3. The old file, if any, is left as it was."""


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output whose folder does not exist or that names something
    other than a regular file (a directory, a device such as /dev/null, a FIFO, a socket):
    writing there would replace it with a regular file. A UsageError (exit 2)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"cannot write '{path}': the folder '{folder}' does not exist")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return
    kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
    raise UsageError(
        f"the output {path} is {kind}; netspec writes its outputs only as regular files, "
        "and does not replace anything else"
    )


def write_atomic_group(files: Sequence[tuple[str | os.PathLike[str], Writer]]) -> None:
    """Fill a temporary file for each ``(path, writer)``, and only when all are complete rename
    them into place, in order: files that belong together are replaced together or not at all.
    A failure, Ctrl-C or SIGTERM on the way removes the temporary files; a write the system
    refuses is an OutputError naming the file and the reason."""
    for path, _ in files:
        check_output_path(path)
    temporaries: list[tuple[Path, Path]] = []
    current: str | os.PathLike[str] = ""
    try:
        with _terminate_as_interrupt():
            for path, writer in files:
                current = path
                target = Path(path)
                folder = target.parent if str(target.parent) else Path(".")
                descriptor, temporary_name = tempfile.mkstemp(
                    dir=folder, prefix=f".{target.name}.", suffix=".tmp"
                )
                temporaries.append((Path(temporary_name), target))
                os.chmod(temporary_name, _file_mode(target))
                with os.fdopen(descriptor, "wb") as handle:
                    writer(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            for temporary, target in temporaries:
                current = target
                os.replace(temporary, target)
    except BaseException as exc:
        for temporary, _ in temporaries:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            reason = exc.strerror or str(exc)
            raise OutputError(f"cannot write {current}: {reason}") from None
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while output files were being written (the temporaries are removed)."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated in the block (as Ctrl-C raises KeyboardInterrupt), so that the
    cleanup of temporary files runs for it too; only in the main thread, where Python can set
    signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _file_mode(target: Path) -> int:
    """The permissions the file would get from a plain open(): an existing file's own, else
    0o666 less the umask (mkstemp's temporary files start private)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# A serialized protobuf message cannot reach 2 GiB; the rest of a model (nodes, value_info,
# names) stays far below the headroom.
PROTOBUF_LIMIT = 2**31
_HEADROOM = 2**26
# Initializers this small stay inside the model even when the others move out.
_EXTERNAL_MIN_BYTES = 1024
# Offsets in the data file are page-aligned so that onnxruntime can map the arrays directly.
_EXTERNAL_ALIGNMENT = 4096


@dataclass(frozen=True)
class WrittenModel:
    """What :func:`write_model` wrote: the model and, for models past 2 GiB, its data file."""

    path: Path
    size: int
    data_path: Path | None = None
    data_size: int = 0


def external_data_path(path: str | os.PathLike[str]) -> Path:
    """Where the weights of a model too large for one file go: ``model.onnx.data`` beside it."""
    target = Path(path)
    return target.with_name(target.name + ".data")


def write_model_to_stream(model: onnx.ModelProto | LoweredModel, stream: BinaryIO) -> int:
    """Write ``model`` to an open stream (``-o -``) and return the bytes written; a model past
    protobuf's 2 GiB limit needs a data file beside it, so it needs a file name."""
    lowered = _as_lowered(model)
    if _initializer_bytes(lowered.model) + _HEADROOM >= PROTOBUF_LIMIT:
        raise UsageError(
            "the model's weights pass protobuf's 2 GiB limit and go to a data file beside the model: "
            "name an output file with -o instead of -"
        )
    written = write_model_pieces(lowered, stream)
    stream.flush()
    return written


def write_model(
    model: onnx.ModelProto | LoweredModel, path: str | os.PathLike[str], progress: Progress = QUIET
) -> WrittenModel:
    """Write ``model`` to ``path`` atomically, a LoweredModel's pending arrays streamed from
    numpy. When it would pass protobuf's 2 GiB limit, every initializer of 1 KiB or more moves
    to ``PATH.data`` (ONNX external data, referenced by file name, offsets aligned to 4 KiB) and
    both files are replaced together. In that case the model itself is changed: its large
    initializers become references to the data file."""
    lowered = _as_lowered(model)
    target = Path(path)
    sizes: list[int] = []

    def write_graph(handle: BinaryIO) -> None:
        with progress.steps(f"writing {target.name}", _encoded_size(lowered), unit="B") as advance:
            sizes.append(write_model_pieces(lowered, _Counted(handle, advance)))

    if _initializer_bytes(lowered.model) + _HEADROOM < PROTOBUF_LIMIT:
        write_atomic_with(target, write_graph)
        return WrittenModel(target, sizes[0])
    data_path = external_data_path(target)
    placed = _external_layout(lowered)

    def write_arrays(handle: BinaryIO) -> None:
        # One array's bytes at a time, each dropped from the model once written: memory stays
        # near the model's own size.
        for tensor, offset, length in placed:
            handle.seek(offset)
            _write_tensor_data(lowered, tensor, handle)
            _point_to_external(tensor, data_path.name, offset, length)
        sizes.append(handle.tell())

    write_atomic_group([(data_path, write_arrays), (target, write_graph)])
    return WrittenModel(target, sizes[1], data_path, sizes[0])


def _as_lowered(model: onnx.ModelProto | LoweredModel) -> LoweredModel:
    from netspec.export.onnx import LoweredModel

    return model if isinstance(model, LoweredModel) else LoweredModel(model, {}, frozenset())


def _is_pending(lowered: LoweredModel, tensor: onnx.TensorProto) -> bool:
    """Whether the tensor's data is still to come from the LoweredModel's arrays (neither in
    the tensor nor moved to an external data file)."""
    external = tensor.data_location == 1  # TensorProto.EXTERNAL
    return tensor.name in lowered.pending and not tensor.HasField("raw_data") and not external


def _write_tensor_data(lowered: LoweredModel, tensor: onnx.TensorProto, handle: BinaryIO | _Counted) -> int:
    """Write a tensor's raw bytes: its own, or a pending array's, chunk by chunk from numpy (no
    copy); return their number, checked against the tensor's shape."""
    if not _is_pending(lowered, tensor):
        return handle.write(tensor.raw_data)
    written = 0
    for chunk in lowered.pending_chunks(tensor.name):
        handle.write(chunk.data.cast("B"))
        written += chunk.nbytes
    if written != _pending_bytes(lowered, tensor):
        raise ValueError(f"the values of {tensor.name} are {written} bytes, its shape {list(tensor.dims)}")
    return written


def _pending_bytes(lowered: LoweredModel, tensor: onnx.TensorProto) -> int:
    """The bytes of a pending tensor's data (its float32 elements), 0 for a complete one."""
    return 4 * math.prod(tensor.dims) if _is_pending(lowered, tensor) else 0


def _encoded_size(lowered: LoweredModel) -> int:
    """The file's size: the model's encoding with every pending array's raw_data field in."""
    return (
        _field_size(_MODEL_GRAPH_FIELD, _graph_size(lowered))
        + lowered.model.ByteSize()
        - _field_size(_MODEL_GRAPH_FIELD, lowered.model.graph.ByteSize())
    )


def _graph_size(lowered: LoweredModel) -> int:
    """The graph's encoded size with the pending arrays' data in."""
    size = lowered.model.graph.ByteSize()
    for tensor in lowered.model.graph.initializer:
        extra = _pending_bytes(lowered, tensor)
        if extra:
            bare = tensor.ByteSize()
            full = bare + _field_size(_TENSOR_RAW_DATA_FIELD, extra)
            size += _field_size(_GRAPH_INITIALIZER_FIELD, full) - _field_size(_GRAPH_INITIALIZER_FIELD, bare)
    return size


def _field_size(field: int, length: int) -> int:
    """Bytes of a length-delimited field: its key, its length varint and its payload."""
    return len(_length_delimited(field, length)) + length


class _Counted:
    """A binary stream that reports each write's size to a progress bar."""

    def __init__(self, handle: BinaryIO, advance: Advance) -> None:
        self.handle = handle
        self.advance = advance

    def write(self, data: bytes | memoryview) -> int:
        written = self.handle.write(data)
        self.advance(written)
        return written


# Protobuf field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer,
# TensorProto.raw_data.
_MODEL_GRAPH_FIELD = 7
_GRAPH_INITIALIZER_FIELD = 5
_TENSOR_RAW_DATA_FIELD = 9


def write_model_pieces(model: onnx.ModelProto | LoweredModel, handle: BinaryIO | _Counted) -> int:
    """Write ``model``'s protobuf encoding to ``handle`` and return the bytes written: the same
    bytes as ``SerializeToString()`` of the complete model (the layout ``onnx.save`` writes, one
    top-level ``graph`` field), but streamed. ``SerializeToString`` would first build the whole
    file in memory — a second copy of every weight, and for a moment a third — while this holds
    at most one initializer's bytes besides the model, and a LoweredModel's pending arrays go
    from their numpy buffers to the file with no copy at all.

    Protobuf writes a message's fields in field-number order, an embedded message as its key,
    its length (``ByteSize()``, known without encoding anything, plus what the pending arrays
    add) and its fields. So the file is the model's fields before ``graph``, the graph's key and
    length, the graph's fields before ``initializer``, each initializer (its small fields encoded
    by protobuf around ``raw_data``, whose bytes are written as they are), the graph's later
    fields, the model's later fields."""
    lowered = _as_lowered(model)
    model_head, model_tail = _fields_around(lowered.model, _MODEL_GRAPH_FIELD)
    graph_head, graph_tail = _fields_around(lowered.model.graph, _GRAPH_INITIALIZER_FIELD)
    written = handle.write(model_head)
    written += handle.write(_length_delimited(_MODEL_GRAPH_FIELD, _graph_size(lowered)))
    written += handle.write(graph_head)
    for tensor in lowered.model.graph.initializer:
        extra = _pending_bytes(lowered, tensor)
        length = tensor.ByteSize() + (_field_size(_TENSOR_RAW_DATA_FIELD, extra) if extra else 0)
        written += handle.write(_length_delimited(_GRAPH_INITIALIZER_FIELD, length))
        tensor_head, tensor_tail = _fields_around(tensor, _TENSOR_RAW_DATA_FIELD)
        written += handle.write(tensor_head)
        if extra:
            written += handle.write(_length_delimited(_TENSOR_RAW_DATA_FIELD, extra))
            written += _write_tensor_data(lowered, tensor, handle)
        elif tensor.HasField("raw_data"):
            raw = tensor.raw_data
            written += handle.write(_length_delimited(_TENSOR_RAW_DATA_FIELD, len(raw)))
            written += handle.write(raw)
            del raw
        written += handle.write(tensor_tail)
    written += handle.write(graph_tail)
    written += handle.write(model_tail)
    return written


def _fields_around(message: Any, field_number: int) -> tuple[bytes, bytes]:
    """The encodings of ``message``'s set fields numbered below and above ``field_number``; that
    field itself is the caller's to write."""
    before, after = type(message)(), type(message)()
    for descriptor, value in message.ListFields():
        if descriptor.number == field_number:
            continue
        target = before if descriptor.number < field_number else after
        if hasattr(value, "extend"):  # a repeated field (its descriptor's API varies by version)
            getattr(target, descriptor.name).extend(value)
        elif descriptor.message_type is not None:
            getattr(target, descriptor.name).CopyFrom(value)
        else:
            setattr(target, descriptor.name, value)
    return before.SerializeToString(), after.SerializeToString()


def _length_delimited(field: int, length: int) -> bytes:
    """The key (wire type 2) and length varint that precede a length-delimited field."""
    return _varint(field << 3 | 2) + _varint(length)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    from onnx import helper

    return math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def _initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(_tensor_bytes(t) for t in model.graph.initializer)


def _external_layout(lowered: LoweredModel) -> list[tuple[onnx.TensorProto, int, int]]:
    """The initializers that move to the data file, each with its offset and length there."""
    layout = []
    offset = 0
    for tensor in lowered.model.graph.initializer:
        length = _tensor_bytes(tensor)
        has_data = tensor.HasField("raw_data") or _is_pending(lowered, tensor)
        if length < _EXTERNAL_MIN_BYTES or not has_data:
            continue
        offset = -(-offset // _EXTERNAL_ALIGNMENT) * _EXTERNAL_ALIGNMENT
        layout.append((tensor, offset, length))
        offset += length
    return layout


def _point_to_external(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    from onnx import TensorProto

    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
