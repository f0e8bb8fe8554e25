"""netspec: a declarative graph compiler for convolutional network architectures."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
# The name to install: "netspec" on PyPI is an unrelated project.
DISTRIBUTION = "netspec-compiler"

# The public API, imported on first use so that ``import netspec`` (and ``netspec --help``)
# loads neither numpy-heavy stages nor onnx / onnxruntime.
_LAZY = {
    "run_reference": "netspec.reference",
    "relative_errors": "netspec.verify",
}

__all__ = ["DISTRIBUTION", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netspec' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
