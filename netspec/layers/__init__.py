"""Layer types: one module per family, one registered class per type.

Importing this package registers every layer type in :data:`LAYER_TYPES`.
"""

from netspec.layers import activation, conv, io, pool  # noqa: F401  (registration)
from netspec.layers.base import LAYER_TYPES, Layer
from netspec.layers.io import InputLayer

__all__ = ["LAYER_TYPES", "InputLayer", "Layer"]
