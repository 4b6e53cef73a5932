"""What the routing end-to-end modules share: a gateway config whose providers sit behind the fake upstream's fault
switches (so one chain entry or one deployment can fail alone), switch control, the routing headers a response
carries, and the usage record a call left.

Helpers only; each test module starts its own gateway with the config it needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib import request as urlrequest

import anthropic
import openai
from sqlalchemy import Engine

from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from tests.e2e.books import usage_rows
from tests.e2e.cases import assert_no_leak
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, gateway_config
from tests.fakes.upstream import PROVIDERS, provider_base_urls

__all__ = [
    "FAST_TIMEOUTS",
    "Answer",
    "ask",
    "assert_opaque",
    "catalogue_of",
    "clear_switches",
    "cost_of",
    "exported",
    "routing_headers",
    "set_switch",
    "switched",
    "switched_config",
    "upstream_calls",
    "usage_record",
]

# Short waits, so a timeout fault costs about a second; streams still have room between chunks.
FAST_TIMEOUTS = {"connect": 1, "first_byte": 1.2, "between_chunks": 3, "total": 30}
# The fake's route behind each gateway provider (the harness's custom `local` upstream speaks OpenAI's).
_FAKE_ROUTE = {**{p: p for p in PROVIDERS}, "local": "openai"}


def switched(fake_url: str, switch: str, provider: str) -> str:
    """The base URL of `provider` on the fake, behind the fault switch `switch`."""
    return provider_base_urls(f"{fake_url}/switch/{switch}")[_FAKE_ROUTE[provider]]


def switched_config(fake_url: str, *, routing: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The harness's config with each provider behind a switch named after it, short timeouts, and a breaker
    that forgets within 50 ms, so one test's failure does not reorder the next test's chain."""
    config = gateway_config(fake_url, log_level="warning", **overrides)
    for provider_id, provider in config["providers"].items():
        provider["base_url"] = switched(fake_url, provider_id, provider_id)
        provider["timeouts"] = FAST_TIMEOUTS
    config["routing"] = {"retries": 0, "cooldown": 0.05, "cooldown_max": 0.05, "refresh": 0.2, **(routing or {})}
    return config


