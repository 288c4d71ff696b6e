"""archspec: a declarative architecture-spec compiler for convolutional networks.

Pipeline: spec (YAML, positions kept) -> load -> ir (graph, shapes) -> analysis -> check -> codegen -> cli.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
