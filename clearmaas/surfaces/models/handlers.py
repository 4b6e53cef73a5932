"""HTTP binding of `GET /v1/models` and `GET /v1/models/{id}`: the OpenAI shape of the docs' Model object,
or Anthropic's list shape when the caller sends `anthropic-version` (Claude Code's gateway discovery)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clearmaas.errors import GatewayError, ModelNotFound
from clearmaas.relay.chat import error_response
from clearmaas.surfaces.anthropic_messages import SURFACE as ANTHROPIC
from clearmaas.surfaces.models.encode import anthropic_model_list, anthropic_model_object, model_list, model_object
from clearmaas.surfaces.openai_chat import SURFACE as OPENAI
from clearmaas.web.responses import json_response

__all__ = ["get_model", "list_models"]


async def list_models(request: Request) -> Response:
    gateway = request.app.state.gateway
    anthropic_style = "anthropic-version" in request.headers
    surface = ANTHROPIC if anthropic_style else OPENAI
    try:
        key = await gateway.authenticate(request.headers, allow_x_api_key=anthropic_style)
    except GatewayError as exc:
        return error_response(surface, exc)
    entries = gateway.available_models(key)
    if anthropic_style:
        params = request.query_params
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 20
        body = anthropic_model_list(entries, limit=limit, after_id=params.get("after_id"), before_id=params.get("before_id"))
        return json_response(orjson.dumps(body))
    return json_response(orjson.dumps(model_list(entries)))


async def get_model(request: Request) -> Response:
    gateway = request.app.state.gateway
    anthropic_style = "anthropic-version" in request.headers
    surface = ANTHROPIC if anthropic_style else OPENAI
    model_id = request.path_params["model_id"]
    try:
        key = await gateway.authenticate(request.headers, allow_x_api_key=anthropic_style)
        entry = next((e for e in gateway.available_models(key) if e.id.lower() == model_id.lower()), None)
        if entry is None:
            raise ModelNotFound(f"The model '{model_id}' is not available for your account.", param="model")
    except GatewayError as exc:
        return error_response(surface, exc)
    body = anthropic_model_object(entry) if anthropic_style else model_object(entry)
    return json_response(orjson.dumps(body))
