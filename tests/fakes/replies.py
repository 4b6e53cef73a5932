"""The fake upstream's reply value, SSE framing and id minting, shared by every provider module.

A provider module returns a `Reply`; only `upstream.py` writes it to a socket (with delays and faults).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "JSON_TYPE",
    "SSE_TYPE",
    "Reply",
    "RequestContext",
    "fake_signature",
    "json_reply",
    "now",
    "random_id",
    "sse_data",
    "sse_event",
]

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
_ALNUM = string.ascii_letters + string.digits


@dataclass(slots=True)
class Reply:
    """One HTTP answer: a whole body, or SSE frames written one by one."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    events: list[bytes] | None = None
    content_type: str = JSON_TYPE


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a provider module needs from the HTTP request besides the parsed body."""

    provider: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    model: str
    stream: bool


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, headers=dict(headers or {}), body=orjson.dumps(payload))


def sse_data(payload: Any, *, crlf: bool = False) -> bytes:
    """An OpenAI-style frame (`data:` only); Gemini terminates its frames with CRLF pairs."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"data: " + data + (b"\r\n\r\n" if crlf else b"\n\n")


def sse_event(name: str, payload: Any) -> bytes:
    """An Anthropic-style frame: the SDK dispatches on the `event:` line, so it must equal `data.type`."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def random_id(prefix: str = "", length: int = 24, alphabet: str = _ALNUM) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def now() -> int:
    return int(time.time())


def fake_signature(text: str, *, tag: str) -> str:
    """A deterministic stand-in for a provider's opaque reasoning signature (valid base64, as the real ones are),
    so the fake can tell whether a client sent a block back byte-exact; real providers reject altered ones."""
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b64encode(tag.encode() + digest * 2).decode()
