"""The record of one call: what the usage log, billing and the access log are written from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from clearmaas.canonical.usage import Usage

__all__ = ["CallRecord"]


@dataclass(slots=True)
class CallRecord:
    request_id: str
    endpoint: str  # surface protocol
    started: float = field(default_factory=time.monotonic)
    key_id: str | None = None
    workspace_id: str | None = None
    requested_model: str | None = None
    served_model: str | None = None  # ClearMaas id of the model that answered
    provider: str | None = None
    router: str | None = None
    fallback_level: int | None = None
    stream: bool = False
    passthrough: bool = False
    status: int = 200
    error_code: str | None = None
    usage: Usage = field(default_factory=Usage)
    input_estimate: int = 0  # tokens, a bound taken from the body's size
    output_chars: int = 0  # generated characters seen in a stream (for streams cut before their usage)
    limit_tokens: int = 0  # what the rate limiter counted up front
    admission: Any = None  # the rate limiter's receipt, to correct its token count afterwards
    reservation: Any = None  # the billing reservation held for the attempt in flight
    first_byte: float | None = None
    finished: float | None = None
    client_disconnected: bool = False

    def mark_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic()

    def new_attempt(self) -> None:
        """Forget what a failed attempt left behind: only the attempt that answers is recorded and billed."""
        self.usage = Usage()
        self.error_code = None
        self.output_chars = 0

    def estimate_cut_stream(self) -> None:
        """Bill what a stream cut short generated (by a hang-up or an upstream failure), when the provider
        never got to report it: OpenAI-style streams send usage last. Output is estimated at four characters
        a token from what passed; input, when unreported, from the body (the reservation's estimate)."""
        generated = (self.output_chars + 3) // 4
        usage = self.usage
        if generated <= usage.output_tokens:
            return
        self.usage = Usage(
            input_tokens=usage.input_tokens if usage.prompt_tokens else self.input_estimate,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=generated,
            reasoning_tokens=usage.reasoning_tokens,
            server_tool_calls=dict(usage.server_tool_calls),
        )

    @property
    def latency_ms(self) -> int:
        end = self.finished or time.monotonic()
        return int((end - self.started) * 1000)

    @property
    def ttft_ms(self) -> int | None:
        return None if self.first_byte is None else int((self.first_byte - self.started) * 1000)
