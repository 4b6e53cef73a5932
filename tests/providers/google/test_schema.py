from __future__ import annotations

from typing import Any

from clearmaas.providers.google.schema import clean_parameters, clean_schema


def test_rejected_keys_are_dropped() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "x",
        "type": "object",
        "title": "Args",
        "strict": True,
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 9,
                "pattern": "^[a-z]+$",
                "default": "x",
                "examples": ["a"],
            },
            "n": {"type": "integer", "minimum": 0, "maximum": 10, "exclusiveMaximum": 11, "format": "int64"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
            "meta": {"type": "object", "propertyNames": {"pattern": "^x"}, "additionalProperties": {"type": "string"}},
        },
    }
    assert clean_schema(schema) == {
        "type": "object",
        "title": "Args",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 9, "pattern": "^[a-z]+$"},
            "n": {"type": "integer", "minimum": 0, "maximum": 10, "format": "int64"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "meta": {"type": "object"},
        },
    }


def test_only_formats_gemini_accepts_survive() -> None:
    assert clean_schema({"type": "string", "format": "date-time"}) == {"type": "string", "format": "date-time"}
    assert clean_schema({"type": "string", "format": "email"}) == {"type": "string"}
    assert clean_schema({"type": "number", "format": "double"}) == {"type": "number", "format": "double"}


def test_nullable_forms() -> None:
    assert clean_schema({"type": ["string", "null"]}) == {"type": "string", "nullable": True}
    assert clean_schema({"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "d"}) == {
        "type": "integer",
        "description": "d",
        "nullable": True,
    }
    assert clean_schema({"type": ["string", "integer"]}) == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_one_of_becomes_any_of() -> None:
    assert clean_schema({"oneOf": [{"type": "string"}, {"type": "number"}]}) == {
        "anyOf": [{"type": "string"}, {"type": "number"}]
    }


def test_enums_and_const() -> None:
    assert clean_schema({"enum": ["a", "b"]}) == {"type": "string", "enum": ["a", "b"]}
    assert clean_schema({"const": "fixed"}) == {"type": "string", "enum": ["fixed"]}
    # "enum only allowed for STRING type": other enums become a hint in the description.
    assert clean_schema({"type": "integer", "enum": [1, 2], "description": "Level."}) == {
        "type": "integer",
        "description": "Level. One of: 1, 2.",
    }


def test_refs_are_inlined_and_cycles_cut() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Address"}, "node": {"$ref": "#/definitions/Node"}},
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}},
    }
    cleaned = clean_schema(schema)
    assert cleaned["properties"]["home"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    depth, node = 0, cleaned["properties"]["node"]
    while "properties" in node:
        node, depth = node["properties"]["next"], depth + 1
    assert node == {"type": "object"} and depth == 8


def test_all_of_is_merged() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"$ref": "#/$defs/B"},
        ],
        "$defs": {"B": {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}},
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}},
        "required": ["a", "b"],
    }


def test_types_are_inferred_and_arrays_get_items() -> None:
    assert clean_schema({"properties": {"x": {"items": {"type": "number"}}, "y": {"type": "array"}}}) == {
        "type": "object",
        "properties": {
            "x": {"type": "array", "items": {"type": "number"}},
            "y": {"type": "array", "items": {"type": "string"}},
        },
    }


def test_untyped_property_is_sent_as_string() -> None:
    assert clean_schema({"type": "object", "properties": {"anything": {}}}) == {
        "type": "object",
        "properties": {"anything": {"type": "string"}},
    }


def test_response_schema_ordering() -> None:
    schema = {
        "type": "object",
        "properties": {
            "z": {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "string"}}},
            "y": {"type": "string"},
        },
    }
    cleaned = clean_schema(schema, ordering=True)
    assert cleaned["propertyOrdering"] == ["z", "y"]
    assert cleaned["properties"]["z"]["propertyOrdering"] == ["b", "a"]
    assert "propertyOrdering" not in clean_schema(schema)


def test_parameters() -> None:
    assert clean_parameters({"type": "object", "properties": {}}) is None
    assert clean_parameters({}) is None
    assert clean_parameters({"properties": {"q": {"type": "string"}}}) == {
        "type": "object",
        "properties": {"q": {"type": "string"}},
    }
