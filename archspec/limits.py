"""Bounds on the work one spec may ask for (issue #16, "Hostile specs").

A spec is a program: ``repeat: 1000000000`` or a ``dense:`` block of a million layers is three lines of
YAML that would take hours and gigabytes to lower. Lowering checks these bounds *arithmetically,
before it allocates*: a ``repeat: n`` is refused as soon as ``n`` is known to exceed what is left of
the node budget, so a hostile spec ends in milliseconds with one error line naming its ``repeat:``.

* :data:`DEFAULT_MAX_NODES` nodes in one network's graph (the zoo's largest, ResNet-1202 on CIFAR,
  has 4,806; 100,000 leaves a factor of 20);
* :data:`DEFAULT_MAX_EDGES` inputs over all nodes (a ``dense:`` block of ``n`` layers alone has
  about ``n²/2``: its ``n + 1`` concatenations read every earlier layer, which is inherent to the
  graph, so the cap is what bounds it: 1,000,000 allows dense blocks of ~1,400 layers; DenseNet-264's
  largest has 64);
* a ``repeat:`` iteration that lowers to nothing (a ``when:`` that is false) counts against the node
  budget as if it were a node, so nested repetitions of nothing cannot loop unbounded.

``archspec stats|check|validate|build|diff --max-nodes N --max-edges N`` change them for one run
(:func:`configure`); :func:`limits` reads the current values.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_NODES", "DEFAULT_MAX_EDGES", "Limits", "limits", "configure", "restore"]

DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_EDGES = 1_000_000


@dataclass
class Limits:
    max_nodes: int = DEFAULT_MAX_NODES
    max_edges: int = DEFAULT_MAX_EDGES


_current = Limits()


def limits() -> Limits:
    """The limits in force."""
    return _current


def configure(max_nodes: int | None = None, max_edges: int | None = None) -> Limits:
    """Set the limits (``None`` keeps a value); returns the previous ones, for restoring."""
    global _current
    previous = _current
    _current = Limits(max_nodes=previous.max_nodes if max_nodes is None else int(max_nodes),
                      max_edges=previous.max_edges if max_edges is None else int(max_edges))
    return previous


def restore(previous: Limits) -> None:
    """Put back what :func:`configure` returned."""
    global _current
    _current = previous
