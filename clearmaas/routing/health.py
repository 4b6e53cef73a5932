"""Per-deployment health: a circuit breaker fed by each attempt's outcome, and the order in which to try one
provider's deployments (weighted, cooling ones avoided).

A deployment that answers 429, 5xx, 408, 401/403 (its key is refused), a quota or billing error, a timeout or a
connection failure cools down: `cooldown` seconds the first time (longer if a 429 says Retry-After), doubling
each time a probe fails, up to `cooldown_max`. When a cooldown ends the deployment is half-open: one request
probes it (it is tried first); success closes it, failure opens it again for twice as long. Everything here is
process memory; with `redis_url`, each process publishes the cooldowns it starts to a Redis key with a TTL and
adopts other processes' cooldowns in a background pass, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from clearmaas.errors import GatewayError, UpstreamConnectError, UpstreamHTTPError, UpstreamTimeout
from clearmaas.providers.base import Deployment
from clearmaas.providers.registry import ProviderRuntime

__all__ = ["Health", "trips_breaker"]

log = logging.getLogger("clearmaas.routing")

# Statuses that say this deployment (its key, its quota, its host) is the problem rather than the request.
_BREAKER_STATUSES = frozenset({401, 402, 403, 408, 429})
# Quota and billing refusals that arrive as a plain 400, e.g. Anthropic's "Your credit balance is too low",
# OpenAI's `insufficient_quota`, DeepSeek's 402 "Insufficient Balance".
_QUOTA_MARKERS = (
    "insufficient_quota",
    "exceeded your current quota",
    "exceeded_current_quota",
    "credit balance",
    "insufficient balance",
    "billing",
)


def trips_breaker(error: GatewayError) -> bool:
    """Whether `error` from one attempt should cool its deployment down."""
    if isinstance(error, (UpstreamTimeout, UpstreamConnectError)):
        return True
    if not isinstance(error, UpstreamHTTPError):
        return False
    status = error.upstream_status
    if status >= 500 or status in _BREAKER_STATUSES:
        return True
    said = " ".join(filter(None, (error.upstream_code, error.upstream_type, error.message))).casefold()
    return any(marker in said for marker in _QUOTA_MARKERS)


@dataclass(slots=True)
class _State:
    trips: int = 0  # consecutive times the breaker opened (reset by a success)
    open_until: float = 0.0  # monotonic end of the cooldown; 0 = closed
    probe_at: float | None = None  # when a half-open probe was handed out


class Health:
    """Breaker state of every deployment of every provider, by provider id and deployment position."""

    def __init__(
        self,
        providers: Mapping[str, ProviderRuntime] | None = None,
        *,
        cooldown: float = 5.0,
        cooldown_max: float = 300.0,
        probe_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "clearmaas:cooldown:",
        refresh_interval: float = 1.0,
    ) -> None:
        self._cooldown = cooldown
        self._cooldown_max = max(cooldown, cooldown_max)
        self._probe_timeout = probe_timeout
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._states: dict[str, list[_State]] = {}
        for provider in (providers or {}).values():
            self._states_of(provider)
        self._redis_url = redis_url
        self._prefix = redis_prefix
        self._refresh_interval = refresh_interval
        self._redis: Any = None
        self._pending: dict[str, tuple[float, int] | None] = {}  # Redis key -> (wall end, trips), None = clear
        self._task: asyncio.Task[None] | None = None

    def _states_of(self, provider: ProviderRuntime) -> list[_State]:
        states = self._states.get(provider.id)
        if states is None or len(states) != len(provider.deployments):
            states = self._states[provider.id] = [_State() for _ in provider.deployments]
        return states

    def _probe_due(self, state: _State, now: float) -> bool:
        return now >= state.open_until and (state.probe_at is None or now - state.probe_at >= self._probe_timeout)

    def order(self, provider: ProviderRuntime) -> list[Deployment]:
        """The deployments to try, in order: a half-open one due for its probe first (at most one), then the
        closed ones in weighted random order. When every deployment is cooling they all come back, soonest to
        recover first, as a last resort: a request with nowhere else to go is better tried than refused."""
        deployments = provider.deployments
        states = self._states_of(provider)
        now = self._clock()
        if len(deployments) == 1:
            state = states[0]
            if state.open_until and self._probe_due(state, now):
                state.probe_at = now
            return list(deployments)
        probe: list[Deployment] = []
        closed: list[tuple[float, Deployment]] = []
        cooling: list[tuple[float, int, Deployment]] = []
        for i, (deployment, state) in enumerate(zip(deployments, states, strict=True)):
            if not state.open_until:
                # Efraimidis-Spirakis: sorting by u ** (1 / weight) draws without replacement by weight.
                closed.append((self._rng.random() ** (1.0 / deployment.weight), deployment))
            elif not probe and self._probe_due(state, now):
                state.probe_at = now
                probe.append(deployment)
            else:
                cooling.append((state.open_until, i, deployment))
        closed.sort(key=lambda pair: pair[0], reverse=True)
        found = probe + [deployment for _, deployment in closed]
        return found or [deployment for _, _, deployment in sorted(cooling, key=lambda t: (t[0], t[1]))]

    def live(self, provider: ProviderRuntime) -> bool:
        """Whether some deployment is closed or due for a probe (nothing is claimed)."""
        now = self._clock()
        return any(not s.open_until or self._probe_due(s, now) for s in self._states_of(provider))

    def cooling(self, provider: ProviderRuntime, deployment: Deployment) -> bool:
        """Whether the deployment is open (its cooldown has not ended)."""
        state = self._state(provider, deployment)
        return state is not None and self._clock() < state.open_until

    def _state(self, provider: ProviderRuntime, deployment: Deployment) -> _State | None:
        states = self._states_of(provider)
        return next((s for d, s in zip(provider.deployments, states, strict=True) if d == deployment), None)

    def record(self, provider: ProviderRuntime, deployment: Deployment, *, error: GatewayError | None) -> None:
        """Feed one attempt's outcome to the breaker: None (or an error that is the request's fault) closes it."""
        state = self._state(provider, deployment)
        if state is None:
            return
        now = self._clock()
        if error is None or not trips_breaker(error):
            if state.open_until:
                self._publish(provider, deployment, None)
            state.trips, state.open_until, state.probe_at = 0, 0.0, None
            return
        if state.open_until and now < state.open_until:
            return  # still cooling: one outage seen by many requests at once counts once
        state.trips += 1
        seconds = min(self._cooldown * 2 ** (state.trips - 1), self._cooldown_max)
        if error.retry_after and isinstance(error, UpstreamHTTPError) and error.upstream_status == 429:
            seconds = max(seconds, min(float(error.retry_after), self._cooldown_max))
        state.open_until, state.probe_at = now + seconds, None
        log.warning(
            "provider %s deployment %s cools down for %.0f s after %s",
            provider.id,
            deployment.name,
            seconds,
            type(error).__name__,
        )
        self._publish(provider, deployment, (self._wall() + seconds, state.trips))

    # Sharing through Redis ----------------------------------------------------------------------------------

    def _key(self, provider_id: str, index: int) -> str:
        return f"{self._prefix}{provider_id}:{index}"

    def _publish(self, provider: ProviderRuntime, deployment: Deployment, value: tuple[float, int] | None) -> None:
        if self._redis_url is None:
            return
        index = next((i for i, d in enumerate(provider.deployments) if d == deployment), None)
        if index is not None:
            self._pending[self._key(provider.id, index)] = value

    async def sync(self) -> None:
        """One exchange with Redis: publish the cooldowns started or ended here, adopt everyone else's."""
        if self._redis is None:
            return
        pending, self._pending = self._pending, {}
        try:
            await self._publish_pending(pending)
        except Exception:
            self._pending = {**pending, **self._pending}  # newer news about a key wins; retried next pass
            raise
        await self._adopt()

    async def _publish_pending(self, pending: dict[str, tuple[float, int] | None]) -> None:
        if not pending:
            return
        wall = self._wall()
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, value in pending.items():
                if value is None:
                    pipe.delete(key)
                elif value[0] > wall:
                    payload = orjson.dumps({"until": value[0], "trips": value[1]})
                    pipe.set(key, payload, px=int((value[0] - wall) * 1000) + 1)
            await pipe.execute()

    async def _adopt(self) -> None:
        keys = [(pid, i) for pid, states in self._states.items() for i in range(len(states))]
        if not keys:
            return
        values = await self._redis.mget([self._key(pid, i) for pid, i in keys])
        wall, now = self._wall(), self._clock()
        for (pid, i), raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            try:
                shared = orjson.loads(raw)
                until, trips = float(shared["until"]), int(shared["trips"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            state = self._states[pid][i]
            local_until = now + (until - wall)
            # Half a second of slack: our own cooldown read back (clocks converted twice) is not news.
            if until > wall and local_until > state.open_until + 0.5:
                state.open_until, state.trips, state.probe_at = local_until, max(state.trips, trips), None

    async def start(self) -> None:
        if self._redis_url is None or self._task is not None:
            return
        import redis.asyncio as aioredis  # only when configured: most installs run one process without Redis

        self._redis = aioredis.from_url(self._redis_url)
        self._task = asyncio.create_task(self._sync_forever(), name="clearmaas-health-sync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client = self._redis
        if client is not None:
            with contextlib.suppress(Exception):
                await self._publish_pending(self._pending)  # the cooldowns of the last second still count
            self._redis = None
            await client.aclose()

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.sync()
            except Exception:
                # Redis may be briefly away; local state keeps working and pending cooldowns wait a pass.
                log.warning("sharing cooldowns through Redis failed", exc_info=True)
