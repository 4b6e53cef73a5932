"""The model-listing surface: `/v1/models` bodies in ClearMaas's OpenAI-style shape and in Anthropic's shape."""

from __future__ import annotations

from clearmaas.surfaces.models.encode import (
    anthropic_model_list,
    anthropic_model_object,
    model_list,
    model_object,
    wants_anthropic_shape,
)

__all__ = [
    "anthropic_model_list",
    "anthropic_model_object",
    "model_list",
    "model_object",
    "wants_anthropic_shape",
]
