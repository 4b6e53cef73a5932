"""The money path through one real gateway process on SQLite: a burst of 200 concurrent requests against credit
that covers about 20 never serves more than the credit covers and leaves an exact ledger, and a stream that ends
early (the client hangs up, or the upstream drops) is settled for what the gateway saw and frees its reservation.

Every check ends with `clearmaas billing reconcile`, run the way an operator runs it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine

from clearmaas.billing.money import format_usd
from clearmaas.store.database import create_engine_for
from tests.e2e.books import (
    ANSWER_TOKENS,
    AT_LEAST,
    BOUND,
    BURST,
    BURST_BODY,
    COST,
    COVERED,
    CREDIT,
    auth,
    bound_micros,
    burst,
    chat_body,
    check_books,
    check_burst_replies,
    cost_micros,
    fake_input_tokens,
    hang_up_mid_stream,
    prices_of,
    read_books,
    spend_the_rest,
    usage_rows,
    wait_for_usage,
)
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, create_key, gateway, gateway_config


def test_the_burst_is_sized_so_the_credit_binds() -> None:
    assert COVERED == 20
    assert COST <= BOUND, "an overrunning bound could let spend pass the limit"
    # Spending the rest one request at a time then reaches exactly COVERED.
    assert CREDIT - (COVERED - 1) * COST >= BOUND > CREDIT - COVERED * COST
    assert AT_LEAST >= 15


@functools.cache
def _engine(url: str) -> Engine:
    return create_engine_for(url)


def sqlite_engine(gw: GatewayProcess) -> Engine:
    """An engine on the gateway's database, one per database for the whole session."""
    return _engine(f"sqlite:///{gw.data_dir / 'clearmaas.db'}")


def test_a_burst_never_spends_past_a_key_credit_limit(fake: FakeUpstreamProcess, tmp_path: Path) -> None:
    with gateway(gateway_config(fake.url, log_level="warning"), tmp_path) as gw:
        key_id, key = create_key(
            gw.config_path, gw.env, "--workspace", "e2e", "--name", "capped", "--credit-limit", format_usd(CREDIT)
        )
        replies = burst([gw.url], key, BURST_BODY, count=BURST)
        check_burst_replies(replies)
        replies += spend_the_rest([gw.url], key)
        served = check_books(replies, run_cli=gw.cli, engine=sqlite_engine(gw), key_id=key_id)
        # Spent one request at a time, the credit serves exactly what it covers (BOUND <= 1.5 COST).
        assert served == COVERED
        # The key is spent; the workspace behind it is not.
        assert burst([gw.url], gw.api_key, BURST_BODY, count=1)[0].status == 200


def test_a_burst_never_spends_past_the_workspace_balance(fake: FakeUpstreamProcess, tmp_path: Path) -> None:
    with gateway(gateway_config(fake.url, log_level="warning"), tmp_path, credit_usd=format_usd(CREDIT)) as gw:
        engine = sqlite_engine(gw)
        key_id = next(iter(read_books(engine).key_spent))
        replies = burst([gw.url], gw.api_key, BURST_BODY, count=BURST)
        check_burst_replies(replies)
        replies += spend_the_rest([gw.url], gw.api_key)
        served = check_books(replies, run_cli=gw.cli, engine=engine, key_id=key_id)
        assert served == COVERED
        assert read_books(engine).balance == CREDIT - COVERED * COST == COST // 2


# -- streams that end early -------------------------------------------------------------------------------

HAIKU = "anthropic/claude-haiku-4.5"
STREAM_MAX_TOKENS = 200
CHUNKS_BEFORE_HANGUP = 3


@dataclass(frozen=True)
class Route:
    """A client protocol (`path`, the gateway route) and the model behind it."""

    path: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.path.rsplit('/', 1)[-1]}-{self.model.split('/')[0]}"


ROUTES = [
    Route("/v1/messages", HAIKU),  # fast path: Anthropic reports input tokens in message_start
    Route("/v1/chat/completions", HAIKU),  # translated
    Route("/v1/chat/completions", "openai/gpt-4o-mini"),  # fast path: OpenAI reports usage only at the end
]


def early_usage(route: Route, prompt: str) -> tuple[int, int] | None:
    """(input, output) tokens the gateway has seen a few chunks into the stream: Anthropic's message_start
    carries the input and one output token; an OpenAI stream carries usage only in its last chunk."""
    if route.model.startswith("anthropic/"):
        return fake_input_tokens(prompt), 1
    return None


