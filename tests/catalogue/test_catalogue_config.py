"""Catalogue.load with configuration: exact price parsing, overrides, additions, custom providers' models, bad
entries, and the lookups."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearmaas.catalogue.catalogue import Catalogue, parse_price
from clearmaas.settings import ConfigError, Settings

CUSTOM = {"kind": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1", "api_key": "sk-local"}


def load(**config: Any) -> Catalogue:
    return Catalogue.load(Settings.model_validate(config))


def new_model(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "openai/gpt-test",
        "context_length": 8000,
        "max_output_tokens": 1000,
        "prices": {"input": "1", "output": "2"},
    }
    entry.update(fields)
    return entry


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("3", 3_000_000),
        ("3.00", 3_000_000),
        ("0.075", 75_000),
        ("$0.075", 75_000),
        ("0.0028", 2_800),
        ("0.000001", 1),
        ("0", 0),
        ("150.00", 150_000_000),
        (5, 5_000_000),
    ],
)
def test_prices_convert_exactly_to_micro_dollars(text: str | int, micro: int) -> None:
    assert parse_price(text) == micro


@pytest.mark.parametrize("bad", [0.075, "0.0000005", "-1", "abc", "NaN", "Infinity", None, True, [1]])
def test_prices_that_cannot_be_exact_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_price(bad)


@given(st.integers(min_value=0, max_value=10**12))
def test_any_micro_dollar_amount_round_trips(micro: int) -> None:
    assert parse_price(f"{micro // 1_000_000}.{micro % 1_000_000:06d}") == micro


def test_partial_price_override_keeps_the_other_fields() -> None:
    base = load().get("openai/gpt-4o")
    catalogue = load(models=[{"id": "openai/gpt-4o", "prices": {"input": "2.25"}}])
    entry = catalogue.get("openai/gpt-4o")
    assert entry is not None and base is not None and base.prices is not None
    assert entry.prices == type(base.prices)(
        input=2_250_000, cached_input=base.prices.cached_input, cache_write=base.prices.cache_write,
        output=base.prices.output,
    )
    assert entry.context_length == base.context_length and entry.capabilities == base.capabilities


def test_an_override_matches_the_id_case_insensitively_and_keeps_its_spelling() -> None:
    catalogue = load(models=[{"id": "ANTHROPIC/Claude-Sonnet-4.6", "quality": 10}])
    entry = catalogue.get("anthropic/claude-sonnet-4.6")
    assert entry is not None and entry.quality == 10 and entry.id == "anthropic/claude-sonnet-4.6"
    assert len(catalogue) == len(load())


def test_an_override_can_move_a_model_to_another_upstream_id() -> None:
    entry = load(models=[{"id": "openai/gpt-4o", "upstream": "gpt-4o-2024-11-20"}]).get("openai/gpt-4o")
    assert entry is not None and entry.upstream == "gpt-4o-2024-11-20"


def test_adding_a_model() -> None:
    catalogue = load(models=[new_model(created="2026-01-02", capabilities=["tools"])])
    entry = catalogue.get("openai/gpt-test")
    assert entry is not None
    assert (entry.provider, entry.upstream) == ("openai", "gpt-test")  # both default from the id
    assert entry.prices is not None and entry.prices.cached_input == entry.prices.input == 1_000_000
    assert entry.prices.cache_write == 1_000_000 and entry.prices.output == 2_000_000
    assert entry.endpoints == ("openai",) and entry.reasoning is None and entry.quality == 50
    assert entry.created == int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp())
    assert catalogue.all()[-1] is entry


def test_custom_provider_models_are_prefixed_and_owned_by_the_provider() -> None:
    catalogue = load(
        providers={
            "local": {
                **CUSTOM,
                "models": [
                    {
                        "id": "llama-3.3-70b",
                        "context_length": 131072,
                        "max_output_tokens": 8192,
                        "prices": {"input": "0", "output": "0"},
                    },
                    {"id": "local/qwen-coder", "context_length": 32768, "max_output_tokens": 4096},
                ],
            }
        }
    )
    llama, coder = catalogue.for_provider("local")
    assert (llama.id, llama.provider, llama.upstream) == ("local/llama-3.3-70b", "local", "llama-3.3-70b")
    assert (coder.id, coder.upstream) == ("local/qwen-coder", "qwen-coder")
    assert coder.prices is None
    # A model without a price is catalogued but not offered.
    assert catalogue.available(["local"]) == [llama]


def test_top_level_models_may_override_a_custom_providers_model() -> None:
    catalogue = load(
        providers={"local": {**CUSTOM, "models": [{"id": "m", "context_length": 10, "max_output_tokens": 5}]}},
        models=[{"id": "local/m", "prices": {"input": "0.5", "output": "1"}}],
    )
    entry = catalogue.get("local/m")
    assert entry is not None and entry.prices is not None and entry.prices.input == 500_000


def test_a_builtin_providers_models_section_overrides_its_bundled_entries() -> None:
    catalogue = load(providers={"openai": {"api_key": "sk", "models": [{"id": "gpt-4o", "quality": 1}]}})
    entry = catalogue.get("openai/gpt-4o")
    assert entry is not None and entry.quality == 1 and entry.context_length == 128000


@pytest.mark.parametrize(
    ("config", "names"),
    [
        (
            {"models": [{"id": "openai/gpt-4o", "prices": {"input": 2.5}}]},
            ["models[0]", "openai/gpt-4o", "prices.input", "quoted"],
        ),
        ({"models": [{"id": "openai/gpt-4o", "prices": {"input": "0.0000001"}}]}, ["prices.input", "micro-dollar"]),
        ({"models": [{"id": "openai/gpt-4o", "prices": {"inptu": "1"}}]}, ["prices.inptu"]),
        ({"models": [{"id": "openai/gpt-4o", "context_lenght": 5}]}, ["openai/gpt-4o", "context_lenght"]),
        ({"models": [{"id": "openai/gpt-4o", "max_output_tokens": 0}]}, ["max_output_tokens", "positive"]),
        ({"models": [{"id": "openai/gpt-4o", "reasoning": "deep"}]}, ["reasoning", "'deep'"]),
        ({"models": [{"id": "openai/gpt-4o", "endpoints": ["grpc"]}]}, ["endpoints", "'grpc'"]),
        ({"models": [{"id": "openai/gpt-4o", "endpoints": []}]}, ["endpoints", "at least one"]),
        ({"models": [{"id": "openai/gpt-4o", "capabilities": ["telepathy"]}]}, ["capabilities", "telepathy"]),
        ({"models": [{"id": "openai/gpt-4o", "quality": 101}]}, ["quality", "0 to 100"]),
        ({"models": [{"id": "openai/gpt-4o", "created": "last year"}]}, ["created"]),
        ({"models": [new_model(id="acme/model-x")]}, ["models[0]", "acme/model-x", "provider", "'acme'"]),
        ({"models": [new_model(id="no-prefix")]}, ["no-prefix", "'id'", "<provider>/<model>"]),
        ({"models": [{"id": "openai/gpt-new"}]}, ["openai/gpt-new", "context_length", "required"]),
        ({"models": [new_model(prices={"input": "1"})]}, ["prices.output", "required"]),
        ({"models": [{"context_length": 5}]}, ["models[0]", "'id'"]),
        ({"models": [new_model(upstream="")]}, ["upstream"]),
        (
            {"providers": {"local": {**CUSTOM, "models": [{"id": "m", "provider": "openai", "max_output_tokens": 1}]}}},
            ["providers.local.models[0]", "provider"],
        ),
    ],
)
def test_bad_entries_raise_a_config_error_naming_the_entry_and_field(config: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(**config)
    for name in names:
        assert name in str(info.value)


def test_a_broken_bundled_file_is_a_config_error(tmp_path: Path) -> None:
    bundled = tmp_path / "models.yaml"
    entry = "{id: %s, context_length: 1, max_output_tokens: 1}"
    bundled.write_text(f"models:\n  - {entry % 'openai/a'}\n  - {entry % 'OpenAI/A'}\n")
    with pytest.raises(ConfigError, match="twice"):
        Catalogue.load(Settings(), bundled=bundled)
    bundled.write_text("models: {}\n")
    with pytest.raises(ConfigError, match="'models' list"):
        Catalogue.load(Settings(), bundled=bundled)
    with pytest.raises(ConfigError, match="cannot read"):
        Catalogue.load(Settings(), bundled=tmp_path / "missing.yaml")


def test_lookups() -> None:
    catalogue = load()
    entry = catalogue.get("OpenAI/GPT-4o-Mini")
    assert entry is not None and entry.id == "openai/gpt-4o-mini"
    assert catalogue.get("openai/gpt-4o-mini-2024-07-18") is None
    assert "openai/GPT-4O" in catalogue and "nope/x" not in catalogue
    assert {e.provider for e in catalogue.for_provider("grok")} == {"grok"}
    assert catalogue.for_provider("unknown") == []
    assert len(catalogue.all()) == len(catalogue)


def test_available_needs_a_configured_provider_and_a_price() -> None:
    catalogue = load(models=[{"id": "openai/gpt-4o", "prices": None}])
    available = catalogue.available({"openai": object(), "kimi": object()})  # any iterable of provider ids
    ids = {e.id for e in available}
    assert {e.provider for e in available} == {"openai", "kimi"}
    assert "openai/gpt-4o" not in ids and "openai/gpt-4o-mini" in ids and "kimi/kimi-k2.6" in ids
    assert catalogue.available([]) == []
    assert [e.id for e in available] == [e.id for e in catalogue if e.id in ids]  # catalogue order


def test_catalogue_from_entries_rejects_duplicate_ids() -> None:
    entry = load().get("openai/gpt-4o")
    assert entry is not None
    with pytest.raises(ConfigError, match="twice"):
        Catalogue([entry, entry])
