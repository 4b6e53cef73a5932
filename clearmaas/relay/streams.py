"""Stream plumbing shared by both paths: taking the first item before committing to a 200, and turning
failures inside a running stream into in-band events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TypeVar

from clearmaas.canonical import StreamError, StreamEvent
from clearmaas.errors import GatewayError, InternalError
from clearmaas.relay.record import CallRecord
from clearmaas.transport.client import UpstreamResponse

__all__ = ["observe_events", "prefetch"]

T = TypeVar("T")
log = logging.getLogger("clearmaas.relay")


async def prefetch(items: AsyncIterator[T]) -> tuple[T | None, AsyncIterator[T]]:
    """The first item (None for an empty stream) and an iterator over all of them, first included.

    Waiting for the first item before sending headers is what lets a provider that fails before its first
    byte give the client a real HTTP error (and, later, lets a fallback chain move on).
    """
    try:
        first = await items.__anext__()
    except StopAsyncIteration:
        return None, items

    async def chained() -> AsyncIterator[T]:
        yield first
        async for item in items:
            yield item

    return first, chained()


async def observe_events(
    events: AsyncIterator[StreamEvent], response: UpstreamResponse, record: CallRecord
) -> AsyncIterator[StreamEvent]:
    """Pass events through, noting usage; turn a failure mid-stream into a `StreamError`; always close the
    upstream response (which cancels generation if the client went away)."""
    try:
        async for event in events:
            kind = event.kind
            if kind == "usage":
                record.usage = event.usage  # type: ignore[union-attr]
            elif kind == "start" and event.usage is not None:  # type: ignore[union-attr]
                record.usage = event.usage  # type: ignore[union-attr]
            elif kind == "error":
                record.error_code = event.error.code  # type: ignore[union-attr]
            elif kind == "part_delta":
                delta = event.delta  # type: ignore[union-attr]
                record.output_chars += len(delta.json if delta.kind == "tool_arguments" else getattr(delta, "text", ""))
            yield event
    except GatewayError as exc:
        record.error_code = exc.code
        yield StreamError(exc)
    except Exception:
        log.exception("stream translation failed (request %s)", record.request_id)
        record.error_code = "internal_error"
        yield StreamError(InternalError("The gateway failed while translating the stream."))
    finally:
        response.close()
