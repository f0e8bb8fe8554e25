"""netspec: a declarative graph compiler for convolutional network architectures."""

__version__ = "0.1.0"
