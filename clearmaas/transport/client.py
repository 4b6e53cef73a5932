"""The pooled upstream HTTP client, and the one place network failures become gateway errors.

aiohttp is used for its C parser and connection pool: the client side of the hot path is most of a
relay's cost, and it measured faster than the alternatives (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp

from clearmaas.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from clearmaas.providers.base import UpstreamRequest
from clearmaas.settings import TimeoutSettings

__all__ = ["UpstreamClient", "UpstreamResponse", "map_network_errors"]


@contextlib.contextmanager
def map_network_errors() -> Iterator[None]:
    """Translate aiohttp and timeout exceptions into `UpstreamError`s (messages never name the upstream)."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout("The upstream provider did not respond in time.") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamConnectError("The upstream provider could not be reached or closed the connection.") from exc


class UpstreamResponse:
    """A response whose headers have arrived; the body is read or streamed with the attempt's deadlines."""

    __slots__ = ("_response", "_timeouts", "_deadline", "status", "headers")

    def __init__(self, response: aiohttp.ClientResponse, timeouts: TimeoutSettings, deadline: float) -> None:
        self._response = response
        self._timeouts = timeouts
        self._deadline = deadline
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    def _budget(self, step: float) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("The upstream provider did not finish in time.")
        return min(step, remaining)

    async def read(self) -> bytes:
        with map_network_errors():
            async with asyncio.timeout(self._budget(self._timeouts.between_chunks)):
                return await self._response.read()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Yield bytes as they arrive; a silence longer than `between_chunks` is a timeout."""
        content = self._response.content
        with map_network_errors():
            while True:
                async with asyncio.timeout(self._budget(self._timeouts.between_chunks)):
                    chunk = await content.readany()
                if not chunk:
                    if not content.is_eof():
                        continue
                    # A connection cut mid-body also ends in EOF here; aiohttp records it as an exception.
                    if content.exception() is not None:
                        raise UpstreamConnectError("The upstream provider closed the stream early.")
                    return
                yield chunk

    def close(self) -> None:
        """Drop the connection: cancels the upstream generation when the body was not fully read."""
        if not self._response.closed:
            self._response.close()

    def release(self) -> None:
        self._response.release()


class UpstreamClient:
    """One pooled client per process, shared by every provider."""

    def __init__(self, *, connection_limit: int = 1000) -> None:
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest, timeouts: TimeoutSettings) -> UpstreamResponse:
        """Send and wait for the response headers (bounded by `connect` + `first_byte` and `total`)."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        deadline = time.monotonic() + timeouts.total
        with map_network_errors():
            async with asyncio.timeout(min(timeouts.connect + timeouts.first_byte, timeouts.total)):
                response = await self._session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
                )
        return UpstreamResponse(response, timeouts, deadline)
