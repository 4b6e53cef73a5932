"""Request and token counters in Redis, shared by every gateway process: one Lua script per admission
checks both limits and counts both or neither, so N processes together admit at most the limit.

Each workspace is one hash `{prefix}{workspace_id}` holding the window index `w` and its counts `r` and
`t`; it expires a second after its window ends. The window is taken from the Redis server's clock
(`TIME`), so replicas with skewed clocks still agree on where a minute begins. One key per call keeps the
scripts valid on Redis Cluster. Scripts that call TIME and then write need effects replication, the default
since Redis 5.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from clearmaas.limits.counters import NOT_COUNTED, WINDOW_SECONDS, Admission, refusal
from clearmaas.limits.store import Limits

__all__ = ["DEFAULT_KEY_PREFIX", "RedisCounter"]

log = logging.getLogger("clearmaas.limits")

DEFAULT_KEY_PREFIX: Final = "clearmaas:ratelimit:"

# The head of every script: the server's time, the current window, and the hash's counts for it.
_WINDOW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local length_ms = tonumber(ARGV[1])
local window = math.floor(now_ms / length_ms)
local reset_ms = (window + 1) * length_ms - now_ms
local stored = redis.call('HMGET', KEYS[1], 'w', 'r', 't')
local requests, tokens = 0, 0
if tonumber(stored[1]) == window then
  requests = tonumber(stored[2]) or 0
  tokens = tonumber(stored[3]) or 0
end
"""

# ARGV: window length in ms, rpm limit (-1: none), tpm limit (-1: none), this request's tokens.
# Returns {admitted 1|0, window, ms until the window resets, 0 | 1 (rpm refused) | 2 (tpm refused)}.
# The refusal rule is `counters.refused_by`'s, including its exception for an oversized first request.
_ADMIT: Final = (
    _WINDOW
    + """
local rpm, tpm, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if rpm >= 0 and requests + 1 > rpm then
  return {0, window, reset_ms, 1}
end
if tpm >= 0 and tokens > 0 and tokens + cost > tpm then
  return {0, window, reset_ms, 2}
end
redis.call('HSET', KEYS[1], 'w', window, 'r', requests + 1, 't', tokens + cost)
redis.call('PEXPIRE', KEYS[1], reset_ms + 1000)
return {1, window, reset_ms, 0}
"""
)

# ARGV: window length in ms, token delta, the admission's window (-1: unknown). Returns the window's tokens.
_ADJUST: Final = (
    _WINDOW
    + """
local delta, admitted_in = tonumber(ARGV[2]), tonumber(ARGV[3])
if delta < 0 and (tonumber(stored[1]) ~= window or (admitted_in >= 0 and admitted_in ~= window)) then
  return tokens
end
tokens = math.max(0, tokens + delta)
redis.call('HSET', KEYS[1], 'w', window, 'r', requests, 't', tokens)
redis.call('PEXPIRE', KEYS[1], reset_ms + 1000)
return tokens
"""
)

# ARGV: window length in ms. Returns {requests, tokens} of the current window.
_USAGE: Final = _WINDOW + "return {requests, tokens}\n"


class RedisCounter:
    """Counters in Redis. When Redis cannot be reached the counter admits (fails open) for `backoff`
    seconds before trying again: a rate limiter must not turn a Redis outage into a gateway outage."""

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        window_seconds: int = WINDOW_SECONDS,
        backoff: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._window_seconds = window_seconds
        self._window_ms = window_seconds * 1000
        self._backoff = backoff
        self._down_until = 0.0
        self._admit = client.register_script(_ADMIT)
        self._adjust = client.register_script(_ADJUST)
        self._usage = client.register_script(_USAGE)

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 64, **options: Any) -> RedisCounter:
        """A counter with its own connection pool and short timeouts, since every admission waits on it.

        The pool blocks (up to a second) instead of failing when all its connections are busy: a burst
        of requests queues for a connection for microseconds rather than being admitted uncounted.
        """
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=1.0,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=30,
        )
        return cls(Redis.from_pool(pool), **options)

    def key(self, workspace_id: str) -> str:
        return self._prefix + workspace_id

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if self._available():
            log.warning("rate limiting is off for %.0f s: Redis failed: %s", self._backoff, exc)
        self._down_until = time.monotonic() + self._backoff

    async def admit(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        if not self._available():
            return NOT_COUNTED
        args = (
            self._window_ms,
            -1 if limits.rpm is None else limits.rpm,
            -1 if limits.tpm is None else limits.tpm,
            tokens,
        )
        try:
            admitted, window, reset_ms, which = await self._admit(keys=[self.key(workspace_id)], args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return NOT_COUNTED
        if not admitted:
            raise refusal(limits, "rpm" if which == 1 else "tpm", reset_ms / 1000, window_seconds=self._window_seconds)
        return Admission(window=int(window), tokens=tokens)

    async def adjust(self, workspace_id: str, delta: int, *, window: int | None) -> None:
        if delta == 0 or not self._available():
            return
        args = (self._window_ms, delta, -1 if window is None else window)
        try:
            await self._adjust(keys=[self.key(workspace_id)], args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def usage(self, workspace_id: str) -> tuple[int, int]:
        """(requests, tokens) counted in the current window (for tests and diagnostics)."""
        requests, tokens = await self._usage(keys=[self.key(workspace_id)], args=(self._window_ms,))
        return int(requests), int(tokens)

    async def close(self) -> None:
        await self._client.aclose()
