"""Fallback chains against the real gateway process (routing__model-fallbacks.md): the first entries fail in each
fault mode and the next serves, within one request, with the X-Clear-Fallback-* headers saying which; the call is
billed at the model that served it; a stream falls back only before its first byte.

Each provider sits behind the fake upstream's fault switch of its own name, so a test fails exactly the chain
entries it means to, whatever the prompt says.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from clearmaas.billing.money import format_usd
from tests.e2e.cases import ANSWER_TOKENS, input_tokens
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, create_key, gateway
from tests.e2e.routing_support import (
    Answer,
    ask,
    assert_opaque,
    catalogue_of,
    clear_switches,
    cost_of,
    exported,
    set_switch,
    switched_config,
    upstream_calls,
    usage_record,
)
from tests.fakes.scenarios import ANSWER_TEXT

FIRST, SECOND = "openai/gpt-4o-mini", "anthropic/claude-haiku-4.5"
FIRST_UP, SECOND_UP = ("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5-20251001")
CHAIN = {"models": [FIRST, SECOND], "route": "fallback"}
# Seven entries on seven providers; only the first five may ever be tried.
LONG = [
    ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("anthropic/claude-haiku-4.5", "anthropic", "claude-haiku-4-5-20251001"),
    ("google/gemini-2.5-flash", "google", "gemini-2.5-flash"),
    ("deepseek/deepseek-chat", "deepseek", "deepseek-flash"),
    ("grok/grok-4-fast-reasoning", "grok", "grok-4-fast-reasoning"),
    ("qwen/qwen3-max", "qwen", "qwen3-max"),
    ("kimi/kimi-k2.6", "kimi", "kimi-k2.6"),
]
FAULTS = ["500", "503", "429", "timeout:5", "reset", "drop"]  # drop: a body cut halfway
SURFACES = ["openai", "anthropic"]


@pytest.fixture(scope="module")
def config(fake: FakeUpstreamProcess) -> dict[str, Any]:
    return switched_config(fake.url)


@pytest.fixture(scope="module")
def rgw(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway(config, tmp_path_factory.mktemp("routing")) as server:
        done = server.cli("routers", "create", "e2e", "off", "--disabled")
        assert done.returncode == 0, done.stderr
        yield server


@pytest.fixture(scope="module")
def clients(rgw: GatewayProcess) -> Iterator[dict[str, Any]]:
    with (
        openai.OpenAI(base_url=f"{rgw.url}/v1", api_key=rgw.api_key, max_retries=0, timeout=20) as oai,
        anthropic.Anthropic(base_url=rgw.url, api_key=rgw.api_key, max_retries=0, timeout=20) as ant,
    ):
        yield {"openai": oai, "anthropic": ant}


@pytest.fixture(autouse=True)
def _switches_off(fake: FakeUpstreamProcess) -> Iterator[None]:
    clear_switches(fake)
    yield
    clear_switches(fake)
    # The breaker forgets in 50 ms (switched_config): the next test's chain is tried in its own order.
    time.sleep(0.06)


def check_served_by_second(answer: Answer, fake: FakeUpstreamProcess) -> None:
    assert answer.status == 200, answer.body
    assert answer.routing == {"x-clear-fallback-level": "1", "x-clear-fallback-model": SECOND}
    assert answer.text == ANSWER_TEXT
    assert upstream_calls(fake) == [FIRST_UP, SECOND_UP]
    # The routing fields are the gateway's own: no provider is sent them.
    assert all(not {"models", "route"} & set(r["body"]) for r in fake.requests())
    assert_opaque(answer.headers, answer.body, fake)


# --- chains whose first entry fails ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("surface", SURFACES)
def test_the_second_entry_serves_when_the_first_fails(
    clients: dict[str, Any], rgw: GatewayProcess, fake: FakeUpstreamProcess, config: dict[str, Any],
    surface: str, fault: str,
) -> None:
    set_switch(fake, "openai", fault)
    answer = ask(clients[surface], FIRST, extra=CHAIN)

    check_served_by_second(answer, fake)
    record = usage_record(rgw, answer.request_id)
    assert (record["requested_model"], record["served_model"], record["fallback_level"]) == (FIRST, SECOND, 1)
    assert (record["status"], record["router"]) == (200, None)
    # Billed at the serving model's rate, not the primary's.
    entry = catalogue_of(config).get(SECOND)
    assert entry is not None
    assert record["cost_micros"] == cost_of(entry, input_tokens=input_tokens("hello"), output_tokens=ANSWER_TOKENS)


def test_the_usage_export_names_the_model_that_served(
    clients: dict[str, Any], rgw: GatewayProcess, fake: FakeUpstreamProcess, config: dict[str, Any]
) -> None:
    set_switch(fake, "openai", "503")
    answer = ask(clients["openai"], FIRST, extra=CHAIN)
    check_served_by_second(answer, fake)
    usage_record(rgw, answer.request_id)  # written

    line = exported(rgw, [answer.request_id])[answer.request_id]
    assert (line["model"], line["served_model"], line["fallback_level"]) == (SECOND, SECOND, 1)
    entry = catalogue_of(config).get(SECOND)
    assert entry is not None
    cost = cost_of(entry, input_tokens=input_tokens("hello"), output_tokens=ANSWER_TOKENS)
    assert line["cost_usd"] == format_usd(cost)


@pytest.mark.parametrize("surface", SURFACES)
def test_level_zero_when_the_first_entry_serves(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str
) -> None:
    answer = ask(clients[surface], FIRST, extra=CHAIN)
    assert answer.status == 200
    assert answer.routing == {"x-clear-fallback-level": "0"}
    assert upstream_calls(fake) == [FIRST_UP]


def test_the_chain_replaces_the_model_field(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    answer = ask(clients["openai"], "kimi/kimi-k2.6", extra=CHAIN)
    assert answer.status == 200
    assert answer.routing == {"x-clear-fallback-level": "0"}
    assert upstream_calls(fake) == [FIRST_UP]


@pytest.mark.parametrize("surface", SURFACES)
def test_every_entry_failing_is_a_502_upstream_error(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str
) -> None:
    set_switch(fake, "openai", "500")
    set_switch(fake, "anthropic", "429")
    answer = ask(clients[surface], FIRST, extra=CHAIN)

    assert answer.status == 502
    assert answer.error is not None
    assert (answer.error["type"], answer.error["code"]) == ("upstream_error", "upstream_error")
    assert upstream_calls(fake) == [FIRST_UP, SECOND_UP]  # each tried once
    assert not answer.routing
    assert_opaque(answer.headers, answer.body, fake)


@pytest.mark.parametrize("surface", SURFACES)
def test_a_400_from_the_first_entry_does_not_fall_back(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str
) -> None:
    set_switch(fake, "openai", "400")
    answer = ask(clients[surface], FIRST, extra=CHAIN)

    assert answer.status == 400
    assert upstream_calls(fake) == [FIRST_UP]  # the request is at fault: another model would refuse it too
    assert "x-clear-fallback-model" not in answer.headers
    assert_opaque(answer.headers, answer.body, fake)


@pytest.mark.parametrize("surface", SURFACES)
def test_a_400_from_a_fallback_is_the_answer_not_a_502(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str
) -> None:
    set_switch(fake, "openai", "500")
    set_switch(fake, "anthropic", "400")
    answer = ask(clients[surface], FIRST, extra=CHAIN)

    assert answer.status == 400, answer.body  # the request's own fault: an SDK must not retry it as a 502
    assert answer.error is not None and answer.error["type"] != "upstream_error"
    assert upstream_calls(fake) == [FIRST_UP, SECOND_UP]


def test_a_chain_longer_than_five_is_cut_to_five(
    clients: dict[str, Any], fake: FakeUpstreamProcess, rgw: GatewayProcess
) -> None:
    chain = {"models": [model for model, _, _ in LONG], "route": "fallback"}
    for _, provider, _ in LONG[:5]:
        set_switch(fake, provider, "500")
    answer = ask(clients["openai"], LONG[0][0], extra=chain)
    assert answer.status == 502
    assert upstream_calls(fake) == [(p, m) for _, p, m in LONG[:5]]  # the sixth, healthy, is never tried

    time.sleep(0.06)  # the five breakers close again
    fake.clear()
    set_switch(fake, LONG[4][1], None)
    body = {"model": LONG[0][0], "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}], **chain}
    # Raw HTTP this time: the chain fields sit in the Messages body beside `model`.
    response = httpx2.post(f"{rgw.url}/v1/messages", json=body, timeout=20,
                           headers={"x-api-key": rgw.api_key, "anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    assert response.headers["x-clear-fallback-level"] == "4"
    assert response.headers["x-clear-fallback-model"] == LONG[4][0]
    assert upstream_calls(fake) == [(p, m) for _, p, m in LONG[:5]]
    assert response.json()["content"][0]["text"] == ANSWER_TEXT


@pytest.fixture(scope="module")
def narrow_key(rgw: GatewayProcess) -> str:
    """A key that may use Anthropic and Google models only."""
    _, key = create_key(rgw.config_path, rgw.env, "--workspace", "e2e", "--name", "narrow",
                        "--models", "anthropic/*,google/*")
    return key


def test_entries_that_cannot_be_used_are_skipped(
    rgw: GatewayProcess, fake: FakeUpstreamProcess, narrow_key: str
) -> None:
    """Not allowed for the key, unknown, a disabled router, a missing router: skipped; the level stays the served
    entry's position in the chain as sent."""
    chain = ["openai/gpt-4o-mini", "nobody/nothing", "clearmaas/off", "clearmaas/missing", SECOND]
    with openai.OpenAI(base_url=f"{rgw.url}/v1", api_key=narrow_key, max_retries=0, timeout=20) as client:
        wait_for_router(client, "off")
        fake.clear()
        answer = ask(client, "openai/gpt-4o-mini", extra={"models": chain, "route": "fallback"})

    assert answer.status == 200, answer.body
    assert answer.routing == {"x-clear-fallback-level": "4", "x-clear-fallback-model": SECOND}
    assert upstream_calls(fake) == [SECOND_UP]


