"""Layer types: one module per family, one registered class per type.

Importing this package registers every layer type in :data:`LAYER_TYPES`.
"""

from netspec.layers import (  # noqa: F401  (registration)
    activation,
    conv,
    detection,
    io,
    linear,
    local,
    merge,
    norm,
    onnxop,
    pool,
    reduce,
    shape,
    spatial,
    vlad,
)
from netspec.layers.base import LAYER_TYPES, Layer
from netspec.layers.io import InputLayer

__all__ = ["LAYER_TYPES", "InputLayer", "Layer"]
