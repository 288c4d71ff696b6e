"""Static analysis: shapes, parameters, MACs, activations, receptive fields."""

from .stats import LayerStats, NetStats, analyse, compile_spec, human, module_totals

__all__ = ["LayerStats", "NetStats", "analyse", "compile_spec", "human", "module_totals"]
