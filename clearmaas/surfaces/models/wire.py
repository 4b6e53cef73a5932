"""Wire shapes of the model-listing endpoints: ClearMaas's OpenAI-style Model object (docs
api-reference/models) and Anthropic's ModelInfo page (anthropic-sdk-python `types/model_info.py`)."""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = ["AnthropicModelInfo", "AnthropicModelPage", "ModelList", "ModelObject"]


class ModelObject(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    supported_endpoint_types: list[str]
    context_length: int
    max_completion_tokens: int


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[ModelObject]


class AnthropicModelInfo(TypedDict):
    type: Literal["model"]
    id: str
    display_name: str
    created_at: str  # RFC 3339
    max_input_tokens: int
    max_tokens: int
    # Required by the current SDK's ModelInfo (2.x); every catalogued model is served, so "active".
    lifecycle: Literal["active", "deprecated", "retired"]


class AnthropicModelPage(TypedDict):
    data: list[AnthropicModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None
