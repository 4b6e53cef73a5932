"""`GET /v1/models` and `GET /v1/models/{provider/model}` through the openai SDK: the docs' Model fields, for the
bundled catalogue and the harness's custom upstream, against the catalogue file itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml

from tests.e2e.harness import ROOT, GatewayProcess

CATALOGUE = Path(ROOT) / "clearmaas" / "catalogue" / "models.yaml"
MODEL_FIELDS = {"id", "object", "created", "owned_by", "supported_endpoint_types", "context_length",
                "max_completion_tokens"}


def bundled() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(CATALOGUE.read_text())
    entries = loaded["models"] if isinstance(loaded, dict) else loaded
    return {e["id"]: e for e in entries}


def test_list_shows_every_configured_provider_with_the_docs_fields(oai: openai.OpenAI) -> None:
    models = list(oai.models.list())

    ids = [m.id for m in models]
    assert len(ids) == len(set(ids))
    catalogue = bundled()
    assert set(catalogue) | {"local/llama-3.1-8b"} >= set(ids)
    owners = {m.owned_by for m in models}
    assert owners == {"openai", "anthropic", "google", "deepseek", "grok", "qwen", "kimi", "minimax", "local"}
    for model in models:
        assert set(model.model_dump()) >= MODEL_FIELDS, model.id
        assert model.object == "model"
        assert model.id.startswith(f"{model.owned_by}/")
        extra = model.model_extra or {}
        assert extra["context_length"] > 0 and extra["max_completion_tokens"] > 0
        assert extra["supported_endpoint_types"] and "openai" in extra["supported_endpoint_types"]


def test_retrieve_matches_the_catalogue(oai: openai.OpenAI) -> None:
    entry = bundled()["openai/gpt-4o-mini"]
    model = oai.models.retrieve("openai/gpt-4o-mini")

    assert model.id == "openai/gpt-4o-mini" and model.object == "model" and model.owned_by == "openai"
    created = dt.datetime.combine(entry["created"], dt.time(), tzinfo=dt.UTC)
    assert model.created == int(created.timestamp())
    extra = model.model_extra or {}
    assert extra["context_length"] == entry["context_length"] == 128000
    assert extra["max_completion_tokens"] == entry["max_output_tokens"]
    assert extra["supported_endpoint_types"] == ["openai"]

    claude = oai.models.retrieve("anthropic/claude-sonnet-4.6")
    assert (claude.model_extra or {})["supported_endpoint_types"] == ["anthropic", "openai"]
    local = oai.models.retrieve("local/llama-3.1-8b")
    assert local.owned_by == "local"
    assert (local.model_extra or {})["context_length"] == 131072
    assert (local.model_extra or {})["max_completion_tokens"] == 8192


def test_unknown_model_is_model_not_found(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        oai.models.retrieve("nobody/no-such-model")
    assert caught.value.status_code == 503
    assert caught.value.code == "model_not_found"


def test_models_need_a_key(http: httpx2.Client, gw: GatewayProcess) -> None:
    assert http.get("/v1/models").status_code == 401
    assert http.get("/v1/models/openai/gpt-4o-mini").status_code == 401
    listed = http.get("/v1/models", headers={"authorization": f"Bearer {gw.api_key}"})
    assert listed.status_code == 200 and listed.json()["object"] == "list"
