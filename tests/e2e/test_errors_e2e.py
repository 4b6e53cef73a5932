"""Every error class end to end: upstream faults (4xx, 429, 5xx, timeout, reset, broken streams) through both
SDKs, and the gateway's own refusals (keys, models, bodies, routes) — right status, right SDK exception, right
envelope, and nothing of the upstream (address, keys) or of the gateway's insides (tracebacks) leaked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.e2e.cases import MAX_BODY_BYTES, assert_no_leak
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess
from tests.fakes.errors import INVALID_REQUEST_MESSAGES, RETRY_AFTER_SECONDS

MODELS = {
    "openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4.6", "google": "google/gemini-2.5-flash",
    "deepseek": "deepseek/deepseek-chat", "grok": "grok/grok-4-fast-reasoning", "qwen": "qwen/qwen3-max",
    "kimi": "kimi/kimi-k2.6", "minimax": "minimax/minimax-m2.7",
}
# A few providers per surface: the fast path, and translations to each upstream protocol family.
SURFACE_CASES = [("openai", p) for p in ("openai", "anthropic", "google", "deepseek", "minimax")] + [
    ("anthropic", p) for p in ("anthropic", "openai", "google", "kimi", "grok", "qwen")]
SURFACE_IDS = [f"{s}-sdk-{p}" for s, p in SURFACE_CASES]


def no_leak(response: httpx2.Response, fake: FakeUpstreamProcess) -> None:
    headers = json.dumps(dict(response.headers))
    assert_no_leak(response.text + headers, fake_url=fake.url)


def call(oai: openai.OpenAI, ant: anthropic.Anthropic, surface: str, provider: str, prompt: str,
         **extra: Any) -> Any:
    if surface == "openai":
        return oai.chat.completions.create(model=MODELS[provider],
                                           messages=[{"role": "user", "content": prompt}], **extra)
    return ant.messages.create(model=MODELS[provider], max_tokens=256,
                               messages=[{"role": "user", "content": prompt}], **extra)


def error_type(exc: openai.APIError | anthropic.APIError) -> tuple[str | None, str | None]:
    """(type, code) of the envelope the SDK parsed, whichever surface answered."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    assert isinstance(body, dict), body
    return body.get("type"), body.get("code")


def status_error(surface: str) -> type[Exception]:
    return openai.APIStatusError if surface == "openai" else anthropic.APIStatusError


# --- upstream faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("surface", "provider"), SURFACE_CASES, ids=SURFACE_IDS)
def test_upstream_400_is_a_bad_request_with_the_providers_message(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, provider: str
) -> None:
    bad_request = openai.BadRequestError if surface == "openai" else anthropic.BadRequestError
    with pytest.raises(bad_request) as caught:
        call(oai, ant, surface, provider, "[fault:400] hello")

    exc = caught.value
    assert exc.status_code == 400
    expected = INVALID_REQUEST_MESSAGES[provider]
    if provider == "openai":  # the recorded OpenAI message, as the gateway scrubs it
        assert "max_tokens" in exc.message
    else:
        assert expected in exc.message
    no_leak(exc.response, fake)


@pytest.mark.parametrize(("surface", "provider"), SURFACE_CASES, ids=SURFACE_IDS)
def test_upstream_429_is_a_rate_limit_with_retry_after(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, provider: str
) -> None:
    rate_limited = openai.RateLimitError if surface == "openai" else anthropic.RateLimitError
    with pytest.raises(rate_limited) as caught:
        call(oai, ant, surface, provider, "[fault:429] hello")

    exc = caught.value
    assert exc.status_code == 429
    assert exc.response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    no_leak(exc.response, fake)


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize(("surface", "provider"), SURFACE_CASES, ids=SURFACE_IDS)
def test_upstream_5xx_is_a_502_upstream_error(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, provider: str,
    status: int,
) -> None:
    server_error = openai.InternalServerError if surface == "openai" else anthropic.InternalServerError
    with pytest.raises(server_error) as caught:
        call(oai, ant, surface, provider, f"[fault:{status}] hello")

    assert caught.value.status_code == 502
    assert error_type(caught.value) == ("upstream_error", "upstream_error")
    no_leak(caught.value.response, fake)


