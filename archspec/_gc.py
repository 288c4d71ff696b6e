"""Pausing the cyclic garbage collector around the pipeline's work.

Loading, lowering and code generation allocate many small objects and free almost none until the
command ends, so every collection is wasted time, and the oldest generation's collections scan a
heap that grows with the network: with the collector on, the build of a 10,000-node spec took twice
as long per node as that of a 4,000-node one (benchmarks/build_speed.py). Paused, it is linear.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the body with the cyclic collector off; it is restored (if it was on) afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