def test_a_chain_with_no_usable_entry_is_refused_clearly(
    rgw: GatewayProcess, fake: FakeUpstreamProcess, narrow_key: str
) -> None:
    chain = ["openai/gpt-4o-mini", "nobody/nothing"]
    with openai.OpenAI(base_url=f"{rgw.url}/v1", api_key=narrow_key, max_retries=0, timeout=20) as client:
        answer = ask(client, "openai/gpt-4o-mini", extra={"models": chain, "route": "fallback"})
    assert answer.status == 403
    assert answer.error is not None and "openai/gpt-4o-mini" in answer.error["message"]
    assert fake.requests() == []


def wait_for_router(client: openai.OpenAI, name: str) -> None:
    """Until the gateway's router cache has the router created at startup (it refreshes every 0.2 s here)."""
    deadline = time.monotonic() + 5
    while True:
        answer = ask(client, f"clearmaas/{name}")
        if answer.error is None or "no router" not in answer.error["message"]:
            return
        assert time.monotonic() < deadline, answer.error
        time.sleep(0.1)


@pytest.mark.parametrize("extra", [
    {"models": [SECOND], "route": "sort"},
    {"models": [SECOND]},
    {"models": [SECOND], "route": "Fallback"},
    {"models": [], "route": "fallback"},
], ids=["other-route", "no-route", "route-case", "empty-chain"])
def test_without_route_fallback_the_chain_is_ignored(
    clients: dict[str, Any], fake: FakeUpstreamProcess, extra: dict[str, Any]
) -> None:
    set_switch(fake, "openai", "500")
    answer = ask(clients["openai"], FIRST, extra=extra)
    assert answer.status == 502
    assert upstream_calls(fake) == [FIRST_UP]
    assert not answer.routing


