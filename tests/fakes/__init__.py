"""Fake upstream providers for the test suite and the benchmark: one aiohttp server speaking all eight protocols.

Names are imported lazily so that `python -m tests.fakes.upstream` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ANSWER_TEXT",
    "FAKE_KEYS",
    "INPUT_OVERHEAD",
    "INVALID_REQUEST_MESSAGES",
    "PROVIDERS",
    "REASONING_TEXT",
    "RETRY_AFTER_SECONDS",
    "TOOL_CALL_TOKENS",
    "FakeUpstream",
    "provider_base_urls",
]

_HOMES = {
    "ANSWER_TEXT": "scenarios", "INPUT_OVERHEAD": "scenarios", "REASONING_TEXT": "scenarios",
    "TOOL_CALL_TOKENS": "scenarios", "INVALID_REQUEST_MESSAGES": "errors", "RETRY_AFTER_SECONDS": "errors",
    "FAKE_KEYS": "upstream", "PROVIDERS": "upstream", "FakeUpstream": "upstream", "provider_base_urls": "upstream",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
