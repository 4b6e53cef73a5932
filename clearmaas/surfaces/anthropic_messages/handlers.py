"""HTTP binding of the Anthropic Messages surface (also what Claude Code calls, with `?beta=true`)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clearmaas.canonical.estimate import estimate_input_tokens
from clearmaas.errors import GatewayError
from clearmaas.relay.body import read_json_object
from clearmaas.relay.chat import error_response, serve_chat
from clearmaas.surfaces.anthropic_messages import SURFACE
from clearmaas.web.responses import json_response

__all__ = ["count_tokens", "create_message"]


async def create_message(request: Request) -> Response:
    return await serve_chat(request.app.state.gateway, SURFACE, request)


async def count_tokens(request: Request) -> Response:
    """Answered locally with the gateway's estimate: Claude Code calls this often, and falls back to worse
    guesses on a 404 (protocols.md §1.9)."""
    gateway = request.app.state.gateway
    try:
        await gateway.authenticate(request.headers, allow_x_api_key=True)
        body = await read_json_object(request, limit=gateway.settings.max_body_bytes)
        body.setdefault("max_tokens", 1)
        decoded = SURFACE.decode_request(body, request.headers)
    except GatewayError as exc:
        return error_response(SURFACE, exc)
    return json_response(orjson.dumps({"input_tokens": estimate_input_tokens(decoded)}))
