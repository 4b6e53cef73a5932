"""The OpenAPI document served at /openapi.json: valid OpenAPI 3.1 in structure, every admin route the app serves
documented (and nothing documented that is not served), every `$ref` resolvable, and the public endpoints there.
(Every answer the other admin tests receive is also checked against this document, in conftest.py.)"""

from __future__ import annotations

import re
from typing import Any

import httpx2
import orjson
import pytest
from starlette.routing import Route

from clearmaas.admin.openapi import openapi_document, openapi_path
from clearmaas.admin.routes import ENDPOINTS
from clearmaas.settings import Settings
from clearmaas.web.app import build_app
from tests.admin.conftest import TOKEN
from tests.e2e.harness import GatewayProcess

_METHODS = {"get", "post", "put", "patch", "delete"}
PUBLIC = {
    ("post", "/v1/chat/completions"), ("post", "/v1/messages"), ("post", "/v1/messages/count_tokens"),
    ("get", "/v1/models"), ("get", "/v1/models/{model_id}"), ("get", "/health"), ("get", "/openapi.json"),
}  # fmt: skip


def _served(token: str | None) -> set[tuple[str, str]]:
    app = build_app(Settings(admin_token=token))
    found = set()
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method.lower(), openapi_path(route.path)))
    return found


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item if method in _METHODS}


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("token", [TOKEN, None])
def test_every_served_route_is_documented_and_back(token: str | None) -> None:
    served = _served(token)
    documented = _documented(openapi_document(ENDPOINTS))
    assert served == documented
    assert PUBLIC <= documented
    admin = {entry for entry in served if entry[1].startswith("/admin/v1/")}
    assert len(admin) == len(ENDPOINTS) == 26


def test_structure() -> None:
    document = orjson.loads(orjson.dumps(openapi_document(ENDPOINTS)))  # JSON-serializable as is
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["bearerFormat"] == "API key (sk-clearmaas-...)"
    assert schemes["adminAuth"] == {**schemes["adminAuth"], "type": "http", "scheme": "bearer"}
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
            assert operation["responses"], (method, path)
            security = [name for requirement in operation["security"] for name in requirement]
            if path.startswith("/admin/"):
                assert security == ["adminAuth"] and "401" in operation["responses"]
                assert operation["tags"][0].startswith("Admin: ")
            elif path not in ("/health", "/openapi.json"):
                assert "bearerAuth" in security and "adminAuth" not in security
            for status in operation["responses"]:
                assert re.fullmatch(r"[1-5][0-9][0-9]", status)
    assert len(operation_ids) == len(set(operation_ids))
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # KeyError: a dangling reference
    for name, schema in document["components"]["schemas"].items():
        if schema.get("additionalProperties") is False:
            assert set(schema["required"]) <= set(schema["properties"]), name


def test_admin_money_is_never_a_number() -> None:
    schemas = openapi_document(ENDPOINTS)["components"]["schemas"]

    def usd_fields(node: object, where: str) -> list[tuple[str, object]]:
        if isinstance(node, dict):
            found = [(f"{where}.{k}", v) for k, v in node.get("properties", {}).items() if k.endswith("_usd")]
            return found + [f for k, v in node.items() for f in usd_fields(v, f"{where}.{k}")]
        return []

    fields = [f for name, schema in schemas.items() for f in usd_fields(schema, name)]
    assert len(fields) > 10
    for where, schema in fields:
        assert isinstance(schema, dict) and "number" not in str(schema.get("type")), where


def test_served_by_the_gateway(server: GatewayProcess) -> None:
    response = httpx2.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == orjson.loads(orjson.dumps(openapi_document(ENDPOINTS)))
