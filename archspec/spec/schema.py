"""JSON Schema of the spec format, from the pydantic models plus the op registry (for editors)."""

from __future__ import annotations

import copy
from typing import Any

from ..ops import REGISTRY
from .model import SpecDoc

__all__ = ["spec_schema"]

META = {
    "name": {"type": "string", "description": "the layer's name (a module attribute in generated code)"},
    "repeat": {"type": ["integer", "string"], "description": "repeat the call n times (a stage)"},
    "first": {"type": "object", "description": "arguments that differ in the first repetition (stride: 2)"},
    "names": {"type": "string", "description": "with repeat: or dense: the repetitions' names, a pattern over i ('encoder_layer_{i}', 'denselayer{i + 1}')"},
    "when": {"type": ["boolean", "string"], "description": "an expression; when false the layer is an identity"},
    "else": {"type": "string", "description": "with when: the named layer this one stands for when false"},
    "from": {"type": ["string", "array"], "description": "named layer(s) to take input from"},
    "expect": {"type": "object", "description": "the paper's numbers for this layer"},
    "dense": {"$ref": "#/$defs/Layer",
              "description": "with repeat: n, dense connectivity: layer j reads the concatenation of the input and "
                             "layers 0..j-1; the output is the concatenation of all"},
    "aux": {"type": "object", "properties": {"loss_weight": {"type": ["number", "string"]}},
            "required": ["loss_weight"], "additionalProperties": False,
            "description": "a training-time output (auxiliary classifier) with its loss weight; dropped at inference"},
}


def _loosen(schema: dict[str, Any]) -> dict[str, Any]:
    """Every attribute may also be an expression string such as 'width * 4'."""
    s = copy.deepcopy(schema)
    for prop in s.get("properties", {}).values():
        alts = prop.pop("anyOf", None) or [dict((k, v) for k, v in prop.items() if k in ("type", "enum", "const", "items", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "prefixItems", "maxItems", "minItems"))]
        for k in ("type", "enum", "const", "items", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "prefixItems", "maxItems", "minItems"):
            prop.pop(k, None)
        prop["anyOf"] = alts + [{"type": "string", "description": "an expression"}]
    s.pop("title", None)
    return s


def spec_schema() -> dict[str, Any]:
    schema = SpecDoc.model_json_schema()
    defs = schema.setdefault("$defs", {})
    call_props: dict[str, Any] = dict(META)
    for name, op in sorted(REGISTRY.items()):
        if op.internal:
            continue
        attrs = _loosen(op.attrs.model_json_schema())
        attrs["description"] = op.doc
        call_props[name] = {"anyOf": [attrs, {"type": "null"}, {"type": ["array", "integer", "number", "string"]},
                                      {"$ref": "#/$defs/Layer"}],  # or a layer named like the op
                            "description": op.doc}
    defs["Layer"] = {
        "description": "A layer: an op, block or cell name ('relu', 'conv3-64', '$param'); a list (a "
                       "sequence); a call {op: attrs, name:, repeat:, first:, when:, from:, expect:}; "
                       "or a mapping of named layers. See docs/spec.md.",
        "anyOf": [
            {"type": "string"}, {"type": "integer"},
            {"type": "array", "items": {"$ref": "#/$defs/Layer"}},
            {"type": "object", "properties": call_props, "additionalProperties": {"$ref": "#/$defs/Layer"}},
        ],
    }
    props = schema["properties"]
    props["network"] = {"$ref": "#/$defs/Layer", "description": props.get("network", {}).get("description", "")}
    props["cells"]["additionalProperties"] = {"$ref": "#/$defs/Layer"}
    if "BlockDef" in defs:
        defs["BlockDef"]["properties"]["body"] = {"$ref": "#/$defs/Layer"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archspec spec"
    return schema
