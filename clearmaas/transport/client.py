"""The pooled upstream HTTP client, and the one place network failures become gateway errors.

aiohttp is used for its C HTTP parser and connection pool: the client side of the hot path is a large
share of a relay's cost (see the profile in bench/README.md). Timeouts are aiohttp's own (connect, socket
read, total), built once per provider; only streams add a per-chunk timer, for the gap between chunks.
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
        self._client_timeouts: dict[TimeoutSettings, aiohttp.ClientTimeout] = {}

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
        client_timeout = self._client_timeouts.get(timeouts)
        if client_timeout is None:
            # sock_read bounds every silence, the wait for the first byte included; total bounds the whole
            # exchange. A first-byte limit tighter than the chunk gap gets its own timer below.
            client_timeout = aiohttp.ClientTimeout(
                total=timeouts.total,
                sock_connect=timeouts.connect,
                sock_read=max(timeouts.first_byte, timeouts.between_chunks),
            )
            self._client_timeouts[timeouts] = client_timeout
        with map_network_errors():
            if timeouts.first_byte < timeouts.between_chunks:
                async with asyncio.timeout(timeouts.first_byte):
                    response = await self._send(request, client_timeout)
            else:
                response = await self._send(request, client_timeout)
        return UpstreamResponse(response, timeouts, deadline)

    async def _send(self, request: UpstreamRequest, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        assert self._session is not None
        return await self._session.request(
            request.method, request.url, data=request.body, headers=request.headers, timeout=timeout
        )