def test_minimax_http_200_error_is_mapped_by_its_code(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    """MiniMax reports some failures as HTTP 200 with `base_resp.status_code` (1002: rate limit)."""
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="minimax/minimax-m2.7",
                                    messages=[{"role": "user", "content": "[fault:minimax_200_error] hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after")


@pytest.mark.parametrize("fault", ["reset", "timeout:6"])
def test_timeout_and_reset_are_502_on_both_surfaces(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, fault: str
) -> None:
    """The harness sets first_byte to 3 s; the four calls run at once so the suite pays for one wait."""
    calls: list[tuple[str, str]] = [("openai", "openai"), ("openai", "google"), ("anthropic", "anthropic"),
                                    ("anthropic", "kimi")]

    def attempt(case: tuple[str, str]) -> tuple[Exception | None, float]:
        started = time.monotonic()
        try:
            call(oai, ant, case[0], case[1], f"[fault:{fault}] hello")
        except Exception as exc:  # noqa: BLE001 (inspected below)
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(attempt, calls))

    for (surface, provider), (exc, elapsed) in zip(calls, results, strict=True):
        assert isinstance(exc, status_error(surface)), (surface, provider, exc)
        assert exc.status_code == 502, (surface, provider)
        assert error_type(exc)[0] == "upstream_error"
        no_leak(exc.response, fake)
        if fault.startswith("timeout"):
            # The wait for headers is bounded by connect + first_byte (2 + 3 s in the harness), not by the
            # upstream's 6 s.
            assert 2.9 < elapsed < 5.9, (surface, provider, elapsed)


# --- broken streams ------------------------------------------------------------------------------------------


STREAM_CASES = [("openai", "openai"), ("openai", "anthropic"), ("openai", "google"), ("openai", "kimi"),
                ("anthropic", "anthropic"), ("anthropic", "openai"), ("anthropic", "google"), ("anthropic", "grok")]
STREAM_IDS = [f"{s}-sdk-{p}" for s, p in STREAM_CASES]


@pytest.mark.parametrize("fault", ["drop", "stream_error"])
@pytest.mark.parametrize(("surface", "provider"), STREAM_CASES, ids=STREAM_IDS)
def test_stream_failing_after_the_first_byte_raises_inside_the_stream(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, provider: str, fault: str
) -> None:
    seen: list[Any] = []
    api_error = openai.APIError if surface == "openai" else anthropic.APIError
    with pytest.raises(api_error) as caught:
        for event in _stream_events(oai, ant, surface, provider, f"[fault:{fault}] hello"):
            seen.append(event)

    assert seen, "the stream should have started (a 200) before failing"
    assert not isinstance(caught.value, openai.APIConnectionError | anthropic.APIConnectionError)
    assert error_type(caught.value) == ("upstream_error", "upstream_error")  # the in-band error event
    assert_no_leak(str(caught.value), fake_url=fake.url)


def _stream_events(oai: openai.OpenAI, ant: anthropic.Anthropic, surface: str, provider: str,
                   prompt: str) -> Iterator[Any]:
    messages: Any = [{"role": "user", "content": prompt}]
    if surface == "openai":
        with oai.chat.completions.stream(model=MODELS[provider], messages=messages) as stream:
            yield from stream
    else:
        with ant.messages.stream(model=MODELS[provider], max_tokens=256, messages=messages) as stream:
            yield from stream


@pytest.mark.parametrize(("surface", "provider"), STREAM_CASES, ids=STREAM_IDS)
def test_stream_failing_before_the_first_byte_is_an_http_error(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, provider: str
) -> None:
    rate_limited = openai.RateLimitError if surface == "openai" else anthropic.RateLimitError
    with pytest.raises(rate_limited) as caught:
        for _ in _stream_events(oai, ant, surface, provider, "[fault:429] hello"):
            pass
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


# --- the gateway's own refusals ------------------------------------------------------------------------------


def test_missing_and_invalid_keys_are_401_on_both_surfaces(
    gw: GatewayProcess, http: httpx2.Client, fake: FakeUpstreamProcess
) -> None:
    wrong = "sk-clearmaas-not-a-real-key-000000000000000000000"
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=wrong, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 401
        assert error_type(caught.value) == ("clearmaas_api_error", "invalid_api_key")
    with anthropic.Anthropic(base_url=gw.url, api_key=wrong, max_retries=0) as ant_client:
        with pytest.raises(anthropic.AuthenticationError) as caught_a:
            ant_client.messages.create(model="anthropic/claude-sonnet-4.6", max_tokens=16,
                                       messages=[{"role": "user", "content": "hi"}])
        assert caught_a.value.status_code == 401
        assert error_type(caught_a.value) == ("clearmaas_api_error", "invalid_api_key")

    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    missing = http.post("/v1/chat/completions", json=chat)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    missing_a = http.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={**chat, "max_tokens": 8})
    assert missing_a.status_code == 401 and missing_a.json()["error"]["code"] == "invalid_api_key"
    assert missing_a.json()["type"] == "error"
    not_bearer = http.post("/v1/chat/completions", headers={"authorization": gw.api_key}, json=chat)
    assert not_bearer.status_code == 401
    for response in (missing, missing_a, not_bearer):
        no_leak(response, fake)
        assert gw.api_key not in response.text
    assert fake.requests() == [], "a refused call must not reach the upstream"


