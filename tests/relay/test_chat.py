"""The relay's checks on a client body before it picks the fast path or translation."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from clearmaas.errors import InvalidRequest
from clearmaas.relay.chat import new_request_id, required_model

HI = [{"role": "user", "content": "hi"}]


def test_a_complete_body_gives_its_model() -> None:
    assert required_model({"model": "openai/gpt-4o-mini", "messages": HI}) == "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI}, "model"),
        ({"model": "", "messages": HI}, "model"),
        ({"model": 3, "messages": HI}, "model"),
        ({"model": "openai/gpt-4o-mini"}, "messages"),
        ({"model": "openai/gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "openai/gpt-4o-mini", "messages": "hi"}, "messages"),
    ],
)
def test_missing_required_fields_are_bad_request_body(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        required_model(body)
    assert caught.value.param == param
    assert caught.value.code == "bad_request_body" and caught.value.status == 400


def test_request_ids_are_unique_hex_and_grow_with_time() -> None:
    first = new_request_id()
    time.sleep(0.002)
    later = [new_request_id() for _ in range(1_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in [first, *later])
    assert len(set(later)) == 1_000
    assert all(first[:12] < rid[:12] for rid in later)  # the millisecond prefix orders them
