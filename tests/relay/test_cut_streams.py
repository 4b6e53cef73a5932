from __future__ import annotations

from clearmaas.canonical import Usage
from clearmaas.providers.anthropic.passthrough import passthrough_event as anthropic_event
from clearmaas.providers.base import PassthroughStream
from clearmaas.providers.openai_chat.passthrough import passthrough_event as openai_event
from clearmaas.providers.profiles import OPENAI
from clearmaas.relay.record import CallRecord
from clearmaas.transport.sse import SSEParser


def test_a_stream_cut_before_its_usage_is_billed_from_what_passed() -> None:
    record = CallRecord(request_id="r", endpoint="openai_chat", stream=True, input_estimate=30)
    record.output_chars = 41
    record.estimate_cut_stream()
    assert (record.usage.input_tokens, record.usage.output_tokens) == (30, 11)


def test_reported_counts_win_when_they_are_larger() -> None:
    record = CallRecord(request_id="r", endpoint="anthropic_messages", stream=True, input_estimate=999)
    record.usage = Usage(input_tokens=12, cache_read_tokens=5, output_tokens=40)
    record.output_chars = 20  # 5 tokens: fewer than reported
    record.estimate_cut_stream()
    assert record.usage == Usage(input_tokens=12, cache_read_tokens=5, output_tokens=40)
    record.output_chars = 400  # 100 tokens: the provider's input stays, the output is the estimate
    record.estimate_cut_stream()
    assert (record.usage.input_tokens, record.usage.cache_read_tokens, record.usage.output_tokens) == (12, 5, 100)


def test_fast_paths_measure_generated_characters() -> None:
    state = PassthroughStream()
    stream = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\":1}"}}]}}]}\n\n'
    )
    for event in SSEParser().feed(stream):
        openai_event(event, state, client_wants_usage=False, profile=OPENAI)
    assert state.output_chars == len("Hello") + len('{"a":1}')

    state = PassthroughStream()
    text = "x" * 50
    anthropic = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"' + text + '"}}\n\n'
    ).encode()
    for event in SSEParser().feed(anthropic):
        anthropic_event(event, state, client_wants_usage=True)
    assert state.output_chars == len(text)


def test_a_new_attempt_forgets_the_failed_one() -> None:
    record = CallRecord(request_id="r", endpoint="openai_chat", stream=True, input_estimate=30)
    record.usage, record.error_code, record.output_chars = Usage(input_tokens=3), "upstream_error", 99
    record.new_attempt()
    assert (record.usage, record.error_code, record.output_chars) == (Usage(), None, 0)
