"""Op schemas: one registry entry per op (attributes, shape rule, counts, emission)."""

from . import nn as _nn  # noqa: F401  (registers the ops)
from . import tokens as _tokens  # noqa: F401  (registers the token-sequence ops)
from .registry import (REGISTRY, Attrs, Counts, Emit, Helper, OpDef, OpError, Shape, Window, get_op,
                       numel, op_names, register)

__all__ = ["REGISTRY", "Attrs", "Counts", "Emit", "Helper", "OpDef", "OpError", "Shape", "Window",
           "get_op", "numel", "op_names", "register"]
