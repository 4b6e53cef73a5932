from __future__ import annotations

import logging

import pytest

from clearmaas.canonical import ReasoningConfig
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.errors import ModelNotFound
from clearmaas.providers.anthropic.reasoning import plan_thinking
from clearmaas.routing.names import NameResolver, Resolved, RouterRef
from clearmaas.settings import ConfigError, Settings
from tests.routing.builders import entry


@pytest.fixture(scope="module")
def bundled() -> Catalogue:
    return Catalogue.load(Settings())


def model(resolver: NameResolver, name: str) -> Resolved:
    found = resolver.resolve(name)
    assert isinstance(found, Resolved), found
    return found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini", "openai/gpt-4o-mini"),
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("OpenAI/GPT-4o-Mini", "openai/gpt-4o-mini"),
        # Claude Code's own names: the dated snapshot id, the undated alias, the dash spelling of a version.
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4.5"),
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4.5"),
        ("claude-opus-4-6", "anthropic/claude-opus-4.6"),
        ("anthropic/claude-haiku-4-5", "anthropic/claude-haiku-4.5"),
        ("claude-haiku-4.5", "anthropic/claude-haiku-4.5"),
        # Names that end in a suffix-like word are models, not efforts.
        ("qwen3-max", "qwen/qwen3-max"),
        ("minimax-m2.5-highspeed", "minimax/minimax-m2.5-highspeed"),
    ],
)
def test_names_resolve_to_their_catalogue_entry(bundled: Catalogue, name: str, expected: str) -> None:
    found = model(NameResolver(bundled), name)
    assert found.entry.id == expected
    assert found.effort is None and not found.inferred


def test_claude_code_name_reaches_the_upstream_snapshot(bundled: Catalogue) -> None:
    found = model(NameResolver(bundled), "claude-sonnet-4-5-20250929")
    assert found.entry.upstream == "claude-sonnet-4-5-20250929"
    assert found.entry.provider == "anthropic"


def test_unlisted_newer_claude_goes_to_anthropic_priced_as_its_family(
    bundled: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = NameResolver(bundled)
    newest_opus = max(
        (e for e in bundled if e.upstream.startswith("claude-opus-")), key=lambda e: e.created
    )
    with caplog.at_level(logging.WARNING, logger="clearmaas.routing"):
        found = model(resolver, "claude-opus-5-5")
        again = model(resolver, "claude-opus-5-5")
    assert found.inferred and again.entry == found.entry
    assert found.entry.provider == "anthropic"
    assert found.entry.upstream == "claude-opus-5-5"  # sent upstream as the client named it
    assert found.entry.id == "anthropic/claude-opus-5-5"
    assert found.entry.prices == newest_opus.prices
    assert found.entry.reasoning == newest_opus.reasoning
    warnings = [r for r in caplog.records if "claude-opus-5-5" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert newest_opus.id in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("claude-sonnet-4-7-latest", "sonnet"),  # Claude Code's documented default
        ("claude-haiku-5", "haiku"),
        ("claude-3-5-haiku-20241022", "haiku"),  # the older naming scheme
        ("anthropic/claude-sonnet-9-1", "sonnet"),
    ],
)
def test_family_is_read_from_either_naming_scheme(bundled: Catalogue, name: str, family: str) -> None:
    found = model(NameResolver(bundled), name)
    assert found.inferred
    newest = max((e for e in bundled if e.upstream.startswith(f"claude-{family}-")), key=lambda e: e.created)
    assert found.entry.prices == newest.prices


def test_family_rule_stays_within_the_named_provider(bundled: Catalogue) -> None:
    with pytest.raises(ModelNotFound):
        NameResolver(bundled).resolve("openai/claude-opus-5-5")
    with pytest.raises(ModelNotFound):
        NameResolver(bundled).resolve("claude-poem-5")


@pytest.mark.parametrize("suffix", ["minimal", "low", "medium", "high", "max"])
def test_effort_suffixes(bundled: Catalogue, suffix: str) -> None:
    found = model(NameResolver(bundled), f"anthropic/claude-opus-4.6-{suffix}")
    assert found.entry.id == "anthropic/claude-opus-4.6"
    assert found.effort == suffix


