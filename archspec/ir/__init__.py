"""Graph IR: nodes, graph, lowering."""

from .graph import Graph, ModuleInfo, Node
from .lower import lower

__all__ = ["Graph", "ModuleInfo", "Node", "lower"]