def test_x_api_key_works_on_messages_only(http: httpx2.Client, gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    headers = {"x-api-key": gw.api_key, "anthropic-version": "2023-06-01"}
    body = {"model": "anthropic/claude-sonnet-4.6", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    ok = http.post("/v1/messages", headers=headers, json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["content"][0]["type"] == "text"

    chat = http.post("/v1/chat/completions", headers=headers,
                     json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 401
    assert chat.json()["error"]["code"] == "invalid_api_key"
    wrong = http.post("/v1/messages", headers={**headers, "x-api-key": "sk-clearmaas-wrong"}, json=body)
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "error" and wrong.json()["error"]["code"] == "invalid_api_key"
    assert len(fake.requests()) == 1


def test_revoked_key_is_refused_within_two_seconds(gw: GatewayProcess, http: httpx2.Client) -> None:
    created = gw.cli("keys", "create", "--workspace", "e2e", "--name", "revoke-me")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.strip().splitlines()
    raw_key, key_id = lines[-1], lines[0].split()[2]
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {raw_key}"}
    assert http.post("/v1/chat/completions", headers=headers, json=body).status_code == 200

    revoked = gw.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 2.5
    status = 200
    while time.monotonic() < deadline:
        status = http.post("/v1/chat/completions", headers=headers, json=body).status_code
        if status == 401:
            break
        time.sleep(0.1)
    assert status == 401
    # The session key is untouched.
    assert http.post("/v1/chat/completions", headers={"authorization": f"Bearer {gw.api_key}"},
                     json=body).status_code == 200


@pytest.mark.parametrize("surface", ["openai", "anthropic"])
def test_unknown_model_is_503_model_not_found(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str
) -> None:
    with pytest.raises(status_error(surface)) as caught:
        if surface == "openai":
            oai.chat.completions.create(model="nobody/no-model", messages=[{"role": "user", "content": "hi"}])
        else:
            ant.messages.create(model="nobody/no-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    exc = caught.value
    assert isinstance(exc, openai.APIStatusError | anthropic.APIStatusError)
    assert exc.status_code == 503
    assert error_type(exc)[1] == "model_not_found"
    assert fake.requests() == []


def test_bad_bodies_are_400_bad_request_body_naming_the_field(
    http: httpx2.Client, gw: GatewayProcess, fake: FakeUpstreamProcess
) -> None:
    auth = {"authorization": f"Bearer {gw.api_key}", "content-type": "application/json"}
    anthropic_auth = {**auth, "anthropic-version": "2023-06-01"}

    missing = http.post("/v1/chat/completions", headers=auth, json={"model": "openai/gpt-4o-mini"})
    assert missing.status_code == 400
    error = missing.json()["error"]
    assert error["code"] == "bad_request_body" and "messages" in (error.get("param") or "") + error["message"]

    for path, headers in (("/v1/chat/completions", auth), ("/v1/messages", anthropic_auth)):
        broken = http.post(path, headers=headers, content=b'{"model": "openai/gpt-4o-mini", "messages": [')
        assert broken.status_code == 400, path
        envelope = broken.json()["error"]
        assert envelope["code"] == "bad_request_body" and "JSON" in envelope["message"]
        no_leak(broken, fake)

    no_max_tokens = http.post("/v1/messages", headers=anthropic_auth,
                              json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["type"] == "error"
    assert "max_tokens" in no_max_tokens.json()["error"]["message"]
    assert fake.requests() == []


def test_body_over_the_limit_is_413(http: httpx2.Client, gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    auth = {"authorization": f"Bearer {gw.api_key}", "content-type": "application/json"}
    huge = json.dumps({"model": "openai/gpt-4o-mini",
                       "messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 1024)}]}).encode()

    declared = http.post("/v1/chat/completions", headers=auth, content=huge)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"

    def chunks() -> Any:  # no content-length: the limit is enforced while reading
        for i in range(0, len(huge), 64 * 1024):
            yield huge[i : i + 64 * 1024]

    chunked = http.post("/v1/chat/completions", headers=auth, content=chunks())
    assert chunked.status_code == 413
    assert fake.requests() == []


def test_unknown_route_is_404_in_the_openai_envelope(http: httpx2.Client, gw: GatewayProcess) -> None:
    response = http.get("/v1/nothing-here", headers={"authorization": f"Bearer {gw.api_key}"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and error["type"] == "clearmaas_api_error"
    assert "/v1/nothing-here" in error["message"]


def test_json_schema_to_an_anthropic_model_is_api_not_implemented(
    oai: openai.OpenAI, fake: FakeUpstreamProcess
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="anthropic/claude-sonnet-4.6", messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
    assert caught.value.status_code == 400
    assert error_type(caught.value)[1] == "api_not_implemented"
    assert fake.requests() == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("provider", list(MODELS))
def test_successful_answers_leak_nothing_of_the_upstream(
    http: httpx2.Client, gw: GatewayProcess, fake: FakeUpstreamProcess, provider: str, stream: bool
) -> None:
    """Provider opacity holds on success too: no upstream address, key or response header reaches the client."""
    auth = {"authorization": f"Bearer {gw.api_key}", "anthropic-version": "2023-06-01"}
    prompt = [{"role": "user", "content": "[scenario:tool] [scenario:reasoning] hi"}]
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    calls = [
        ("/v1/chat/completions", {"model": MODELS[provider], "messages": prompt, "stream": stream,
                                  "tools": [{"type": "function", "function": {
                                      "name": "get_weather", "parameters": tools[0]["input_schema"]}}]}),
        ("/v1/messages", {"model": MODELS[provider], "max_tokens": 256, "messages": prompt, "stream": stream,
                          "tools": tools}),
    ]
    for path, body in calls:
        response = http.post(path, headers=auth, json=body)
        assert response.status_code == 200, response.text
        no_leak(response, fake)
        names = {name.lower() for name in response.headers}
        assert not names & {"request-id", "anthropic-organization-id", "x-goog-api-key", "openai-organization"}
        assert len(response.headers["x-request-id"]) == 32  # the gateway's own id, not the provider's `req_…`
        assert "get_weather" in response.text
