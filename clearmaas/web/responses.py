"""Responses the relay returns: JSON bodies already encoded, and an event stream that is never buffered
and that cancels the upstream call when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["EventStreamResponse", "json_response"]


def json_response(body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")


class EventStreamResponse:
    """Sends each chunk the moment the iterator yields it.

    A listener waits for `http.disconnect` alongside the stream; when the client leaves, the streaming task is
    cancelled, which closes the iterator chain down to the upstream connection (so the provider stops
    generating). `on_close` runs last, whatever happened: that is where usage is recorded.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        on_close: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._body = body
        self._headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
        self._headers.extend((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
        self._on_close = on_close
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        listener = asyncio.ensure_future(self._watch(receive, task))
        completed = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            completed = True
        except asyncio.CancelledError:
            if not self.disconnected:
                raise
            # The client left: the cancellation already unwound the upstream call.
            task.uncancel()
        except OSError:
            self.disconnected = True  # a write to a closed socket
        finally:
            listener.cancel()
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
            if self._on_close is not None:
                await self._on_close(completed)

    async def _watch(self, receive: Receive, task: asyncio.Task[object]) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                task.cancel()
                return
