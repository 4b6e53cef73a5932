"""A small JSON Schema checker for the subset the OpenAPI document uses ($ref, type, properties, required,
additionalProperties, items, enum, anyOf, pattern, minimum, date-time and date formats), so that every answer
the admin tests receive is held against the schema the spec documents for it."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

__all__ = ["SchemaMismatch", "check", "resolve"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
    "boolean": (bool,), "null": (type(None),),
}  # fmt: skip


class SchemaMismatch(AssertionError):
    pass


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is(value: object, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def check(document: dict[str, Any], schema: dict[str, Any], value: object, where: str = "$") -> None:
    """Raises SchemaMismatch naming the first place `value` breaks `schema`."""
    schema = resolve(document, schema)
    if "anyOf" in schema:
        failures = []
        for option in schema["anyOf"]:
            try:
                check(document, option, value, where)
                break
            except SchemaMismatch as exc:
                failures.append(str(exc))
        else:
            raise SchemaMismatch(f"{where}: matches no anyOf option: {failures}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            raise SchemaMismatch(f"{where}: {value!r} is not of type {kinds}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaMismatch(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaMismatch(f"{where}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        if schema.get("format") == "date":
            date.fromisoformat(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in schema:
        if value < schema["minimum"]:
            raise SchemaMismatch(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(document, schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise SchemaMismatch(f"{where}: required property {name!r} is missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                check(document, properties[name], item, f"{where}.{name}")
            elif extra is False:
                raise SchemaMismatch(f"{where}: property {name!r} is not in the schema")
            elif isinstance(extra, dict):
                check(document, extra, item, f"{where}.{name}")
