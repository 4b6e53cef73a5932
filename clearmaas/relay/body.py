"""Reading a client's JSON body with a size bound, failing in the client's terms."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from clearmaas.errors import InvalidRequest, RequestTooLarge

__all__ = ["read_json_body", "read_json_object"]


async def read_json_object(request: Request, *, limit: int) -> dict[str, Any]:
    body, _ = await read_json_body(request, limit=limit)
    return body


async def read_json_body(request: Request, *, limit: int) -> tuple[dict[str, Any], int]:
    """The body as a JSON object, and its size in bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc.msg} (at byte {exc.pos}).") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body, len(raw)
