"""HTTP binding of the OpenAI Chat Completions surface."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from clearmaas.relay.chat import serve_chat
from clearmaas.surfaces.openai_chat import SURFACE

__all__ = ["create_chat_completion"]


async def create_chat_completion(request: Request) -> Response:
    return await serve_chat(request.app.state.gateway, SURFACE, request)