def test_malformed_chain_fields_name_the_field(clients: dict[str, Any], fake: FakeUpstreamProcess) -> None:
    for extra, field in (({"models": FIRST, "route": "fallback"}, "models"), ({"models": [FIRST], "route": 1}, "route"),
                         ({"models": [FIRST, 7], "route": "fallback"}, "models")):
        answer = ask(clients["openai"], FIRST, extra=extra)
        assert answer.status == 400, extra
        assert answer.error is not None and field in answer.error["message"]
    assert fake.requests() == []


# --- streams -------------------------------------------------------------------------------------------------


# `drop:0`: the upstream's 200 headers arrive, then the connection closes before its first event.
@pytest.mark.parametrize("fault", ["500", "429", "reset", "timeout:5", "drop:0"])
@pytest.mark.parametrize("surface", SURFACES)
def test_a_stream_failing_before_its_first_byte_falls_back(
    clients: dict[str, Any], rgw: GatewayProcess, fake: FakeUpstreamProcess, surface: str, fault: str
) -> None:
    set_switch(fake, "openai", fault)
    answer = ask(clients[surface], FIRST, extra=CHAIN, stream=True)

    assert answer.in_band is None
    check_served_by_second(answer, fake)  # the second model's whole stream
    record = usage_record(rgw, answer.request_id)
    assert (record["served_model"], record["fallback_level"], record["stream"]) == (SECOND, 1, 1)
    assert record["output_tokens"] == ANSWER_TOKENS


@pytest.mark.parametrize("fault", ["drop", "stream_error"])
@pytest.mark.parametrize("surface", SURFACES)
def test_a_stream_failing_after_its_first_byte_does_not_fall_back(
    clients: dict[str, Any], fake: FakeUpstreamProcess, surface: str, fault: str
) -> None:
    set_switch(fake, "openai", fault)
    answer = ask(clients[surface], FIRST, extra=CHAIN, stream=True)

    assert answer.status == 200
    assert answer.routing == {"x-clear-fallback-level": "0"}  # the first entry had started to answer
    assert isinstance(answer.in_band, openai.APIError | anthropic.APIError)  # the in-band error event
    assert answer.text != ANSWER_TEXT and ANSWER_TEXT.startswith(answer.text)
    assert upstream_calls(fake) == [FIRST_UP]  # no second model behind a truncated stream
    assert_opaque(answer.headers, str(answer.in_band), fake)