def _control(fake: FakeUpstreamProcess, method: str, path: str, body: Any = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    with urlrequest.urlopen(urlrequest.Request(f"{fake.url}{path}", data=data, method=method), timeout=5) as reply:
        assert reply.status == 200


def set_switch(fake: FakeUpstreamProcess, switch: str, fault: str | None) -> None:
    """Fail every request through `switch` with `fault` (a fault marker's `name[:arg]`); None turns it off."""
    if fault is None:
        _control(fake, "DELETE", f"/__switches/{switch}")
    else:
        _control(fake, "PUT", f"/__switches/{switch}", {"fault": fault})


def clear_switches(fake: FakeUpstreamProcess) -> None:
    _control(fake, "DELETE", "/__switches")


def upstream_calls(fake: FakeUpstreamProcess) -> list[tuple[str | None, str]]:
    """(switch, model the upstream was asked for) of every request the fake received, oldest first."""
    found = []
    for record in fake.requests():
        body = record.get("body") or {}
        model = body.get("model")
        if record["provider"] == "google":  # Gemini names the model in the path
            model = record["path"].rsplit("/models/", 1)[1].split(":", 1)[0]
        found.append((record.get("switch"), str(model)))
    return found


def routing_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The X-Clear-* headers of a response, by lower-case name."""
    return {name.lower(): value for name, value in headers.items() if name.lower().startswith("x-clear-")}


_PROVIDER_WORDS = (*PROVIDERS, "upstream", "provider", "routed", "backend", "deployment", "switch")


def assert_opaque(headers: Mapping[str, str], text: str, fake: FakeUpstreamProcess) -> None:
    """routing__response-headers.md: no header says which upstream served the call, and nothing names its address
    or keys. Only the model headers may carry a model id (which starts with its provider, the client's own name)."""
    assert_no_leak(text + json.dumps(dict(headers)), fake_url=fake.url)
    for name, value in headers.items():
        lowered = name.lower()
        assert not any(word in lowered for word in _PROVIDER_WORDS), name
        if lowered in ("x-clear-fallback-model", "x-clear-resolved-model"):
            continue
        assert not any(word in value.lower() for word in _PROVIDER_WORDS), (name, value)


def catalogue_of(config: Mapping[str, Any]) -> Catalogue:
    """The catalogue the gateway builds from `config` (bundled models plus the config's overrides)."""
    return Catalogue.load(Settings.model_validate(dict(config)))


def cost_of(entry: ModelEntry, *, input_tokens: int, output_tokens: int) -> int:
    """operations__billing-and-usage.md: micro-dollars, the per-token prices summed and rounded up once."""
    assert entry.prices is not None, entry.id
    total = input_tokens * entry.prices.input + output_tokens * entry.prices.output
    return -(-total // 1_000_000)


_ENGINES: dict[str, Engine] = {}


def usage_record(gw: GatewayProcess, request_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The usage record of one call (written in batches, a moment after the call ends)."""
    url = f"sqlite:///{gw.data_dir / 'clearmaas.db'}"
    engine = _ENGINES.get(url) or _ENGINES.setdefault(url, create_engine_for(url))
    deadline = time.monotonic() + timeout
    while True:
        rows = usage_rows(engine, request_id=request_id)
        if rows:
            return rows[0]
        assert time.monotonic() < deadline, f"no usage record for {request_id}"
        time.sleep(0.05)


def exported(gw: GatewayProcess, request_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`clearmaas usage export` lines of the given calls, by request id, as an operator reads them."""
    wanted = set(request_ids)
    done = gw.cli("usage", "export", "--workspace", "e2e", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {line["request_id"]: line for line in lines if line["request_id"] in wanted}


# -- one call through either SDK ---------------------------------------------------------------------------


@dataclass
class Answer:
    """What a client saw: the status and headers, the answer's text, the error envelope of a refused call, and
    the error a stream raised after it had started (None when it finished)."""

    status: int
    headers: dict[str, str]
    text: str
    body: str
    error: dict[str, Any] | None = None
    in_band: Exception | None = None

    @property
    def request_id(self) -> str:
        return self.headers["x-request-id"]

    @property
    def routing(self) -> dict[str, str]:
        return routing_headers(self.headers)


def ask(
    client: openai.OpenAI | anthropic.Anthropic,
    model: str,
    *,
    prompt: str = "hello",
    extra: Mapping[str, Any] | None = None,
    stream: bool = False,
) -> Answer:
    """One chat call through the SDK `client` (`with_raw_response`, so the headers can be read); an HTTP error
    comes back as an `Answer` with its status and error envelope instead of raising."""
    messages: Any = [{"role": "user", "content": prompt}]
    extra_body = dict(extra) if extra else None
    try:
        if isinstance(client, openai.OpenAI):
            raw: Any = client.chat.completions.with_raw_response.create(
                model=model, messages=messages, stream=stream, extra_body=extra_body
            )
        else:
            raw = client.messages.with_raw_response.create(
                model=model, max_tokens=256, messages=messages, stream=stream, extra_body=extra_body
            )
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]
        return Answer(exc.status_code, _lower(exc.response.headers), "", exc.response.text, error=body)
    headers = _lower(raw.headers)
    if not stream:
        parsed = raw.parse()
        if isinstance(parsed, openai.types.chat.ChatCompletion):
            text = parsed.choices[0].message.content or ""
        else:
            text = "".join(block.text for block in parsed.content if block.type == "text")
        return Answer(raw.status_code, headers, text, raw.http_response.text)
    pieces: list[str] = []
    in_band: Exception | None = None
    try:
        for event in raw.parse():
            pieces.append(_delta_text(event))
    except (openai.APIError, anthropic.APIError) as exc:
        in_band = exc
    return Answer(raw.status_code, headers, "".join(pieces), "", in_band=in_band)


def _delta_text(event: Any) -> str:
    if isinstance(event, openai.types.chat.ChatCompletionChunk):
        return "".join(choice.delta.content or "" for choice in event.choices)
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return str(event.delta.text)
    return ""


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