@pytest.fixture(scope="module")
def settle_gw(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway(gateway_config(fake.url, log_level="warning"), tmp_path_factory.mktemp("settle")) as gw:
        yield gw


def capped_key(gw: GatewayProcess, first: bytes, then: bytes, route: Route) -> tuple[str, str]:
    """A key whose credit fits `then` after `first` settles, but not while `first` is still reserved (for a
    charge up to half of `first`'s bound): serving `then` proves `first`'s reservation was released."""
    prices = prices_of(route.model)
    held = bound_micros(prices, body_bytes=len(first), max_tokens=STREAM_MAX_TOKENS)
    after = bound_micros(prices, body_bytes=len(then), max_tokens=STREAM_MAX_TOKENS)
    limit = after + held // 2
    return create_key(gw.config_path, gw.env, "--workspace", "e2e", "--credit-limit", format_usd(limit))


def wait_cancelled(fake: FakeUpstreamProcess, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        seen = fake.last()
        if seen.get("cancelled") or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def settle_then_prove_released(
    gw: GatewayProcess, route: Route, key_id: str, key: str, then: bytes, prompt: str, request_id: str
) -> dict[str, Any]:
    """The usage record of `request_id` once written, after checking its charge, the release of its
    reservation (a request needing that credit is served) and a clean reconciliation."""
    engine = sqlite_engine(gw)
    (row,) = wait_for_usage(engine, 1, request_id=request_id)
    usage = early_usage(route, prompt)
    # A stream cut short is billed for what passed: the provider's own counts where it sent them (Anthropic's
    # message_start: the input), the output estimated from the characters that reached the client.
    if usage is not None:
        assert row["input_tokens"] == usage[0]
        assert row["output_tokens"] >= usage[1]
    else:
        assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    assert row["cost_micros"] == cost_micros(
        prices_of(route.model), input_tokens=row["input_tokens"], output_tokens=row["output_tokens"]
    )
    books = read_books(engine)
    assert books.charges.get(request_id, 0) == row["cost_micros"]
    assert books.key_spent[key_id] == row["cost_micros"]

    with httpx2.Client(base_url=gw.url, timeout=20) as client:
        after = client.post(route.path, content=then, headers=auth(key))
    assert after.status_code == 200, after.text
    wait_for_usage(engine, 1, request_id=after.headers["x-request-id"])
    done = gw.cli("billing", "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    return row


@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_a_client_that_hangs_up_mid_stream_is_charged_what_was_seen(
    settle_gw: GatewayProcess, fake: FakeUpstreamProcess, route: Route
) -> None:
    prompt = "[scenario:slow:300] Tell me a story"  # about 4 s of answer if nobody hangs up
    body = chat_body(route.model, prompt, max_tokens=STREAM_MAX_TOKENS, stream=True)
    then = chat_body(route.model, "Hello", max_tokens=STREAM_MAX_TOKENS)
    key_id, key = capped_key(settle_gw, body, then, route)

    def refused_while_reserved() -> None:
        # The key's credit is sized so that this fails while the stream holds its reservation.
        with httpx2.Client(base_url=settle_gw.url, timeout=20) as client:
            meanwhile = client.post(route.path, content=then, headers=auth(key))
        assert meanwhile.status_code == 403, meanwhile.text

    request_id = hang_up_mid_stream(
        settle_gw.url, key, body, path=route.path, chunks=CHUNKS_BEFORE_HANGUP, while_open=refused_while_reserved
    )
    assert wait_cancelled(fake).get("cancelled") is True, "the gateway kept the upstream call open"
    row = settle_then_prove_released(settle_gw, route, key_id, key, then, prompt, request_id)
    assert row["client_disconnected"] in (True, 1)
    assert row["status"] == 200
    assert row["stream"] in (True, 1)


@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_an_upstream_that_drops_mid_stream_is_settled_and_recorded(
    settle_gw: GatewayProcess, route: Route
) -> None:
    prompt = "[fault:drop] Tell me a story"
    body = chat_body(route.model, prompt, max_tokens=STREAM_MAX_TOKENS, stream=True)
    then = chat_body(route.model, "Hello", max_tokens=STREAM_MAX_TOKENS)
    key_id, key = capped_key(settle_gw, body, then, route)

    with httpx2.Client(base_url=settle_gw.url, timeout=20) as client:
        response = client.post(route.path, content=body, headers=auth(key))
    # Headers went out with the first event, so the failure arrives in-band, in the client's format.
    assert response.status_code == 200
    assert b"upstream_error" in response.content

    row = settle_then_prove_released(
        settle_gw, route, key_id, key, then, prompt, response.headers["x-request-id"]
    )
    assert row["error_code"] == "upstream_error"
    assert row["client_disconnected"] in (False, 0)


def test_text_delivered_before_an_openai_stream_ends_early_is_charged(settle_gw: GatewayProcess) -> None:
    route = ROUTES[2]
    body = chat_body(route.model, "[fault:drop] Tell me a story", max_tokens=STREAM_MAX_TOKENS, stream=True)
    key_id, key = create_key(settle_gw.config_path, settle_gw.env, "--workspace", "e2e")
    with httpx2.Client(base_url=settle_gw.url, timeout=20) as client:
        response = client.post(route.path, content=body, headers=auth(key))
    assert b'"content":"Hello from"' in response.content  # text reached the client before the drop
    (row,) = wait_for_usage(sqlite_engine(settle_gw), 1, key_id=key_id)
    # The usage chunk never came: what passed is estimated (four characters a token) and billed, input from
    # the body, and the ledger matches the record.
    assert row["output_tokens"] > 0 and row["input_tokens"] > 0 and row["cost_micros"] > 0
    assert read_books(sqlite_engine(settle_gw)).charges[row["request_id"]] == row["cost_micros"]


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_an_upstream_that_fails_before_the_first_byte_is_charged_nothing(
    settle_gw: GatewayProcess, fault: str
) -> None:
    route = ROUTES[0]
    body = chat_body(route.model, f"[fault:{fault}] Tell me a story", max_tokens=STREAM_MAX_TOKENS, stream=True)
    then = chat_body(route.model, "Hello", max_tokens=STREAM_MAX_TOKENS)
    key_id, key = capped_key(settle_gw, body, then, route)

    with httpx2.Client(base_url=settle_gw.url, timeout=20) as client:
        response = client.post(route.path, content=body, headers=auth(key))
    assert response.status_code >= 500, response.text
    engine = sqlite_engine(settle_gw)
    (row,) = wait_for_usage(engine, 1, request_id=response.headers["x-request-id"])
    assert (row["status"], row["cost_micros"]) == (response.status_code, 0)
    assert response.headers["x-request-id"] not in read_books(engine).charges

    with httpx2.Client(base_url=settle_gw.url, timeout=20) as client:
        after = client.post(route.path, content=then, headers=auth(key))
    assert after.status_code == 200, after.text
    done = settle_gw.cli("billing", "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_gateway_stopped_mid_stream_finishes_it_and_writes_its_charge(
    fake: FakeUpstreamProcess, tmp_path: Path
) -> None:
    body = chat_body(HAIKU, "[scenario:slow:150] Tell me a story", max_tokens=STREAM_MAX_TOKENS, stream=True)
    with gateway(gateway_config(fake.url, log_level="warning"), tmp_path) as gw:
        with httpx2.Client(base_url=gw.url, timeout=20) as client:
            with client.stream("POST", "/v1/messages", content=body, headers=auth(gw.api_key)) as response:
                pieces = response.iter_raw()
                received = [next(pieces)]
                gw.process.terminate()  # what `docker stop` or systemd sends
                received.extend(pieces)
        request_id = response.headers["x-request-id"]
        # A clean shutdown lets the stream end, then writes the usage log before the process exits.
        gw.process.wait(timeout=40)
        assert b"message_stop" in b"".join(received)
        engine = sqlite_engine(gw)
        (row,) = usage_rows(engine, request_id=request_id)
        usage = (fake_input_tokens("[scenario:slow:150] Tell me a story"), ANSWER_TOKENS)
        assert (row["input_tokens"], row["output_tokens"]) == usage
        assert row["cost_micros"] == cost_micros(prices_of(HAIKU), input_tokens=usage[0], output_tokens=usage[1])
        assert read_books(engine).charges == {request_id: row["cost_micros"]}
        done = gw.cli("billing", "reconcile")
        assert done.returncode == 0, done.stdout + done.stderr
