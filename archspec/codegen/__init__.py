"""Code generation: graph IR -> standalone PyTorch modules (through templates/)."""

from .pymodel import ModelSource, class_name, generate_model
from .writer import Output, render_specs, stale_outputs, write_outputs

__all__ = ["ModelSource", "Output", "class_name", "generate_model", "render_specs", "stale_outputs",
           "write_outputs"]
