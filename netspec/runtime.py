"""onnxruntime sessions: device selection (auto quietly falls back to CPU), running a model,
and timing it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from netspec.diagnostics import NetspecException

if TYPE_CHECKING:
    import onnxruntime

DEVICES = ("auto", "cpu", "cuda")

_PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}

_ORT_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class RuntimeFailure(NetspecException):
    """onnxruntime could not do what was asked (no CUDA, a kernel failed); exit code 3."""


@dataclass
class Session:
    """An onnxruntime session and the device it really runs on."""

    session: onnxruntime.InferenceSession
    device: str

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def input_dtypes(self) -> dict[str, np.dtype]:
        """The numpy element type of each float input (float16 models take float16)."""
        return {
            i.name: np.dtype(_ORT_FLOAT_TYPES[i.type])
            for i in self.session.get_inputs()
            if i.type in _ORT_FLOAT_TYPES
        }

    def as_inputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` with float arrays converted to the element type each input declares."""
        dtypes = self.input_dtypes
        return {
            name: value.astype(dtypes[name], copy=False)
            if name in dtypes and value.dtype.kind == "f"
            else value
            for name, value in feeds.items()
        }

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for ``feeds`` (float arrays are converted to the inputs' types)."""
        names = [o.name for o in self.session.get_outputs()]
        try:
            values = self.session.run(names, self.as_inputs(feeds))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeFailure(f"onnxruntime failed to run the model: {exc}") from None
        return dict(zip(names, values, strict=True))


# The distributions that install the ``onnxruntime`` module; two of them in one environment
# overwrite each other's files, which leaves a module that imports but cannot load providers.
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


def onnxruntime_distributions() -> dict[str, str]:
    """The installed distributions that provide ``onnxruntime``, with their versions."""
    from importlib import metadata

    found = {}
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _share_a_folder(distributions: list[str]) -> bool:
    """Whether two of ``distributions`` are installed in one folder (then their files collide;
    in different folders of the path the first simply shadows the other)."""
    from importlib import metadata

    folders = [str(metadata.distribution(name).locate_file("")) for name in distributions]
    return len(set(folders)) < len(folders)


def import_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, or a :class:`RuntimeFailure` that names the problem with the
    environment and its fix (exit code 3): none installed, two distributions fighting over the
    module's files, or a module that fails to import."""
    installed = onnxruntime_distributions()
    if len(installed) > 1 and _share_a_folder(list(installed)):
        names = " and ".join(installed)
        keep = "onnxruntime-gpu" if "onnxruntime-gpu" in installed else next(iter(installed))
        raise RuntimeFailure(
            f"{names} are both installed and overwrite each other's files; keep one: "
            f"pip uninstall -y {' '.join(installed)} && pip install {keep}"
        )
    try:
        import onnxruntime
    except ImportError as exc:
        fix = (
            f"pip install --force-reinstall {next(iter(installed))}"
            if installed
            else "pip install onnxruntime"
        )
        raise RuntimeFailure(f"onnxruntime cannot be imported ({exc}); reinstall it: {fix}") from None
    if not hasattr(onnxruntime, "InferenceSession"):
        raise RuntimeFailure(
            f"the onnxruntime module at {getattr(onnxruntime, '__file__', '?')} is broken (no "
            "InferenceSession); reinstall it: pip install --force-reinstall onnxruntime-gpu"
        )
    return onnxruntime


# An execution provider by name, or with its options: (name, {option: value}).
Provider = str | tuple[str, dict[str, str]]


def _quiet_session(
    model: bytes | str, providers: Sequence[Provider], options: object
) -> onnxruntime.InferenceSession:
    onnxruntime = import_onnxruntime()

    # onnxruntime logs a loud error when a CUDA provider cannot load; while probing we only
    # want to know whether it worked, and say so in one line.
    onnxruntime.set_default_logger_severity(4)
    try:
        return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
    finally:
        onnxruntime.set_default_logger_severity(3)


def _cuda_session(model: bytes | str, options: object) -> onnxruntime.InferenceSession | None:
    onnxruntime = import_onnxruntime()

    if _PROVIDERS["cuda"] not in onnxruntime.get_available_providers():
        return None
    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is not None:
        # Loads CUDA/cuDNN from the nvidia-* wheels of the [cuda] extra when they are present.
        try:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                preload()
        except Exception:
            pass
    # NOTE: onnxruntime's CUDA provider computes float32 convolutions and GEMMs in TF32 on
    # Ampere and later unless told not to (relative errors ~1e-3 on an H200); float32 here
    # means float32, as on the CPU and in the float64 reference it is checked against.
    cuda = (_PROVIDERS["cuda"], {"use_tf32": "0"})
    try:
        session = _quiet_session(model, [cuda, _PROVIDERS["cpu"]], options)
    except Exception:
        return None
    return session if session.get_providers()[0] == _PROVIDERS["cuda"] else None


def create_session(
    model: bytes | str, device: str = "auto", threads: int | None = None, profile_prefix: str | None = None
) -> Session:
    """A session for ``model`` (serialized bytes or a path) on ``device`` (auto, cpu, cuda);
    with ``profile_prefix``, onnxruntime's profiler writes its JSON trace there."""
    onnxruntime = import_onnxruntime()

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if device in ("auto", "cuda"):
        session = _cuda_session(model, options)
        if session is not None:
            return Session(session, "cuda")
        if device == "cuda":
            raise RuntimeFailure(
                "CUDA was requested but onnxruntime cannot use it here (no GPU, or the CUDA "
                "libraries are missing: pip install 'netspec-compiler[cuda]')"
            )
    try:
        session = _quiet_session(model, [_PROVIDERS["cpu"]], options)
    except Exception as exc:
        raise RuntimeFailure(f"onnxruntime cannot load the model: {exc}") from None
    return Session(session, "cpu")


def random_feeds(session: Session, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random standard-normal inputs for every model input (symbolic dims take ``batch``)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in session.session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in info.shape]
        feeds[info.name] = rng.standard_normal(shape, dtype=np.float32).astype(
            _ORT_FLOAT_TYPES.get(info.type, np.float32), copy=False
        )
    return feeds


def loadable_providers() -> list[str]:
    """The execution providers a session really gets here: each available provider is tried on
    a one-node model (CUDA's libraries may be missing although onnxruntime lists it)."""
    from onnx import TensorProto, helper

    from netspec.export.onnx import DEFAULT_OPSET, ir_version_for

    onnxruntime = import_onnxruntime()
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)])
    model.ir_version = ir_version_for(DEFAULT_OPSET)
    probe = model.SerializeToString()
    loaded = []
    for provider in onnxruntime.get_available_providers():
        try:
            # NOTE: onnxruntime prints its fallback from a provider that fails to load (TensorRT
            # without its libraries) to stdout; the probe only wants to know.
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                session = _quiet_session(probe, [provider], onnxruntime.SessionOptions())
        except Exception:
            continue
        if session.get_providers()[0] == provider:
            loaded.append(provider)
    return loaded
