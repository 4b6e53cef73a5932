"""Named routers against the real gateway process (routing__named-routers.md, routing__auto-router.md):
`clearmaas/auto` with no setup, a workspace router per strategy over a price table the config sets, the default
model safety net, disabled and empty routers, and a router routing around its failing first pick — each checked in
the X-Clear-Router / X-Clear-Resolved-Model headers and in what the fake upstream was asked for.

The expected picks are computed here from the catalogue entries with the formulas of the strategies' definition,
written out again, so the gateway is compared against the rule rather than against itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import openai
import pytest

from clearmaas.catalogue.entry import ModelEntry
from clearmaas.routing import create_router
from clearmaas.store.database import create_engine_for
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, create_key, gateway
from tests.e2e.routing_support import (
    ask,
    assert_opaque,
    catalogue_of,
    clear_switches,
    set_switch,
    switched_config,
    upstream_calls,
    usage_record,
)
from tests.fakes.scenarios import ANSWER_TEXT

# Four models whose prices and quality the config sets, so that each strategy has a different winner:
# cheapest -> gpt-4o-mini, quality -> gemini-2.5-flash, balanced -> claude-haiku-4.5. gpt-4o-mini is also the
# cheapest model of the whole catalogue (the harness's `local` model costs 0.10 + 0.20).
PRICE_TABLE: list[dict[str, Any]] = [
    {"id": "openai/gpt-4o-mini", "quality": 40, "prices": {"input": "0.10", "output": "0.10"}},
    {"id": "anthropic/claude-haiku-4.5", "quality": 70, "prices": {"input": "1.00", "output": "1.00"}},
    {"id": "google/gemini-2.5-flash", "quality": 95, "prices": {"input": "10", "output": "10"}},
    {"id": "deepseek/deepseek-chat", "quality": 50, "prices": {"input": "0.50", "output": "0.50"}},
]
TABLE_IDS = [item["id"] for item in PRICE_TABLE]
UPSTREAM = {
    "openai/gpt-4o-mini": ("openai", "gpt-4o-mini"),
    "anthropic/claude-haiku-4.5": ("anthropic", "claude-haiku-4-5-20251001"),
    "google/gemini-2.5-flash": ("google", "gemini-2.5-flash"),
    "deepseek/deepseek-chat": ("deepseek", "deepseek-flash"),
}
STRATEGY_ROUTERS = {"cheapest": "cheap", "quality": "best", "balanced": "mix"}
EXPECTED = {"cheapest": "openai/gpt-4o-mini", "quality": "google/gemini-2.5-flash",
            "balanced": "anthropic/claude-haiku-4.5"}


# --- the strategies' definition, written out again -------------------------------------------------------------


def blended(entry: ModelEntry) -> int:
    assert entry.prices is not None
    return entry.prices.input + entry.prices.output


def expected_order(entries: Sequence[ModelEntry], strategy: str) -> list[str]:
    """routing/strategies.py's docstring: cheapest = lowest input + output price (ties: higher quality, then id);
    quality = highest quality (ties: cheaper, then id); balanced = 0.5 x quality + 0.5 x cheapness, both scaled
    to 0..1 over the candidates, cheapness on a log(1 + price) scale (ties: cheaper, higher quality, id)."""
    priced = [e for e in entries if e.prices is not None]
    if strategy == "cheapest":
        return [e.id for e in sorted(priced, key=lambda e: (blended(e), -e.quality, e.id))]
    if strategy == "quality":
        return [e.id for e in sorted(priced, key=lambda e: (-e.quality, blended(e), e.id))]
    qualities = [e.quality for e in priced]
    costs = {e.id: math.log1p(blended(e)) for e in priced}
    q_low, q_high = min(qualities), max(qualities)
    c_low, c_high = min(costs.values()), max(costs.values())
    score = {}
    for e in priced:
        quality = (e.quality - q_low) / (q_high - q_low) if q_high > q_low else 1.0
        cheapness = (c_high - costs[e.id]) / (c_high - c_low) if c_high > c_low else 1.0
        score[e.id] = 0.5 * quality + 0.5 * cheapness
    return [e.id for e in sorted(priced, key=lambda e: (-round(score[e.id], 9), blended(e), -e.quality, e.id))]


# --- servers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config(fake: FakeUpstreamProcess) -> dict[str, Any]:
    return switched_config(fake.url, models=PRICE_TABLE)


@pytest.fixture(scope="module")
def entries(config: dict[str, Any]) -> dict[str, ModelEntry]:
    catalogue = catalogue_of(config)
    return {e.id: e for e in catalogue if e.prices is not None and "responses_only" not in e.capabilities}


# Made with the CLI, as an operator would (each run is a Python start, so the rest go through the same library
# functions the CLI calls, in-process).
CLI_ROUTERS: list[tuple[str, ...]] = [
    ("routers", "create", "e2e", "off", "--models", "openai/*", "--disabled"),
    ("routers", "create", "e2e", "net", "--models", "nothing/*", "--default-model", "anthropic/claude-haiku-4.5"),
]
LIBRARY_ROUTERS: list[dict[str, Any]] = [
    *({"name": name, "patterns": TABLE_IDS, "strategy": strategy} for strategy, name in STRATEGY_ROUTERS.items()),
    {"name": "empty", "patterns": "nothing/*, nobody/*"},
    {"name": "swap", "patterns": TABLE_IDS, "strategy": "cheapest"},
]


@pytest.fixture(scope="module")
def rgw(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway(config, tmp_path_factory.mktemp("routers")) as server:
        for command in CLI_ROUTERS:
            done = server.cli(*command)
            assert done.returncode == 0, done.stderr
        engine = create_engine_for(f"sqlite:///{server.data_dir / 'clearmaas.db'}")
        for router in LIBRARY_ROUTERS:
            create_router(engine, "e2e", **router)
        engine.dispose()
        yield server


@pytest.fixture(scope="module")
def oai(rgw: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{rgw.url}/v1", api_key=rgw.api_key, max_retries=0, timeout=20) as client:
        deadline = time.monotonic() + 5
        # The routers were created after the gateway started: wait for its router cache (0.2 s refresh here).
        while (answer := ask(client, "clearmaas/swap")).status != 200:
            assert time.monotonic() < deadline, answer.body
            time.sleep(0.1)
        yield client


@pytest.fixture(scope="module")
def ant(rgw: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=rgw.url, api_key=rgw.api_key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture(autouse=True)
def _switches_off(fake: FakeUpstreamProcess) -> Iterator[None]:
    clear_switches(fake)
    yield
    clear_switches(fake)
    time.sleep(0.06)  # the breaker forgets (50 ms): a provider failed on purpose is live again for the next test


# --- tests ---------------------------------------------------------------------------------------------------


def test_the_price_table_gives_each_strategy_its_own_winner(entries: dict[str, ModelEntry]) -> None:
    table = [entries[i] for i in TABLE_IDS]
    assert {s: expected_order(table, s)[0] for s in EXPECTED} == EXPECTED
    assert expected_order(list(entries.values()), "cheapest")[0] == "openai/gpt-4o-mini"


@pytest.mark.parametrize("surface", ["openai", "anthropic"])
def test_auto_needs_no_setup_and_picks_the_cheapest_model(
    oai: openai.OpenAI, ant: anthropic.Anthropic, rgw: GatewayProcess, fake: FakeUpstreamProcess,
    entries: dict[str, ModelEntry], surface: str,
) -> None:
    winner = expected_order(list(entries.values()), "cheapest")[0]
    answer = ask(oai if surface == "openai" else ant, "clearmaas/auto")

    assert answer.status == 200, answer.body
    assert answer.routing == {"x-clear-router": "auto", "x-clear-resolved-model": winner}
    assert upstream_calls(fake) == [UPSTREAM[winner]]
    assert answer.text == ANSWER_TEXT
    assert_opaque(answer.headers, answer.body, fake)
    record = usage_record(rgw, answer.request_id)
    assert (record["requested_model"], record["served_model"], record["router"]) == ("clearmaas/auto", winner, "auto")
    assert record["fallback_level"] is None


def test_auto_picks_among_the_models_the_key_may_use(
    rgw: GatewayProcess, fake: FakeUpstreamProcess, entries: dict[str, ModelEntry]
) -> None:
    _, key = create_key(rgw.config_path, rgw.env, "--workspace", "e2e", "--name", "claude-only",
                        "--models", "anthropic/*")
    winner = expected_order([e for e in entries.values() if e.provider == "anthropic"], "cheapest")[0]
    assert winner == "anthropic/claude-haiku-4.5"
    with openai.OpenAI(base_url=f"{rgw.url}/v1", api_key=key, max_retries=0, timeout=20) as client:
        answer = ask(client, "clearmaas/auto")
    assert answer.routing == {"x-clear-router": "auto", "x-clear-resolved-model": winner}
    assert upstream_calls(fake) == [UPSTREAM[winner]]


@pytest.mark.parametrize("strategy", list(STRATEGY_ROUTERS))
def test_each_strategy_picks_by_its_rule(
    oai: openai.OpenAI, fake: FakeUpstreamProcess, entries: dict[str, ModelEntry], strategy: str
) -> None:
    router = STRATEGY_ROUTERS[strategy]
    winner = expected_order([entries[i] for i in TABLE_IDS], strategy)[0]
    answer = ask(oai, f"clearmaas/{router}")

    assert answer.status == 200, answer.body
    assert answer.routing == {"x-clear-router": router, "x-clear-resolved-model": winner}
    assert upstream_calls(fake) == [UPSTREAM[winner]]
    assert_opaque(answer.headers, answer.body, fake)


@pytest.mark.parametrize("fault", ["503", "timeout:5"])
def test_a_router_routes_around_its_failing_pick_within_one_request(
    oai: openai.OpenAI, fake: FakeUpstreamProcess, entries: dict[str, ModelEntry], fault: str
) -> None:
    first, second = expected_order([entries[i] for i in TABLE_IDS], "cheapest")[:2]
    set_switch(fake, UPSTREAM[first][0], fault)
    answer = ask(oai, "clearmaas/cheap", stream=True)

    assert answer.status == 200 and answer.in_band is None
    assert answer.text == ANSWER_TEXT
    assert answer.routing == {"x-clear-router": "cheap", "x-clear-resolved-model": second}
    assert upstream_calls(fake) == [UPSTREAM[first], UPSTREAM[second]]


def test_a_disabled_router_is_a_clear_error(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    answer = ask(oai, "clearmaas/off")
    assert answer.status == 503
    assert answer.error is not None and answer.error["code"] == "model_not_found"
    assert "clearmaas/off" in answer.error["message"] and "disabled" in answer.error["message"]
    assert fake.requests() == []


def test_a_router_matching_nothing_is_a_clear_error(ant: anthropic.Anthropic, fake: FakeUpstreamProcess) -> None:
    answer = ask(ant, "clearmaas/empty")
    assert answer.status == 503
    assert answer.error is not None and answer.error["code"] == "model_not_found"
    assert "clearmaas/empty" in answer.error["message"] and "nothing/*" in answer.error["message"]
    assert fake.requests() == []


def test_a_missing_router_is_a_clear_error(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    answer = ask(oai, "clearmaas/ghost")
    assert answer.status == 503
    assert answer.error is not None and "clearmaas/ghost" in answer.error["message"]
    assert fake.requests() == []


def test_the_default_model_is_the_safety_net(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    answer = ask(oai, "clearmaas/net")
    assert answer.status == 200, answer.body
    assert answer.routing == {"x-clear-router": "net", "x-clear-resolved-model": "anthropic/claude-haiku-4.5"}
    assert upstream_calls(fake) == [UPSTREAM["anthropic/claude-haiku-4.5"]]


def test_a_router_changed_at_runtime_routes_the_new_way(
    oai: openai.OpenAI, rgw: GatewayProcess, fake: FakeUpstreamProcess
) -> None:
    assert ask(oai, "clearmaas/swap").routing["x-clear-resolved-model"] == EXPECTED["cheapest"]
    done = rgw.cli("routers", "update", "e2e", "swap", "--strategy", "quality")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 5
    while (answer := ask(oai, "clearmaas/swap")).routing["x-clear-resolved-model"] != EXPECTED["quality"]:
        assert time.monotonic() < deadline, answer.routing
        time.sleep(0.1)
    fake.clear()
    assert ask(oai, "clearmaas/swap").status == 200
    assert upstream_calls(fake) == [UPSTREAM[EXPECTED["quality"]]]


def test_a_router_in_a_chain_reports_both_router_and_level(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    set_switch(fake, "kimi", "500")
    answer = ask(oai, "kimi/kimi-k2.6", extra={"models": ["kimi/kimi-k2.6", "clearmaas/best"], "route": "fallback"})
    assert answer.status == 200, answer.body
    assert answer.routing == {
        "x-clear-fallback-level": "1", "x-clear-fallback-model": EXPECTED["quality"],
        "x-clear-router": "best", "x-clear-resolved-model": EXPECTED["quality"],
    }
    assert upstream_calls(fake) == [("kimi", "kimi-k2.6"), UPSTREAM[EXPECTED["quality"]]]
