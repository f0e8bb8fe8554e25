"""Layer types: one module per family, one registered class per type.

:data:`LAYER_TYPES` knows every type; a family's module is imported when one of its types is
first looked up (:mod:`netspec.layers.index` says which module defines which type).
"""

from netspec.layers.base import LAYER_TYPES, Layer
from netspec.layers.io import InputLayer

__all__ = ["LAYER_TYPES", "InputLayer", "Layer"]
