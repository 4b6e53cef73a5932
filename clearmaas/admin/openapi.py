"""The gateway's OpenAPI 3.1 document, served at `GET /openapi.json`: the public endpoints (summarized: their
wire formats are OpenAI's and Anthropic's) and every admin endpoint, generated from the same `Endpoint`
declarations the admin routes are built from, so a served admin route cannot be missing from the spec."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clearmaas import __version__
from clearmaas.admin.endpoint import Endpoint
from clearmaas.admin.routes import ENDPOINTS
from clearmaas.admin.schemas import SCHEMAS
from clearmaas.web.responses import json_response

__all__ = ["openapi_document", "openapi_path", "serve_openapi"]

Operation = dict[str, Any]

_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
_PATH_PARAMETERS: Final = {
    "workspace": "The workspace's name.",
    "user": "The member's user id (usr_...) or email address.",
    "key_id": "The key's id (key_...), as listed; never the raw key.",
    "model_id": "A catalogue model id; it contains a slash, e.g. openai/gpt-4o-mini.",
    "name": "The router's name, without the clearmaas/ prefix.",
}
_ERRORS: Final = {
    400: ("BadRequest", "A body field or query parameter is invalid (`bad_request_body`)."),
    401: ("Unauthorized", "The credential is missing or wrong."),
    403: ("Forbidden", "The balance or the key's credit cannot cover the call, or the key may not use the model."),
    404: ("NotFound", "No such resource. Admin paths answer `admin_api_disabled` when no admin token is set."),
    409: ("Conflict", "The change conflicts with what is stored (a duplicate, a revoked key, the last owner)."),
    429: ("RateLimited", "A workspace rate limit; wait `Retry-After` seconds."),
    502: ("UpstreamError", "The provider failed."),
    503: ("ModelNotFound", "No such model for this key (`model_not_found`)."),
}
_CHAT_ERRORS: Final = (400, 401, 403, 429, 502, 503)


def openapi_path(path: str) -> str:
    """A Starlette path as OpenAPI writes it: `{model_id:path}` becomes `{model_id}`."""
    return _PARAMETER.sub(r"{\1}", path)


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _responses(status: int, description: str, schema: str | None, errors: Iterable[int]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": description}
    if schema is not None:
        success["content"] = _json(schema)
    found: dict[str, Any] = {str(status): success}
    for code in sorted(set(errors)):
        found[str(code)] = {"$ref": f"#/components/responses/{_ERRORS[code][0]}"}
    return found


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_PARAMETERS[name],
            "schema": {"type": "string"},
        }
        for name in _PARAMETER.findall(path)
    ]


def _admin_operation(endpoint: Endpoint) -> Operation:
    operation: Operation = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [f"Admin: {endpoint.tag}"],
        "security": [{"adminAuth": []}],
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = _path_parameters(endpoint.path) + [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.description,
            "schema": {"type": p.type, **({"format": p.format} if p.format else {})},
        }
        for p in endpoint.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        operation["requestBody"] = {"required": True, "content": _json(endpoint.request)}
    described = "No content." if endpoint.status == 204 else ("Created." if endpoint.status == 201 else "OK.")
    # Every admin operation can answer 401 (credential) and 404 (`admin_api_disabled`, besides its own 404s).
    operation["responses"] = _responses(endpoint.status, described, endpoint.response, (401, 404, *endpoint.errors))
    return operation


def _public(
    operation_id: str,
    summary: str,
    tag: str,
    *,
    request: str | None,
    response: str,
    errors: Iterable[int],
    path: str = "",
    anthropic: bool = False,
    stream: bool = False,
) -> Operation:
    operation: Operation = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    operation["security"] = [{"bearerAuth": []}, {"anthropicApiKey": []}] if anthropic else [{"bearerAuth": []}]
    if path:
        operation["parameters"] = _path_parameters(path)
    if request is not None:
        operation["requestBody"] = {"required": True, "content": _json(request)}
    responses = _responses(200, "OK.", response, errors)
    if stream:
        responses["200"]["description"] = "OK. With `stream: true` the body is a `text/event-stream`."
        responses["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    operation["responses"] = responses
    return operation


def _public_paths() -> dict[str, dict[str, Operation]]:
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness check",
                "tags": ["Gateway"],
                "security": [],
                "responses": {"200": {"description": "The gateway is up.", "content": _json("Health")}},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["Gateway"],
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
        "/v1/chat/completions": {
            "post": _public("createChatCompletion", "Create a chat completion (OpenAI Chat Completions)", "Chat",
                            request="ChatCompletionRequest", response="ChatCompletion", errors=_CHAT_ERRORS,
                            stream=True)  # fmt: skip
        },
        "/v1/messages": {
            "post": _public("createMessage", "Create a message (Anthropic Messages)", "Chat", request="MessageRequest",
                            response="Message", errors=_CHAT_ERRORS, anthropic=True, stream=True)  # fmt: skip
        },
        "/v1/messages/count_tokens": {
            "post": _public("countTokens", "Estimate a message's input tokens (Anthropic shape)", "Chat",
                            request="CountTokensRequest", response="TokenCount", errors=(400, 401),
                            anthropic=True)  # fmt: skip
        },
        "/v1/models": {
            "get": _public("listModels", "List the models this key may use", "Models", request=None,
                           response="ModelList", errors=(401,))  # fmt: skip
        },
        "/v1/models/{model_id}": {
            "get": _public("getModel", "Show one model", "Models", request=None, response="Model",
                           errors=(401, 503), path="/v1/models/{model_id}")  # fmt: skip
        },
    }


def openapi_document(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    """The whole document: public paths, then every admin endpoint under its OpenAPI path."""
    paths: dict[str, dict[str, Operation]] = _public_paths()
    for endpoint in endpoints:
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = _admin_operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ClearMaas API",
            "version": __version__,
            "description": "Self-hostable LLM API gateway: OpenAI Chat Completions and Anthropic Messages in, "
            "eight providers out, with one `sk-clearmaas-` key. The admin API (`/admin/v1`) manages workspaces, "
            "members, keys, credits, prices, routers and usage; it takes the operator's admin token, never a "
            "client key, and answers 404 `admin_api_disabled` when no admin token is configured.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "API key (sk-clearmaas-...)",
                    "description": "Pass `Authorization: Bearer sk-clearmaas-...`.",
                },
                "anthropicApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The same `sk-clearmaas-` key, as Anthropic SDKs send it (Messages paths only).",
                },
                "adminAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's admin token (`admin_token` / CLEARMAAS_ADMIN_TOKEN) as "
                    "`Authorization: Bearer <token>`. Client `sk-clearmaas-` keys are always refused.",
                },
            },
            "responses": {
                name: {"description": description, "content": _json("Error")}
                for name, description in _ERRORS.values()
            },
            "schemas": SCHEMAS,
        },
    }


@cache
def _encoded() -> bytes:
    return orjson.dumps(openapi_document(ENDPOINTS))


async def serve_openapi(request: Request) -> Response:
    return json_response(_encoded())
