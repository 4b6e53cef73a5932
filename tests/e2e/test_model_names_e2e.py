"""Model names end to end, checked on the request the fake upstream receives: bare names, Claude Code's own ids
(and an unlisted newer Claude, forwarded as written and billed at its family's price), the config's aliases, and
the `-{effort}` suffixes (advanced__reasoning.md) becoming each provider's own reasoning fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.cases import ANSWER_TOKENS, input_tokens
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, gateway, gateway_config
from tests.e2e.routing_support import ask, assert_opaque, catalogue_of, cost_of, upstream_calls, usage_record
from tests.fakes.scenarios import ANSWER_TEXT

# The Anthropic SDK warns about the older Claude ids Claude Code still sends; sending them is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

ALIASES = {
    "fast": "openai/gpt-4o-mini",
    "thinker": "anthropic/claude-sonnet-4.6",
    "cheapest": "clearmaas/auto",
}


@pytest.fixture(scope="module")
def config(fake: FakeUpstreamProcess) -> dict[str, Any]:
    return gateway_config(fake.url, aliases=ALIASES, log_level="warning")


@pytest.fixture(scope="module")
def ngw(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway(config, tmp_path_factory.mktemp("names")) as server:
        yield server


@pytest.fixture(scope="module")
def clients(ngw: GatewayProcess) -> Iterator[dict[str, Any]]:
    with (
        openai.OpenAI(base_url=f"{ngw.url}/v1", api_key=ngw.api_key, max_retries=0, timeout=20) as oai,
        anthropic.Anthropic(base_url=ngw.url, api_key=ngw.api_key, max_retries=0, timeout=20) as ant,
    ):
        yield {"openai": oai, "anthropic": ant}


def received(fake: FakeUpstreamProcess) -> dict[str, Any]:
    found = fake.requests()
    assert len(found) == 1, [r["path"] for r in found]
    body: dict[str, Any] = found[0]["body"]
    return body


# --- names ---------------------------------------------------------------------------------------------------

NAMES = [
    # (surface, name sent, (fake provider, model it must be asked for), catalogue entry billed)
    ("openai", "gpt-4o-mini", ("openai", "gpt-4o-mini"), "openai/gpt-4o-mini"),
    ("openai", "GPT-4o-mini", ("openai", "gpt-4o-mini"), "openai/gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5-20250929", ("anthropic", "claude-sonnet-4-5-20250929"),
     "anthropic/claude-sonnet-4.5"),
    ("anthropic", "claude-haiku-4-5", ("anthropic", "claude-haiku-4-5-20251001"), "anthropic/claude-haiku-4.5"),
    ("anthropic", "claude-haiku-4.5", ("anthropic", "claude-haiku-4-5-20251001"), "anthropic/claude-haiku-4.5"),
    ("openai", "claude-sonnet-4-6", ("anthropic", "claude-sonnet-4-6"), "anthropic/claude-sonnet-4.6"),
    ("openai", "gemini-2.5-flash", ("google", "gemini-2.5-flash"), "google/gemini-2.5-flash"),
    ("openai", "qwen3-max", ("qwen", "qwen3-max"), "qwen/qwen3-max"),  # a catalogue name, never `qwen3` + `-max`
    ("anthropic", "fast", ("openai", "gpt-4o-mini"), "openai/gpt-4o-mini"),
    ("openai", "FAST", ("openai", "gpt-4o-mini"), "openai/gpt-4o-mini"),
]


@pytest.mark.parametrize(("surface", "name", "upstream", "billed"), NAMES, ids=[f"{s}-{n}" for s, n, _, _ in NAMES])
def test_a_name_reaches_the_upstream_as_its_own_id(
    clients: dict[str, Any], ngw: GatewayProcess, fake: FakeUpstreamProcess, config: dict[str, Any],
    surface: str, name: str, upstream: tuple[str, str], billed: str,
) -> None:
    answer = ask(clients[surface], name)

    assert answer.status == 200, answer.body
    assert answer.text == ANSWER_TEXT
    assert upstream_calls(fake) == [(None, upstream[1])]
    assert fake.requests()[0]["provider"] == upstream[0]
    assert answer.routing == {}  # a plain name: no router, no chain
    record = usage_record(ngw, answer.request_id)
    assert (record["requested_model"], record["served_model"]) == (name, billed)
    entry = catalogue_of(config).get(billed)
    assert entry is not None
    assert record["cost_micros"] == cost_of(entry, input_tokens=input_tokens("hello"), output_tokens=ANSWER_TOKENS)


def test_an_unlisted_newer_claude_is_forwarded_as_written_at_its_familys_price(
    clients: dict[str, Any], ngw: GatewayProcess, fake: FakeUpstreamProcess, config: dict[str, Any]
) -> None:
    catalogue = catalogue_of(config)
    assert catalogue.get("anthropic/claude-opus-5-5") is None
    opus = [e for e in catalogue if e.provider == "anthropic" and e.upstream.startswith("claude-opus-")]
    newest = max(opus, key=lambda e: e.created)

    answer = ask(clients["anthropic"], "claude-opus-5-5")

    assert answer.status == 200, answer.body
    assert upstream_calls(fake) == [(None, "claude-opus-5-5")]
    record = usage_record(ngw, answer.request_id)
    assert record["served_model"] == "anthropic/claude-opus-5-5"
    assert record["cost_micros"] == cost_of(newest, input_tokens=input_tokens("hello"), output_tokens=ANSWER_TOKENS)


def test_an_alias_may_name_a_router(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    answer = ask(clients["openai"], "cheapest")
    assert answer.status == 200, answer.body
    assert answer.routing["x-clear-router"] == "auto"
    # The harness's `local` model is the cheapest one this config offers.
    assert answer.routing["x-clear-resolved-model"] == "local/llama-3.1-8b"
    assert upstream_calls(fake) == [(None, "llama-3.1-8b-instruct")]


# --- effort suffixes -----------------------------------------------------------------------------------------


def anthropic_budget(budget: int) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert body["max_tokens"] > budget
    return check


def fields(**expected: Any) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert {name: body.get(name) for name in expected} == expected
    return check


def gemini(config: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert body["generationConfig"]["thinkingConfig"] == config
    return check


SUFFIXES = [
    # (surface, name, model the upstream is asked for, check of the upstream body)
    ("openai", "anthropic/claude-sonnet-4.6-high", "claude-sonnet-4-6", anthropic_budget(4096)),
    ("anthropic", "anthropic/claude-sonnet-4.6-high", "claude-sonnet-4-6", anthropic_budget(4096)),
    ("openai", "anthropic/claude-sonnet-4.6-medium", "claude-sonnet-4-6", anthropic_budget(2048)),
    ("anthropic", "anthropic/claude-sonnet-4.6-low", "claude-sonnet-4-6", anthropic_budget(1280)),
    ("anthropic", "claude-sonnet-4-5-20250929-high", "claude-sonnet-4-5-20250929", anthropic_budget(4096)),
    ("openai", "thinker-low", "claude-sonnet-4-6", anthropic_budget(1280)),  # an alias takes a suffix too
    ("openai", "anthropic/claude-opus-4.6-high", "claude-opus-4-6",
     fields(thinking={"type": "adaptive"}, output_config={"effort": "high"})),
    ("openai", "openai/o4-mini-high", "o4-mini", fields(reasoning_effort="high")),
    ("anthropic", "openai/o4-mini-low", "o4-mini", fields(reasoning_effort="low")),
    ("openai", "grok/grok-3-mini-high", "grok-3-mini", fields(reasoning_effort="high")),
    ("openai", "google/gemini-2.5-flash-high", "gemini-2.5-flash",
     gemini({"includeThoughts": True, "thinkingBudget": 16384})),
    ("openai", "google/gemini-3-pro-preview-high", "gemini-3-pro-preview",
     gemini({"includeThoughts": True, "thinkingLevel": "HIGH"})),
    ("openai", "qwen/qwen3-max-high", "qwen3-max", fields(enable_thinking=True)),
    ("openai", "deepseek/deepseek-flash-high", "deepseek-flash",
     fields(thinking={"type": "enabled"}, reasoning_effort="high")),
    ("openai", "kimi/kimi-k2.6-high", "kimi-k2.6", fields(thinking={"type": "enabled"})),
]


@pytest.mark.parametrize(("surface", "name", "upstream", "check"), SUFFIXES,
                         ids=[f"{s}-{n}" for s, n, _, _ in SUFFIXES])
def test_an_effort_suffix_becomes_the_providers_reasoning_field(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str, name: str, upstream: str,
    check: Callable[[dict[str, Any]], None],
) -> None:
    answer = ask(clients[surface], name)

    assert answer.status == 200, answer.body
    assert upstream_calls(fake) == [(None, upstream)]
    check(received(fake))
    assert_opaque(answer.headers, answer.body, fake)


def test_deepseek_names_set_its_thinking_switch(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    """deepseek-chat is deepseek-flash with thinking switched off; the reasoner thinks by design, so an effort
    suffix is accepted and changes nothing (advanced__reasoning.md: "reasoning_effort is a no-op")."""
    assert ask(clients["openai"], "deepseek/deepseek-chat").status == 200
    body = received(fake)
    assert (body["model"], body["thinking"]) == ("deepseek-flash", {"type": "disabled"})
    fake.clear()
    assert ask(clients["openai"], "deepseek/deepseek-reasoner-high").status == 200
    body = received(fake)
    assert body["model"] == "deepseek-flash" and not {"thinking", "reasoning_effort"} & set(body)


def test_without_a_suffix_no_reasoning_field_is_sent(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    assert ask(clients["openai"], "anthropic/claude-sonnet-4.6").status == 200
    assert "thinking" not in received(fake)
    fake.clear()
    assert ask(clients["openai"], "openai/o4-mini").status == 200
    assert "reasoning_effort" not in received(fake)


def test_the_suffix_overrides_the_bodys_effort(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    oai: openai.OpenAI = clients["openai"]
    oai.chat.completions.create(model="openai/o4-mini-high", messages=[{"role": "user", "content": "hi"}],
                                reasoning_effort="low")
    assert received(fake)["reasoning_effort"] == "high"


@pytest.mark.parametrize("surface", ["openai", "anthropic"])
@pytest.mark.parametrize("name", ["openai/gpt-4o-mini-high", "gpt-4o-mini-low", "fast-high"])
def test_a_suffix_on_a_model_without_reasoning_is_a_clear_error(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str, name: str
) -> None:
    answer = ask(clients[surface], name)
    assert answer.status == 503
    assert answer.error is not None and answer.error["code"] == "model_not_found"
    message = answer.error["message"]
    assert name in message and "openai/gpt-4o-mini" in message and "reasoning" in message
    assert fake.requests() == []
