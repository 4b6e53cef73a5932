"""JSON Schema → Gemini `Schema` (the OpenAPI 3.0 subset `parameters` and `responseSchema` accept).

Gemini answers 400 to keys outside its subset (`Unknown name "additionalProperties"`), to string formats
other than `enum`/`date-time`, to `enum` on non-string types and to an OBJECT `parameters` with no
properties, so the cleaner keeps an allow-list and rewrites what it can express differently:
`$ref` is inlined, `type: [x, "null"]` and `anyOf [..., {type: null}]` become `nullable`, `oneOf` becomes
`anyOf`, `allOf` is merged, `const` becomes a one-value `enum`. It never fails: what cannot be expressed
is dropped. (`parametersJsonSchema` would take full JSON Schema, but only newer models accept it.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["clean_parameters", "clean_schema"]

# The keys of Gemini's Schema object that every model accepts
# (https://ai.google.dev/api/caching#Schema). `default` and `example` are left out: older models reject them
# and they do not change what the model may produce.
_KEPT = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "anyOf", "propertyOrdering",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
# "only 'enum' and 'date-time' are supported for STRING type" (google-gemini/gemini-cli#3178).
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
_MAX_REF_DEPTH = 8  # recursive `$ref`s are unrolled this far, then cut to a bare object


def clean_parameters(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A function's parameters schema, or None when it takes no parameters (Gemini rejects an OBJECT
    without properties: "parameters.properties: should be non-empty for OBJECT type")."""
    cleaned = clean_schema(schema)
    if not cleaned.get("properties"):
        return None
    cleaned["type"] = "object"  # the root must be an OBJECT even when the client left `type` out
    return cleaned


def clean_schema(schema: dict[str, Any], *, ordering: bool = False) -> dict[str, Any]:
    """A Gemini schema for `schema`. With `ordering`, objects get `propertyOrdering` in declaration order
    (responseSchema only: Gemini otherwise emits properties alphabetically)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update({f"#/{key}/{name}": value for name, value in found.items()})
    return _Cleaner(defs, ordering).clean(schema, 0)


class _Cleaner:
    __slots__ = ("_defs", "_ordering")

    def __init__(self, defs: dict[str, Any], ordering: bool) -> None:
        self._defs = defs
        self._ordering = ordering

    def clean(self, node: object, depth: int) -> dict[str, Any]:
        if not isinstance(node, dict):
            return {}  # `true`, `{}` or junk: "any value", which Gemini cannot say; the caller decides
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._defs.get(ref)
            if target is None or depth >= _MAX_REF_DEPTH:
                return {"type": "object"}
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.clean(merged, depth + 1)
        if isinstance(node.get("allOf"), list):
            node = _merge_all_of(node, [self._deref(part) for part in node["allOf"]])
        out: dict[str, Any] = {}
        nullable = bool(node.get("nullable"))

        type_ = node.get("type")
        if isinstance(type_, list):
            kinds = [t for t in type_ if t != "null"]
            nullable = nullable or len(kinds) < len(type_)
            if len(kinds) == 1:
                type_ = kinds[0]
            else:
                type_ = None
                if kinds:
                    out["anyOf"] = [self.clean({**node, "type": t}, depth) for t in kinds]
        if type_ == "null":
            type_, nullable = None, True
        if type_ is None:
            type_ = _infer_type(node)
        if isinstance(type_, str) and type_ in _TYPES:
            out["type"] = type_

        for key in ("title", "description"):
            if isinstance(node.get(key), str):
                out[key] = node[key]
        for key in ("minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength"):
            if isinstance(node.get(key), int) and not isinstance(node.get(key), bool):
                out[key] = node[key]
        for key in ("minimum", "maximum"):
            if isinstance(node.get(key), (int, float)) and not isinstance(node.get(key), bool):
                out[key] = node[key]
        if isinstance(node.get("pattern"), str) and out.get("type") == "string":
            out["pattern"] = node["pattern"]
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
            out["format"] = fmt

        self._enum(node, out)
        if "anyOf" not in out and self._any_of(node, out, depth):
            nullable = True
        if isinstance(node.get("items"), dict):
            out["items"] = self.clean(node["items"], depth)
            out.setdefault("type", "array")
        elif out.get("type") == "array":
            out["items"] = {"type": "string"}  # Gemini requires `items` on ARRAY; a tuple or `true` has none
        self._properties(node, out, depth)
        if nullable:
            out["nullable"] = True
        return {k: v for k, v in out.items() if k in _KEPT}

    def _enum(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        values = node.get("enum")
        if "const" in node:
            values = [node["const"]]
        if not isinstance(values, list):
            return
        if out.get("type", "string") == "string" and all(isinstance(v, str) for v in values):
            # "function declaration enum only allowed for STRING type" (decolua/9router#380)
            out["type"] = "string"
            out["enum"] = values
            return
        allowed = ", ".join(_as_text(v) for v in values)
        note = f"One of: {allowed}."
        out["description"] = f"{out['description']} {note}" if out.get("description") else note

    def _any_of(self, node: dict[str, Any], out: dict[str, Any], depth: int) -> bool:
        """Fold `anyOf`/`oneOf` into `out`; True when one of the options was `null`."""
        options = node.get("anyOf", node.get("oneOf"))
        if not isinstance(options, list):
            return False
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        cleaned = [c for c in (self.clean(o, depth) for o in real) if c]
        if len(cleaned) == 1:
            for key, value in cleaned[0].items():
                out.setdefault(key, value)
        elif cleaned:
            out["anyOf"] = cleaned
        return len(real) < len(options)

    def _deref(self, node: object) -> object:
        if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"] in self._defs:
            return {**self._defs[node["$ref"]], **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def _properties(self, node: dict[str, Any], out: dict[str, Any], depth: int) -> None:
        props = node.get("properties")
        if not isinstance(props, dict):
            return
        out["type"] = "object"
        cleaned = {name: self.clean(value, depth) for name, value in props.items()}
        # A property Gemini cannot type ({} or `true`) is still better sent as a string than dropped.
        out["properties"] = {name: value or {"type": "string"} for name, value in cleaned.items()}
        required = node.get("required")
        if isinstance(required, list):
            # Gemini rejects `required` names that the same node does not define (Kilo-Org/kilocode#11955).
            kept = [name for name in required if isinstance(name, str) and name in props]
            if kept:
                out["required"] = kept
        if self._ordering and out["properties"]:
            out["propertyOrdering"] = list(out["properties"])


def _infer_type(node: dict[str, Any]) -> str | None:
    if "properties" in node:
        return "object"
    if "items" in node:
        return "array"
    if "enum" in node or "const" in node:
        return "string"
    return None


def _merge_all_of(node: dict[str, Any], parts: list[object]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _as_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
