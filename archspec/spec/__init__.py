"""The spec language: YAML with positions, the document models, the expression evaluator."""