def test_suffix_on_bare_and_inferred_names(bundled: Catalogue) -> None:
    resolver = NameResolver(bundled)
    assert (model(resolver, "qwen3-max-high").entry.id, model(resolver, "qwen3-max-high").effort) == (
        "qwen/qwen3-max",
        "high",
    )
    # The docs list `o3-mini-high`: o3-mini at high effort.
    assert model(resolver, "o3-mini-high").entry.id == "openai/o3-mini"
    inferred = model(resolver, "claude-opus-5-5-low")
    assert inferred.inferred and inferred.effort == "low" and inferred.entry.upstream == "claude-opus-5-5"


def test_claude_high_suffix_becomes_a_4096_token_thinking_budget(bundled: Catalogue) -> None:
    found = model(NameResolver(bundled), "claude-sonnet-4-5-20250929-high")
    thinking = plan_thinking(ReasoningConfig(effort=found.effort), model=found.entry, max_tokens=8192)
    assert thinking.thinking == {"type": "enabled", "budget_tokens": 4096}


def test_a_model_named_like_a_suffix_wins_over_the_suffix() -> None:
    catalogue = Catalogue(
        [entry("x/foo", reasoning="effort"), entry("x/foo-high", reasoning="effort")]
    )
    resolver = NameResolver(catalogue)
    assert model(resolver, "foo-high") == Resolved(catalogue.get("x/foo-high"))  # type: ignore[arg-type]
    stacked = model(resolver, "x/foo-high-low")
    assert stacked.entry.id == "x/foo-high" and stacked.effort == "low"


def test_suffix_on_a_model_without_reasoning_is_refused(bundled: Catalogue) -> None:
    with pytest.raises(ModelNotFound, match="no reasoning effort"):
        NameResolver(bundled).resolve("gpt-4o-mini-high")


def test_ambiguous_bare_name_is_not_resolved() -> None:
    catalogue = Catalogue([entry("alpha/shared-7b"), entry("beta/shared-7b"), entry("beta/only-here")])
    resolver = NameResolver(catalogue)
    with pytest.raises(ModelNotFound) as raised:
        resolver.resolve("shared-7b")
    assert "ambiguous" in raised.value.message
    assert "alpha/shared-7b" in raised.value.message and "beta/shared-7b" in raised.value.message
    assert model(resolver, "beta/shared-7b").entry.id == "beta/shared-7b"
    assert model(resolver, "only-here").entry.id == "beta/only-here"


def test_catalogue_names_come_before_upstream_ids() -> None:
    # Three entries share one upstream id; the one whose own name it is answers, the others need their ids.
    catalogue = Catalogue(
        [entry("d/chat", upstream="flash"), entry("d/reasoner", upstream="flash"), entry("d/flash")]
    )
    assert model(NameResolver(catalogue), "flash").entry.id == "d/flash"


def test_alias_table(bundled: Catalogue) -> None:
    resolver = NameResolver(
        bundled,
        aliases={
            "Fast": "gpt-4o-mini",
            "thinker": "anthropic/claude-opus-4.6-high",
            "gpt-4o": "openai/gpt-4.1",
            "team": "clearmaas/team",
        },
    )
    assert model(resolver, "fast").entry.id == "openai/gpt-4o-mini"
    assert (model(resolver, "thinker").entry.id, model(resolver, "thinker").effort) == (
        "anthropic/claude-opus-4.6",
        "high",
    )
    assert model(resolver, "gpt-4o").entry.id == "openai/gpt-4.1"  # the operator's alias shadows the catalogue
    assert resolver.resolve("team") == RouterRef("team")


def test_alias_and_suffix_combine() -> None:
    catalogue = Catalogue([entry("x/deep", reasoning="effort")])
    found = model(NameResolver(catalogue, aliases={"brain": "x/deep"}), "brain-max")
    assert found.entry.id == "x/deep" and found.effort == "max"


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"fast": "no-such-model"}, "aliases.fast"),
        ({"clearmaas/x": "gpt-4o-mini"}, "must not start with"),
        ({"r": "clearmaas/"}, "names no router"),
    ],
)
def test_bad_aliases_are_configuration_errors(bundled: Catalogue, aliases: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NameResolver(bundled, aliases=aliases)


def test_router_names(bundled: Catalogue) -> None:
    resolver = NameResolver(bundled)
    assert resolver.resolve("clearmaas/auto") == RouterRef("auto")
    assert resolver.resolve("ClearMaas/Prod-Chat") == RouterRef("prod-chat")


def test_unknown_model(bundled: Catalogue) -> None:
    with pytest.raises(ModelNotFound) as raised:
        NameResolver(bundled).resolve("nope/never")
    assert raised.value.status == 503 and raised.value.param == "model"
