"""A provider's deployments against the real gateway process: weighted balancing, a retry on the next deployment
within one request, the circuit breaker (a failing deployment cools down and gets no traffic, is probed when the
cooldown ends, and serves again once healthy), and a cooling provider tried after the live ones of a chain.

Each deployment is a base URL behind its own fault switch of the fake upstream (or a closed port), so a test fails
one deployment while the other stays healthy, and reads from the fake's record which one each request reached.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.e2e.books import burst
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, free_port, gateway
from tests.e2e.routing_support import (
    FAST_TIMEOUTS,
    ask,
    clear_switches,
    set_switch,
    switched,
    switched_config,
    upstream_calls,
)
from tests.fakes import FAKE_KEYS
from tests.fakes.scenarios import ANSWER_TEXT

COOLDOWN = 1.0  # seconds; long enough to send a few requests inside it on a loaded machine
BALANCED = 120  # requests of the balancing test
# grok: two healthy deployments weighted 3:1. openai: `dep-a` (weight 3) fails on demand, `dep-b` stays healthy.
# anthropic: one deployment on a port nobody listens on, one healthy.
A, B = ("dep-a", "gpt-4o-mini"), ("dep-b", "gpt-4o-mini")


def deployments(fake_url: str, provider: str, *specs: tuple[str | None, int]) -> list[dict[str, Any]]:
    """One deployment per (switch, weight); a None switch is a closed local port (connection refused)."""
    found = []
    for i, (switch, weight) in enumerate(specs):
        base = switched(fake_url, switch, provider) if switch else f"http://127.0.0.1:{free_port()}/v1"
        found.append({"name": switch or f"closed-{i}", "base_url": base, "api_key": FAKE_KEYS[provider],
                      "weight": weight})
    return found


@pytest.fixture(scope="module")
def dgw(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = switched_config(
        fake.url, routing={"retries": 1, "backoff": 0, "cooldown": COOLDOWN, "cooldown_max": COOLDOWN}
    )
    providers = config["providers"]
    for provider, specs in (
        ("grok", (("heavy", 3), ("light", 1))),
        ("openai", (("dep-a", 3), ("dep-b", 1))),
        ("anthropic", ((None, 1), ("dep-c", 1))),
    ):
        providers[provider] = {"deployments": deployments(fake.url, provider, *specs), "timeouts": FAST_TIMEOUTS}
    with gateway(config, tmp_path_factory.mktemp("deployments")) as server:
        yield server


@pytest.fixture(scope="module")
def oai(dgw: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{dgw.url}/v1", api_key=dgw.api_key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture(autouse=True)
def _switches_off(fake: FakeUpstreamProcess) -> Iterator[None]:
    clear_switches(fake)
    yield
    clear_switches(fake)


def test_traffic_is_shared_by_weight(dgw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    body = orjson.dumps({"model": "grok/grok-3-mini", "messages": [{"role": "user", "content": "hi"}]})
    replies = burst([dgw.url], dgw.api_key, body, count=BALANCED)

    assert {r.status for r in replies} == {200}
    counts = Counter(switch for switch, _ in upstream_calls(fake))
    assert sum(counts.values()) == BALANCED  # one upstream call per request
    # Weights 3:1, so `heavy` expects 90 of 120 and `light` 30 (standard deviation 4.7); the bounds are about
    # 4.5 deviations out, so a wrong share (1:1 would give 60) fails and chance practically never does.
    assert set(counts) == {"heavy", "light"}
    assert 69 <= counts["heavy"] <= 111, counts


def served(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> tuple[list[tuple[str | None, str]], float]:
    """One successful call of openai/gpt-4o-mini: the (switch, model) calls it made upstream, and when it ended."""
    fake.clear()
    answer = ask(oai, "openai/gpt-4o-mini")
    ended = time.monotonic()
    assert answer.status == 200 and answer.text == ANSWER_TEXT, answer.body
    assert answer.routing == {}  # a retry on another deployment is not a fallback to another model
    return upstream_calls(fake), ended


def test_a_failing_deployment_is_retried_on_the_other_cools_down_and_recovers(
    oai: openai.OpenAI, fake: FakeUpstreamProcess
) -> None:
    set_switch(fake, "dep-a", "500")

    # 1. The first request that reaches dep-a is served by dep-b within the same request.
    for _ in range(30):
        sent = time.monotonic()
        calls, tripped = served(oai, fake)
        if calls[0] == A:
            break
        assert calls == [B]
    else:
        pytest.fail("dep-a, weighted 3 to 1, was never picked")
    assert calls == [A, B]

    # 2. Its cooldown began between `sent` and `tripped`: a request that ends before `sent + COOLDOWN` was routed
    # while it lasted, and must not have reached dep-a.
    inside = 0
    while time.monotonic() < sent + COOLDOWN - 0.1:
        calls, ended = served(oai, fake)
        if ended < sent + COOLDOWN:
            inside += 1
            assert calls == [B]
    assert inside >= 3

    # 3. Once it is over, dep-a is probed (tried first); still failing, the request is retried on dep-b, and the
    # breaker opens again.
    time.sleep(max(0.0, tripped + COOLDOWN + 0.1 - time.monotonic()))
    reopened = time.monotonic()
    calls, probed = served(oai, fake)
    assert calls == [A, B]
    calls, ended = served(oai, fake)
    if ended < reopened + COOLDOWN:
        assert calls == [B]

    # 4. Healthy again: the next probe closes the breaker, and dep-a takes its share of the traffic again.
    set_switch(fake, "dep-a", None)
    time.sleep(max(0.0, probed + COOLDOWN + 0.1 - time.monotonic()))
    calls, _ = served(oai, fake)
    assert calls == [A]  # the probe
    reached = Counter(served(oai, fake)[0][0][0] for _ in range(20))
    assert reached["dep-a"] >= 5, reached


def test_a_deployment_that_refuses_connections_is_routed_around(
    dgw: GatewayProcess, fake: FakeUpstreamProcess
) -> None:
    body = orjson.dumps({"model": "anthropic/claude-haiku-4.5", "max_tokens": 32,
                         "messages": [{"role": "user", "content": "hi"}]})
    for _ in range(8):
        reply = burst([dgw.url], dgw.api_key, body, count=1, path="/v1/messages")[0]
        assert reply.status == 200, reply.body
        assert reply.body["content"][0]["text"] == ANSWER_TEXT
    assert upstream_calls(fake) == [("dep-c", "claude-haiku-4-5-20251001")] * 8


def test_every_deployment_failing_is_a_502_after_trying_each(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    set_switch(fake, "heavy", "503")
    set_switch(fake, "light", "503")
    answer = ask(oai, "grok/grok-3-mini")
    assert answer.status == 502
    assert answer.error is not None and answer.error["type"] == "upstream_error"
    assert sorted(upstream_calls(fake)) == [("heavy", "grok-3-mini"), ("light", "grok-3-mini")]


def test_a_cooling_provider_is_tried_after_the_live_ones(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    chain = {"models": ["kimi/kimi-k2.6", "qwen/qwen3-max"], "route": "fallback"}
    set_switch(fake, "kimi", "500")
    sent = time.monotonic()
    first = ask(oai, "kimi/kimi-k2.6", extra=chain)
    assert first.status == 200
    assert first.routing == {"x-clear-fallback-level": "1", "x-clear-fallback-model": "qwen/qwen3-max"}
    kimi = ("kimi", "kimi-k2.6")
    assert upstream_calls(fake) == [kimi, kimi, ("qwen", "qwen3-max")]  # its one deployment, retried once

    fake.clear()
    second = ask(oai, "kimi/kimi-k2.6", extra=chain)
    if time.monotonic() < sent + COOLDOWN:
        # Still cooling: the chain's second entry is tried first, and keeps its level.
        assert second.routing == first.routing
        assert upstream_calls(fake) == [("qwen", "qwen3-max")]

    set_switch(fake, "kimi", None)
    time.sleep(max(0.0, sent + COOLDOWN + 0.1 - time.monotonic()))
    fake.clear()
    third = ask(oai, "kimi/kimi-k2.6", extra=chain)
    assert third.routing == {"x-clear-fallback-level": "0"}
    assert upstream_calls(fake) == [kimi]
