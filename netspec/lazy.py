"""numpy, imported on its first use. The analysis path — parsing, elaboration, binding, counts,
receptive fields, reports — never touches an array, and importing numpy is about a third of a
`netspec report`'s start-up; layer modules use numpy for their ONNX constants and float64
references, so they name it through this module (``from netspec.lazy import numpy as np``),
which type checkers see as numpy itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


class LazyModule:
    """A module imported when one of its attributes is first read; each attribute read is then
    kept on this object, so later reads are plain attribute lookups."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self.__name), attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<module {self.__name!r}, imported on first use>"


if TYPE_CHECKING:
    import numpy as numpy  # "as numpy": the explicit re-export, so checkers see numpy itself
else:
    numpy = LazyModule("numpy")
