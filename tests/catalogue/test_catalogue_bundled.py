"""The bundled models.yaml: it loads, it names every chat model the ClearMaas docs name, and every entry is
complete and sane."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clearmaas.catalogue.catalogue import BUNDLED_PATH, CAPABILITIES, ENDPOINT_TYPES, Catalogue
from clearmaas.settings import BUILTIN_PROVIDERS, Settings

# Every chat model id the stored ClearMaas docs and protocols.md name (read 2026-11-27), written out so the test
# holds without the docs checkout. Reasoning-effort suffixes (o3-mini-high) are not separate models.
DOC_CHAT_MODELS = [
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-4.1",
    "openai/gpt-4.1-mini",
    "openai/gpt-4.1-nano",
    "openai/gpt-5",
    "openai/gpt-5-mini",
    "openai/gpt-5-nano",
    "openai/gpt-5-pro",
    "openai/o1",
    "openai/o1-pro",
    "openai/o3",
    "openai/o3-mini",
    "openai/o4-mini",
    "openai/gpt-4o-search-preview",
    "openai/gpt-5-search-api",
    "anthropic/claude-sonnet-4.6",
    "anthropic/claude-sonnet-4.5",
    "anthropic/claude-opus-4.6",
    "anthropic/claude-opus-4.7",
    "anthropic/claude-opus-4.8",
    "anthropic/claude-haiku-4.5",
    "google/gemini-2.5-flash",
    "google/gemini-2.5-pro",
    "google/gemini-3-pro-preview",
    "google/gemini-2.5-flash-image",
    "google/gemini-3-pro-image-preview",
    "google/gemini-3.1-flash-image-preview",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner",
    "deepseek/deepseek-flash",
    "deepseek/deepseek-v4-pro",
    "grok/grok-4-fast-reasoning",
    "grok/grok-4-1-fast-reasoning",
    "grok/grok-3-mini",
    "qwen/qwen3.6-plus",
    "qwen/qwen3-max",
    "qwen/qwen3-vl-235b-a22b-thinking",
    "kimi/kimi-k2.5",
    "kimi/kimi-k2.6",
    "minimax/minimax-m2.7",
    "minimax/minimax-m2.5-highspeed",
]

DOCS_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "clearmaas-docs"
_DOC_ID = re.compile(r"\b(" + "|".join(BUILTIN_PROVIDERS) + r")/([A-Za-z0-9._-]*[A-Za-z0-9])")
# Image, speech and video models live in other catalogues (other-apis/*).
_NOT_CHAT = re.compile(r"^(gpt-image-|imagen-|tts-|grok-imagine-)|-tts$")
_EFFORT_SUFFIX = re.compile(r"-(minimal|low|medium|high|max)$")
# The stored pages are cut mid-word in places ("e.g., anthropic/c[...gap...]").
_TRUNCATED = {"anthropic/c", "anthropic/claude-haiku"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(Settings())


@pytest.mark.parametrize("model_id", DOC_CHAT_MODELS)
def test_every_model_the_docs_name_is_catalogued(catalogue: Catalogue, model_id: str) -> None:
    entry = catalogue.get(model_id)
    assert entry is not None, model_id
    assert entry.id == model_id


@pytest.mark.skipif(not DOCS_DIR.is_dir(), reason="the ClearMaas docs copy is not beside this checkout")
def test_docs_name_no_chat_model_missing_from_the_catalogue(catalogue: Catalogue) -> None:
    named = set()
    for page in DOCS_DIR.glob("*.md"):
        named.update(f"{p}/{n}" for p, n in _DOC_ID.findall(page.read_text(encoding="utf-8")))
    assert len(named) > 30, "the docs grep found too little; has the docs copy moved?"
    missing = []
    for model_id in sorted(named - _TRUNCATED):
        name = model_id.partition("/")[2]
        if _NOT_CHAT.search(name) or model_id in catalogue:
            continue
        base = _EFFORT_SUFFIX.sub("", model_id)
        if base != model_id and base in catalogue:
            continue
        missing.append(model_id)
    assert missing == []


def test_the_bundled_file_is_the_one_loaded(catalogue: Catalogue) -> None:
    document = yaml.safe_load(BUNDLED_PATH.read_text(encoding="utf-8"))
    assert [m["id"] for m in document["models"]] == [e.id for e in catalogue.all()]


def test_only_chat_models_are_bundled(catalogue: Catalogue) -> None:
    assert not [e.id for e in catalogue if _NOT_CHAT.search(e.id.partition("/")[2]) or "kling" in e.id]


def test_every_entry_is_complete(catalogue: Catalogue) -> None:
    document = yaml.safe_load(BUNDLED_PATH.read_text(encoding="utf-8"))
    for raw, entry in zip(document["models"], catalogue, strict=True):
        assert entry.provider in BUILTIN_PROVIDERS, entry.id
        assert entry.id.startswith(f"{entry.provider}/"), entry.id
        assert entry.upstream, entry.id
        assert entry.context_length > 0 and entry.max_output_tokens > 0, entry.id
        assert entry.max_output_tokens <= entry.context_length, entry.id
        assert entry.prices is not None, entry.id
        # The bundled file spells out all four prices as strings, never relying on the defaults.
        assert set(raw["prices"]) == {"input", "cached_input", "cache_write", "output"}, entry.id
        assert all(isinstance(v, str) for v in raw["prices"].values()), entry.id
        assert entry.prices.input > 0 and entry.prices.output > 0, entry.id
        assert entry.prices.cached_input <= entry.prices.input, entry.id
        assert entry.prices.cache_write >= entry.prices.cached_input, entry.id
        assert 0 <= entry.quality <= 100, entry.id
        assert entry.created > 1_700_000_000, entry.id  # every model here is from late 2023 or later
        assert "openai" in entry.endpoints and set(entry.endpoints) <= ENDPOINT_TYPES, entry.id
        assert entry.capabilities <= CAPABILITIES, entry.id


def test_every_bundled_provider_has_models(catalogue: Catalogue) -> None:
    for provider in BUILTIN_PROVIDERS:
        assert catalogue.for_provider(provider), provider


def test_endpoint_types_follow_the_upstream_protocol(catalogue: Catalogue) -> None:
    # The docs' own example: ["anthropic", "openai"] for Claude, ["openai"] for gpt-4o.
    assert catalogue.get("anthropic/claude-sonnet-4.6").endpoints == ("anthropic", "openai")  # type: ignore[union-attr]
    assert catalogue.get("openai/gpt-4o").endpoints == ("openai",)  # type: ignore[union-attr]
    for entry in catalogue:
        assert ("anthropic" in entry.endpoints) == (entry.provider == "anthropic"), entry.id
        assert ("gemini" in entry.endpoints) == (entry.provider == "google"), entry.id


def test_upstream_ids_are_the_providers_own(catalogue: Catalogue) -> None:
    upstream = {e.id: e.upstream for e in catalogue}
    assert upstream["anthropic/claude-sonnet-4.6"] == "claude-sonnet-4-6"
    assert upstream["anthropic/claude-opus-4.7"] == "claude-opus-4-7"
    assert upstream["anthropic/claude-haiku-4.5"] == "claude-haiku-4-5-20251001"
    assert upstream["minimax/minimax-m2.7"] == "MiniMax-M2.7"
    assert upstream["minimax/minimax-m2.5-highspeed"] == "MiniMax-M2.5-highspeed"
    assert upstream["qwen/qwen3-max"] == "qwen3-max"
    assert upstream["kimi/kimi-k2.5"] == "kimi-k2.5"
    # DeepSeek retired the legacy names on 2026-07-24; both are served by deepseek-flash.
    assert upstream["deepseek/deepseek-chat"] == upstream["deepseek/deepseek-reasoner"] == "deepseek-flash"


def test_reasoning_modes_match_the_reasoning_guide(catalogue: Catalogue) -> None:
    mode = {e.id: e.reasoning for e in catalogue}
    assert mode["openai/o3"] == mode["openai/gpt-5-pro"] == mode["grok/grok-3-mini"] == "effort"
    assert mode["anthropic/claude-opus-4.6"] == "adaptive"
    assert mode["anthropic/claude-sonnet-4.6"] == "budget"
    assert mode["google/gemini-2.5-pro"] == "gemini"
    assert mode["deepseek/deepseek-reasoner"] == mode["grok/grok-4-fast-reasoning"] == "always"
    assert mode["qwen/qwen3.6-plus"] == "toggle"
    assert mode["openai/gpt-4o"] is None
    assert "thinking_off" in catalogue.get("deepseek/deepseek-chat").capabilities  # type: ignore[union-attr]


def test_models_that_reject_sampling_parameters_are_flagged(catalogue: Catalogue) -> None:
    no_temperature = {e.id for e in catalogue if "no_temperature" in e.capabilities}
    assert {"openai/o1", "openai/o3", "openai/o3-mini", "openai/o4-mini", "openai/gpt-5"} <= no_temperature
    assert "anthropic/claude-opus-4.7" in no_temperature  # protocols.md §1.4
    assert "openai/gpt-4o" not in no_temperature
    assert "anthropic/claude-sonnet-4.6" not in no_temperature
    assert {e.id for e in catalogue if "responses_only" in e.capabilities} == {"openai/o1-pro", "openai/gpt-5-pro"}


def test_published_prices_are_stored_exactly(catalogue: Catalogue) -> None:
    mini = catalogue.get("openai/gpt-4o-mini").prices  # type: ignore[union-attr]
    assert (mini.input, mini.cached_input, mini.cache_write, mini.output) == (150_000, 75_000, 150_000, 600_000)
    sonnet = catalogue.get("anthropic/claude-sonnet-4.6").prices  # type: ignore[union-attr]
    # Anthropic: 5-minute cache write = 1.25 x input, cache read = 0.1 x input.
    assert sonnet.cache_write * 4 == sonnet.input * 5
    assert sonnet.cached_input * 10 == sonnet.input
    assert catalogue.get("deepseek/deepseek-flash").prices.cached_input == 6_000  # type: ignore[union-attr]


def test_anthropic_cache_prices_follow_the_published_multipliers(catalogue: Catalogue) -> None:
    for entry in catalogue.for_provider("anthropic"):
        assert entry.prices is not None
        assert entry.prices.cache_write * 4 == entry.prices.input * 5, entry.id
        assert entry.prices.cached_input * 10 == entry.prices.input, entry.id
