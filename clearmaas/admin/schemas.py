"""The JSON Schemas (OpenAPI 3.1 `components.schemas`) of the admin API's bodies, and short ones of the public
endpoints'. Each admin schema states exactly the fields the handlers write (no additional properties), so a
test can hold every live answer against it."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["SCHEMAS"]

Schema = dict[str, Any]


def _obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), open_: bool = False) -> Schema:
    """An object whose properties are all required except `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": open_,
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: str) -> Schema:
    return _obj({"data": {"type": "array", "items": _ref(item)}})


def _page(item: str) -> Schema:
    return _obj(
        {
            "data": {"type": "array", "items": _ref(item)},
            "has_more": {"type": "boolean"},
            "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page."},
        }
    )


def _null(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


STR: Final[Schema] = {"type": "string"}
INT: Final[Schema] = {"type": "integer"}
BOOL: Final[Schema] = {"type": "boolean"}
TIME: Final[Schema] = {"type": "string", "format": "date-time"}
USD: Final[Schema] = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]{6}$",
    "description": "US dollars as an exact decimal string with six places (micro-dollars), never a float.",
    "examples": ["12.500000"],
}
USD_IN: Final[Schema] = {
    "type": ["string", "integer"],
    "description": "US dollars as a decimal string (\"10.00\"), at most six decimal places; a whole number is "
    "accepted too. JSON fractions are refused.",
    "examples": ["10.00"],
}
PRICE_IN: Final[Schema] = {**USD_IN, "description": "US dollars per million tokens, e.g. \"0.15\"."}
LIMIT: Final[Schema] = {"type": ["integer", "null"], "minimum": 1, "description": "Per minute; null: unlimited."}
ROLE: Final[Schema] = {"type": "string", "enum": ["owner", "admin", "member"]}
STRATEGY: Final[Schema] = {"type": "string", "enum": ["cheapest", "quality", "balanced"]}
PRICE_SET: Final[Schema] = _obj({name: {**USD, "description": "USD per million tokens."} for name in (
    "input", "cached_input", "cache_write", "output")})  # fmt: skip
BUCKET: Final[dict[str, Schema]] = {
    "requests": INT,
    "errors": {"type": "integer", "description": "Records with an HTTP status of 400 or more."},
    "input_tokens": INT,
    "cache_read_tokens": INT,
    "cache_write_tokens": INT,
    "output_tokens": {"type": "integer", "description": "Includes the reasoning tokens."},
    "reasoning_tokens": INT,
    "cost_usd": USD,
}
_WORKSPACE_ITEM: Final[dict[str, Schema]] = {
    "id": STR,
    "name": STR,
    "created_at": _null(TIME),
    "rpm_limit": LIMIT,
    "tpm_limit": LIMIT,
    "balance_usd": USD,
}
_KEY: Final[dict[str, Schema]] = {
    "id": STR,
    "workspace": STR,
    "name": _null(STR),
    "prefix": {"type": "string", "description": "The key's first characters, to tell keys apart."},
    "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
    "created_at": _null(TIME),
    "updated_at": _null(TIME),
    "last_used_at": _null(TIME),
    "expires_at": _null(TIME),
    "revoked_at": _null(TIME),
    "credit_limit_usd": {**USD, "type": ["string", "null"], "description": "Cap on the key's total spend; null: none."},
    "spent_usd": USD,
    "models": {"type": "array", "items": STR, "description": "Model-id globs the key may use; empty: every model."},
}
_KEY_IN: Final[dict[str, Schema]] = {
    "name": {"type": ["string", "null"], "maxLength": 200},
    "credit_limit_usd": {**USD_IN, "type": ["string", "integer", "null"]},
    "models": {"type": ["array", "null"], "items": STR, "description": "Model-id globs, e.g. [\"openai/*\"]."},
    "expires_in": {"type": ["string", "null"], "description": "`1h` to `1y` (h, d, w, y), or `never`."},
    "expires_at": {**TIME, "type": ["string", "null"], "description": "An ISO 8601 time in the future; null: never."},
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": _obj(
        {
            "error": _obj(
                {"message": STR, "type": STR, "code": _null(STR), "param": _null(STR)},
                optional=("param",),
            )
        }
    ),
    # -- admin ------------------------------------------------------------------------------------------------
    "WorkspaceItem": _obj(_WORKSPACE_ITEM),
    "WorkspaceList": _list("WorkspaceItem"),
    "WorkspaceDetail": _obj(
        {
            **_WORKSPACE_ITEM,
            "reserved_usd": {**USD, "type": ["string", "null"], "description": "Held by calls in flight."},
            "credited_usd": {**USD, "description": "Credits, refunds and adjustments."},
            "spent_usd": {**USD, "description": "Charges."},
            "requests": INT,
        }
    ),
    "WorkspaceCreate": _obj({"name": {**STR, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}, "rpm_limit": LIMIT,
                             "tpm_limit": LIMIT}, optional=("rpm_limit", "tpm_limit")),  # fmt: skip
    "WorkspaceUpdate": _obj({"rpm_limit": LIMIT, "tpm_limit": LIMIT}, optional=("rpm_limit", "tpm_limit")),
    "Member": _obj({"user_id": STR, "email": STR, "name": _null(STR), "role": ROLE, "added_at": _null(TIME)}),
    "MemberList": _list("Member"),
    "MemberCreate": _obj(
        {"email": {**STR, "format": "email"}, "role": {**ROLE, "default": "member"}, "name": _null(STR)},
        optional=("role", "name"),
    ),
    "MemberUpdate": _obj({"role": ROLE}),
    "Key": _obj(_KEY),
    "KeyList": _list("Key"),
    "KeyCreated": _obj(
        {**_KEY, "api_key": {"type": "string", "description": "The raw key (sk-clearmaas-...): shown only here."}}
    ),
    "KeyCreate": _obj(_KEY_IN, optional=tuple(_KEY_IN)),
    "KeyUpdate": _obj(_KEY_IN, optional=tuple(_KEY_IN)),
    "CreditCreate": _obj(
        {"amount_usd": USD_IN, "reason": _null(STR), "actor": {**_null(STR), "description": "Who added it."}},
        optional=("reason", "actor"),
    ),
    "LedgerEntry": _obj(
        {
            "id": INT,
            "kind": {"type": "string", "enum": ["credit", "charge", "refund", "adjustment"]},
            "amount_usd": {**USD, "description": "Signed: charges are negative."},
            "reason": _null(STR),
            "actor": _null(STR),
            "request_id": _null(STR),
            "key_id": _null(STR),
            "created_at": _null(TIME),
        }
    ),
    "LedgerPage": _page("LedgerEntry"),
    "CreditAdded": _obj({"entry": _ref("LedgerEntry"), "balance_usd": USD}),
    "PriceSet": PRICE_SET,
    "ModelPrice": _obj(
        {
            "model": STR,
            "provider": STR,
            "prices": {"anyOf": [_ref("PriceSet"), {"type": "null"}], "description": "The price billed now."},
            "catalogue_prices": {"anyOf": [_ref("PriceSet"), {"type": "null"}]},
            "override": {
                "anyOf": [_obj({**PRICE_SET["properties"], "updated_at": _null(TIME)}), {"type": "null"}],
            },
        }
    ),
    "PriceList": _list("ModelPrice"),
    "PriceOverride": _obj(
        {"input": PRICE_IN, "output": PRICE_IN, "cached_input": PRICE_IN, "cache_write": PRICE_IN},
        optional=("cached_input", "cache_write"),
    ),
    "Router": _obj(
        {
            "name": STR,
            "model": {"type": "string", "description": "What clients send as `model`: clearmaas/{name}."},
            "patterns": {"type": "array", "items": STR},
            "strategy": STRATEGY,
            "default_model": _null(STR),
            "enabled": BOOL,
            "builtin": {"type": "boolean", "description": "The implicit `auto` router, not stored."},
        }
    ),
    "RouterList": _list("Router"),
    "RouterCreate": _obj(
        {
            "name": {**STR, "pattern": "^[a-z0-9_-]{1,50}$"},
            "patterns": {"type": ["array", "string", "null"], "items": STR, "description": "Model-id globs."},
            "strategy": {**STRATEGY, "default": "balanced"},
            "default_model": _null(STR),
            "enabled": {"type": "boolean", "default": True},
        },
        optional=("patterns", "strategy", "default_model", "enabled"),
    ),
    "RouterUpdate": _obj(
        {
            "patterns": {"type": ["array", "string", "null"], "items": STR},
            "strategy": STRATEGY,
            "default_model": _null(STR),
            "enabled": BOOL,
        },
        optional=("patterns", "strategy", "default_model", "enabled"),
    ),
    "UsageRecord": _obj(
        {
            "request_id": STR,
            "created_at": _null(TIME),
            "workspace": _null(STR),
            "key_id": _null(STR),
            "model": _null(STR),
            "requested_model": _null(STR),
            "served_model": _null(STR),
            "router": _null(STR),
            "fallback_level": _null(INT),
            "endpoint": STR,
            "stream": BOOL,
            "status": INT,
            "error_code": _null(STR),
            **{name: INT for name in BUCKET if name not in ("requests", "errors", "cost_usd")},
            "server_tool_calls": {"type": "object", "additionalProperties": INT},
            "cost_usd": USD,
            "latency_ms": _null(INT),
            "ttft_ms": _null(INT),
            "client_disconnected": BOOL,
        }
    ),
    "UsagePage": _page("UsageRecord"),
    "UsageBucket": _obj(BUCKET),
    "UsageSummary": _obj(
        {
            "totals": _ref("UsageBucket"),
            "by_model": {"type": "array", "items": _obj({"model": _null(STR), **BUCKET})},
            "by_day": {"type": "array", "items": _obj({"date": {**STR, "format": "date"}, **BUCKET})},
        }
    ),
    # -- public (summarized: the wire formats are OpenAI's and Anthropic's) ------------------------------------
    "ChatCompletionRequest": _obj(
        {
            "model": {**STR, "examples": ["openai/gpt-4o-mini", "clearmaas/auto"]},
            "messages": {"type": "array", "items": {"type": "object"}},
            "stream": BOOL,
            "models": {"type": "array", "items": STR, "description": "Fallback chain (with route: fallback)."},
            "route": {"type": "string", "enum": ["fallback"]},
        },
        optional=("stream", "models", "route"),
        open_=True,
    ),
    "ChatCompletion": {"type": "object", "description": "An OpenAI chat.completion object, or an SSE stream of "
                       "chat.completion.chunk objects."},  # fmt: skip
    "MessageRequest": _obj(
        {"model": STR, "messages": {"type": "array", "items": {"type": "object"}}, "max_tokens": INT, "stream": BOOL},
        optional=("stream",),
        open_=True,
    ),
    "Message": {"type": "object", "description": "An Anthropic Message object, or its SSE event stream."},
    "CountTokensRequest": _obj(
        {"model": STR, "messages": {"type": "array", "items": {"type": "object"}}}, open_=True
    ),
    "TokenCount": _obj({"input_tokens": INT}),
    "Model": {"type": "object", "properties": {"id": STR, "object": STR, "created": INT, "owned_by": STR},
              "required": ["id", "object"]},  # fmt: skip
    "ModelList": {"type": "object", "properties": {"object": STR, "data": {"type": "array", "items": _ref("Model")}},
                  "required": ["data"]},  # fmt: skip
    "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
}
