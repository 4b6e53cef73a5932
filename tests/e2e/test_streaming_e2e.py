"""Streaming behaviour through the real server: chunks reach the client as the upstream sends them (never
buffered), and a client that hangs up mid-stream makes the gateway close the upstream call and carry on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.harness import FakeUpstreamProcess
from tests.fakes.scenarios import ANSWER_TEXT

DELAY = 0.12  # seconds between upstream chunks ([scenario:slow:120])
SLOW = f"[scenario:slow:{int(DELAY * 1000)}] Say hello please"
# (surface, model): both fast paths, and a translation each way.
CASES = [("openai", "openai/gpt-4o-mini"), ("openai", "google/gemini-2.5-flash"),
         ("anthropic", "anthropic/claude-sonnet-4.6"), ("anthropic", "deepseek/deepseek-chat")]
IDS = [f"{s}-sdk-{m.split('/')[0]}" for s, m in CASES]


def text_arrivals(oai: openai.OpenAI, ant: anthropic.Anthropic, surface: str, model: str) -> Iterator[str]:
    """Each text delta of a streamed answer, as the SDK hands it over."""
    if surface == "openai":
        with oai.chat.completions.stream(model=model, messages=[{"role": "user", "content": SLOW}]) as stream:
            for event in stream:
                if event.type == "content.delta" and event.delta:  # the role chunk carries content ""
                    yield event.delta
    else:
        with ant.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": SLOW}]) as stream:
            yield from stream.text_stream


@pytest.mark.parametrize(("surface", "model"), CASES, ids=IDS)
def test_chunks_arrive_as_the_upstream_sends_them(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, model: str
) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = [(time.monotonic() - started, text)
                                         for text in text_arrivals(oai, ant, surface, model)]

    assert "".join(text for _, text in arrivals) == ANSWER_TEXT
    times = [t for t, _ in arrivals]
    assert len(times) >= 5
    # Six text chunks spaced DELAY apart upstream: a buffering gateway would hand them over all at once.
    assert times[-1] - times[0] >= DELAY * (len(times) - 1) * 0.7
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= DELAY * 0.5, gaps


@pytest.mark.parametrize(("surface", "model"), CASES, ids=IDS)
def test_client_disconnect_closes_the_upstream_call(
    oai: openai.OpenAI, ant: anthropic.Anthropic, fake: FakeUpstreamProcess, surface: str, model: str
) -> None:
    prompt = "[scenario:slow:400] Say hello please"  # about 4 s of answer if nobody hangs up
    started = time.monotonic()
    if surface == "openai":
        stream: Any = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                  stream=True)
        first = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert first.choices[0].delta.content
        stream.close()
    else:
        raw: Any = ant.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}],
                                       stream=True)
        first = next(e for e in raw if e.type == "content_block_delta")
        assert first.delta.type == "text_delta"
        raw.close()
    hung_up = time.monotonic()
    assert hung_up - started < 2.5

    cancelled = False
    while time.monotonic() - hung_up < 1.5:
        recorded = fake.requests()
        assert len(recorded) == 1
        if recorded[0].get("cancelled"):
            cancelled = True
            break
        time.sleep(0.05)
    assert cancelled, "the upstream kept streaming to a gateway whose client had gone"

    # The gateway keeps serving.
    if surface == "openai":
        again = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert again.choices[0].message.content == ANSWER_TEXT
    else:
        message = ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].type == "text" and message.content[0].text == ANSWER_TEXT
