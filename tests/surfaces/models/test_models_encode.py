"""`/v1/models` bodies: the docs' Model object (checked against the docs' schema and the openai SDK's Model) and
the Anthropic-shaped page Claude Code discovers models with (checked against the anthropic SDK's ModelInfo)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from anthropic.types import ModelInfo
from openai.types import Model

from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.settings import Settings
from clearmaas.surfaces.models import (
    anthropic_model_list,
    anthropic_model_object,
    model_list,
    model_object,
    wants_anthropic_shape,
)
from clearmaas.surfaces.models.encode import display_name

# The Model schema from api-reference/models/get-model-details (properties and their JSON types).
MODEL_SCHEMA = {
    "id": str,
    "object": str,
    "created": int,
    "owned_by": str,
    "supported_endpoint_types": list,
    "context_length": int,
    "max_completion_tokens": int,
}


@pytest.fixture(scope="module")
def entries() -> list[ModelEntry]:
    return Catalogue.load(Settings()).all()


def by_id(entries: list[ModelEntry], model_id: str) -> ModelEntry:
    return next(e for e in entries if e.id == model_id)


def test_model_object_has_exactly_the_documented_fields(entries: list[ModelEntry]) -> None:
    for entry in entries:
        body = orjson.loads(orjson.dumps(model_object(entry)))
        assert set(body) == set(MODEL_SCHEMA), entry.id
        for field, kind in MODEL_SCHEMA.items():
            assert type(body[field]) is kind, (entry.id, field)
        assert body["object"] == "model"
        assert all(isinstance(t, str) for t in body["supported_endpoint_types"])


def test_model_object_values(entries: list[ModelEntry]) -> None:
    sonnet = model_object(by_id(entries, "anthropic/claude-sonnet-4.6"))
    assert sonnet["id"] == "anthropic/claude-sonnet-4.6"
    assert sonnet["owned_by"] == "anthropic"
    assert sonnet["supported_endpoint_types"] == ["anthropic", "openai"]  # as in getting-started/models
    assert sonnet["context_length"] == 1_000_000 and sonnet["max_completion_tokens"] == 128_000
    assert model_object(by_id(entries, "openai/gpt-4o"))["supported_endpoint_types"] == ["openai"]


def test_the_openai_sdk_parses_the_list(entries: list[ModelEntry]) -> None:
    body = orjson.loads(orjson.dumps(model_list(entries)))
    assert body["object"] == "list" and len(body["data"]) == len(entries)
    models = [Model.model_validate(item) for item in body["data"]]
    assert [m.id for m in models] == [e.id for e in entries]
    first = models[0]
    assert first.object == "model" and first.owned_by == entries[0].provider and first.created == entries[0].created


def test_model_list_of_nothing() -> None:
    assert model_list([]) == {"object": "list", "data": []}


def test_the_anthropic_sdk_parses_model_info(entries: list[ModelEntry]) -> None:
    opus = by_id(entries, "anthropic/claude-opus-4.7")
    info = ModelInfo.model_validate(orjson.loads(orjson.dumps(anthropic_model_object(opus))))
    assert info.type == "model" and info.id == "anthropic/claude-opus-4.7"
    assert info.display_name == "Claude Opus 4.7"
    assert info.created_at.timestamp() == opus.created and info.created_at.tzinfo is not None
    assert info.max_input_tokens == opus.context_length and info.max_tokens == opus.max_output_tokens
    assert info.lifecycle == "active"
    for entry in entries:
        ModelInfo.model_validate(anthropic_model_object(entry))


def test_created_at_is_rfc3339_utc(entries: list[ModelEntry]) -> None:
    entry = dataclasses.replace(by_id(entries, "openai/gpt-5"), created=0)
    assert anthropic_model_object(entry)["created_at"] == "1970-01-01T00:00:00Z"
    assert anthropic_model_object(by_id(entries, "openai/gpt-5"))["created_at"] == "2025-08-07T00:00:00Z"


def test_display_names(entries: list[ModelEntry]) -> None:
    assert display_name(by_id(entries, "anthropic/claude-haiku-4.5")) == "Claude Haiku 4.5"
    assert display_name(by_id(entries, "kimi/kimi-k2.6")) == "Kimi K2.6"


def test_anthropic_list_of_everything_fits_claude_codes_page(entries: list[ModelEntry]) -> None:
    page = anthropic_model_list(entries, limit=1000)
    assert len(page["data"]) == len(entries) and page["has_more"] is False
    created = [ModelInfo.model_validate(m).created_at for m in page["data"]]
    assert created == sorted(created, reverse=True)  # newest first, like Anthropic's own list
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    # Claude Code keeps only ids starting with claude/anthropic: every Claude model qualifies.
    claude = [m["id"] for m in page["data"] if m["id"].startswith(("claude", "anthropic"))]
    assert len(claude) == len([e for e in entries if e.provider == "anthropic"])


def test_anthropic_pagination_walks_forward_and_back(entries: list[ModelEntry]) -> None:
    everything = [m["id"] for m in anthropic_model_list(entries, limit=1000)["data"]]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = anthropic_model_list(entries, limit=5, after_id=after)
        seen += [m["id"] for m in page["data"]]
        pages += 1
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == everything and pages == -(-len(everything) // 5)

    back = anthropic_model_list(entries, limit=5, before_id=everything[12])
    assert [m["id"] for m in back["data"]] == everything[7:12] and back["has_more"] is True
    first = anthropic_model_list(entries, limit=5, before_id=everything[3])
    assert [m["id"] for m in first["data"]] == everything[:3] and first["has_more"] is False


def test_anthropic_pagination_edges(entries: list[ModelEntry]) -> None:
    default = anthropic_model_list(entries)
    assert len(default["data"]) == 20 and default["has_more"] is True
    assert len(anthropic_model_list(entries, limit=0)["data"]) == 1  # clamped to 1..1000
    empty = anthropic_model_list(entries, after_id="no/such-model")
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    assert anthropic_model_list(entries, before_id="no/such-model")["data"] == []
    last = anthropic_model_list(entries, limit=1000)["last_id"]
    assert anthropic_model_list(entries, after_id=last)["data"] == []
    assert anthropic_model_list([], limit=10) == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_the_anthropic_sdk_parses_the_page(entries: list[ModelEntry]) -> None:
    from anthropic.pagination import SyncPage

    page = SyncPage[ModelInfo].model_validate(anthropic_model_list(entries, limit=3))
    assert len(page.data) == 3 and page.has_more is True and page.last_id == page.data[-1].id


def test_anthropic_shape_is_chosen_by_the_anthropic_version_header() -> None:
    assert wants_anthropic_shape({"anthropic-version": "2023-06-01", "x-api-key": "sk"}) is True
    assert wants_anthropic_shape({"authorization": "Bearer sk"}) is False
