"""Response bodies for `GET /v1/models` and `GET /v1/models/{id}`: the OpenAI-style list ClearMaas documents, and
the Anthropic-shaped page Claude Code asks for when it discovers a gateway's models.

Pure functions over catalogue entries: which entries a caller may see is the handler's decision, not this
module's, and nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from clearmaas.catalogue.entry import ModelEntry
from clearmaas.surfaces.models.wire import AnthropicModelInfo, AnthropicModelPage, ModelList, ModelObject

__all__ = [
    "ANTHROPIC_LIMIT_DEFAULT",
    "ANTHROPIC_LIMIT_MAX",
    "anthropic_model_list",
    "anthropic_model_object",
    "display_name",
    "model_list",
    "model_object",
    "wants_anthropic_shape",
]

# Anthropic's `GET /v1/models?limit=` takes 1..1000 and defaults to 20 (protocols.md §1.10).
ANTHROPIC_LIMIT_DEFAULT = 20
ANTHROPIC_LIMIT_MAX = 1000


def model_object(entry: ModelEntry) -> ModelObject:
    """The docs' Model object (api-reference/models/get-model-details)."""
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": entry.provider,
        "supported_endpoint_types": sorted(entry.endpoints),
        "context_length": entry.context_length,
        "max_completion_tokens": entry.max_output_tokens,
    }


def model_list(entries: Iterable[ModelEntry]) -> ModelList:
    return {"object": "list", "data": [model_object(e) for e in entries]}


def wants_anthropic_shape(headers: Mapping[str, str]) -> bool:
    """Claude Code's discovery call (`GET /v1/models?limit=1000`) carries `anthropic-version`; OpenAI clients never
    send it (protocols.md §8.2). `headers` must have lower-case keys, as ASGI gives them."""
    return "anthropic-version" in headers


def display_name(entry: ModelEntry) -> str:
    """A readable name from the id alone: "anthropic/claude-opus-4.7" -> "Claude Opus 4.7"."""
    name = entry.id.partition("/")[2] or entry.id
    return " ".join(word[:1].upper() + word[1:] for word in name.split("-") if word)


def anthropic_model_object(entry: ModelEntry) -> AnthropicModelInfo:
    """Anthropic's ModelInfo. The id stays the ClearMaas id: Claude Code keeps only ids that start with
    `claude` or `anthropic`, and every Claude id here starts with `anthropic/`."""
    created_at = dt.datetime.fromtimestamp(entry.created, tz=dt.UTC)
    return {
        "type": "model",
        "id": entry.id,
        "display_name": display_name(entry),
        "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_input_tokens": entry.context_length,
        "max_tokens": entry.max_output_tokens,
        "lifecycle": "active",
    }


def anthropic_model_list(
    entries: Iterable[ModelEntry],
    *,
    limit: int = ANTHROPIC_LIMIT_DEFAULT,
    after_id: str | None = None,
    before_id: str | None = None,
) -> AnthropicModelPage:
    """One page of Anthropic's model list, newest first like Anthropic's own.

    `after_id` gives the page after that model, `before_id` the page just before it (it wins when both are
    given); `has_more` says whether more models lie further in the direction of travel. `limit` is clamped to
    1..1000. An unknown cursor yields an empty page.
    """
    ordered = sorted(entries, key=lambda e: (-e.created, e.id))
    size = min(max(limit, 1), ANTHROPIC_LIMIT_MAX)
    if before_id is not None:
        cursor = _index(ordered, before_id)
        start = max(cursor - size, 0) if cursor is not None else 0
        page = ordered[start:cursor] if cursor is not None else []
        has_more = cursor is not None and start > 0
    else:
        cursor = _index(ordered, after_id) if after_id is not None else -1
        start = cursor + 1 if cursor is not None else len(ordered)
        page = ordered[start : start + size]
        has_more = start + size < len(ordered)
    data = [anthropic_model_object(e) for e in page]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _index(ordered: list[ModelEntry], model_id: str) -> int | None:
    wanted = model_id.casefold()
    return next((i for i, e in enumerate(ordered) if e.id.casefold() == wanted), None)
