"""Op schemas: one registry entry per op (attributes, shape rule, counts, emission).

Every module of this package except ``registry`` declares ops; importing the package imports each
of them once, in name order, so a new family of ops is one new file here.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .registry import (REGISTRY, Attrs, ChannelsLast, Counts, Emit, Helper, OpDef, OpError, Shape, Window,
                       channel_axis, get_op, is_channels_last, like, numel, op_names, register)

for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if _m != "registry":
        _importlib.import_module(f"{__name__}.{_m}")

__all__ = ["REGISTRY", "Attrs", "ChannelsLast", "Counts", "Emit", "Helper", "OpDef", "OpError", "Shape",
           "Window", "channel_axis", "get_op", "is_channels_last", "like", "numel", "op_names", "register"]
