"""netspec: a declarative graph compiler for convolutional network architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see of the lazy names below
    from netspec.api import compile as compile
    from netspec.api import load as load
    from netspec.api import load_weights as load_weights
    from netspec.api import loads as loads
    from netspec.api import run as run
    from netspec.api import save_weights as save_weights
    from netspec.api import summary as summary
    from netspec.diagnostics import NetspecError as NetspecError
    from netspec.graph import Graph as Graph
    from netspec.reference import run_reference as run_reference
    from netspec.report import Report as Report
    from netspec.report import ReportRow as ReportRow
    from netspec.typed import TypedGraph as TypedGraph
    from netspec.typed import bind as bind
    from netspec.verify import relative_errors as relative_errors
    from netspec.weights import initialize_weights as initialize_weights

__version__ = "0.2.0"
# The name to install: "netspec" on PyPI is an unrelated project.
DISTRIBUTION = "netspec-compiler"

# The public API (docs/api.md), imported on first use so that ``import netspec`` (and
# ``netspec --help``) loads neither numpy-heavy stages nor onnx / onnxruntime: name -> module.
_LAZY = {
    "load": "netspec.api",
    "loads": "netspec.api",
    "bind": "netspec.typed",
    "summary": "netspec.api",
    "compile": "netspec.api",
    "run": "netspec.api",
    "initialize_weights": "netspec.weights",
    "load_weights": "netspec.api",
    "save_weights": "netspec.api",
    "run_reference": "netspec.reference",
    "relative_errors": "netspec.verify",
    "Graph": "netspec.graph",
    "TypedGraph": "netspec.typed",
    "Report": "netspec.report",
    "ReportRow": "netspec.report",
    "NetspecError": "netspec.diagnostics",
}

__all__ = ["DISTRIBUTION", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """The public API's names, each imported from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netspec' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
