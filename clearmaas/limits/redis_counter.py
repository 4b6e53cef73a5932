"""Request and token counters in Redis, shared by every gateway process, with most admissions decided from
an allowance each process leases ahead: Redis is asked only when the allowance runs out, and by a
background tick, so a busy workspace costs no Redis round-trip per request.

Each workspace is one hash `{prefix}{workspace_id}` holding the window index `w` and its counts `r` and
`t`; it expires a second after its window ends. The counts are what the processes together have *leased*:
requests admitted plus allowance handed out and not yet used or given back, so N processes together never
admit more than the limit. The lease script checks and counts a request the way `counters.refused_by`
does and hands out extra allowance of at most 1/16 of what the window has left, which keeps a small limit
exact (its allowance is one request at a time) and a large one almost free of round-trips.

The window is taken from the Redis server's clock (`TIME`), so replicas with skewed clocks still agree on
where a minute begins. One key per call keeps the scripts valid on Redis Cluster. Scripts that call TIME
and then write need effects replication, the default since Redis 5.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, RedisError

from clearmaas.limits.allowance import Allowance, Back, Plan
from clearmaas.limits.counters import NOT_COUNTED, WINDOW_SECONDS, Admission, refusal
from clearmaas.limits.store import Limits
from clearmaas.store.redis_client import bounded_client
from clearmaas.store.redis_tick import NotSent, TickRider
from clearmaas.store.refresh import RefreshLoop

__all__ = ["DEFAULT_KEY_PREFIX", "DEFAULT_TICK", "RedisCounter"]

log = logging.getLogger("clearmaas.limits")

DEFAULT_KEY_PREFIX: Final = "clearmaas:ratelimit:"
DEFAULT_TICK: Final = 0.05

# Every this many ticks the tick looks at every workspace, not only the active ones, to drop the state of
# ended windows.
_SWEEP_TICKS: Final = 100

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

# ARGV: 1 window length in ms, 2 rpm limit (-1: none), 3 tpm limit (-1: none), 4 this request's tokens (-1:
# no request: a top-up or give-back), 5 the window of the allowance handed back, 6 its requests and 7 its
# tokens (negative: spent beyond it), 8 units of extra allowance wanted, 9 tokens per unit.
# Returns {admitted 1|0, window, ms until the window resets, 0 | 1 (rpm refused) | 2 (tpm refused), units}.
# The refusal rule is `counters.refused_by`'s, including its exception for an oversized first request.
_LEASE: Final = (
    _WINDOW
    + """
local rpm, tpm, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local back_r, back_t = tonumber(ARGV[6]), tonumber(ARGV[7])
if tonumber(ARGV[5]) ~= window then
  -- An ended window's unused allowance is void; what was spent beyond it is spent now.
  back_r, back_t = math.min(back_r, 0), math.min(back_t, 0)
end
requests = math.max(0, requests - back_r)
tokens = math.max(0, tokens - back_t)
local refused = 0
if cost >= 0 then
  if rpm >= 0 and requests + 1 > rpm then
    refused = 1
  elseif tpm >= 0 and tokens > 0 and tokens + cost > tpm then
    refused = 2
  else
    requests, tokens = requests + 1, tokens + cost
  end
end
local units, per = 0, tonumber(ARGV[9])
if refused == 0 then
  -- At most 1/16 of what is left: a small remainder is leased one request at a time, so it stays exact.
  units = tonumber(ARGV[8])
  if rpm >= 0 then
    units = math.min(units, math.floor(math.max(0, rpm - requests) / 16))
  end
  if tpm >= 0 and per > 0 then
    units = math.min(units, math.floor(math.floor(math.max(0, tpm - tokens) / 16) / per))
  end
  requests, tokens = requests + units, tokens + units * per
end
redis.call('HSET', KEYS[1], 'w', window, 'r', requests, 't', tokens)
redis.call('PEXPIRE', KEYS[1], reset_ms + 1000)
if refused == 0 then
  return {1, window, reset_ms, 0, units}
end
return {0, window, reset_ms, refused, 0}
"""
)

# ARGV: window length in ms. Returns {window, requests, tokens} of the current window.
_USAGE: Final = _WINDOW + "return {window, requests, tokens}\n"

_REFUSED: Final[dict[int, Literal["rpm", "tpm"]]] = {1: "rpm", 2: "tpm"}


class RedisCounter:
    """Counters in Redis, admitting from a leased local allowance. `start` launches the tick that settles
    with Redis every `tick` seconds; without it nothing is topped up, pushed or given back before `close`
    (admissions still lease what they need, so the limits hold either way).

    When Redis cannot be reached the counter admits (fails open) for `backoff` seconds before trying
    again: a rate limiter must not turn a Redis outage into a gateway outage.
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        window_seconds: int = WINDOW_SECONDS,
        backoff: float = 1.0,
        tick: float = DEFAULT_TICK,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._window_seconds = window_seconds
        self._window_ms = window_seconds * 1000
        self._backoff = backoff
        self._tick_seconds = tick
        self._down_until = 0.0
        self._lease = client.register_script(_LEASE)
        self._usage = client.register_script(_USAGE)
        self._loaded = False  # whether the tick's pipelines may EVALSHA the lease script without loading it
        self._states: dict[str, Allowance] = {}
        # The workspaces the next tick looks at: those with allowance, recent admissions or something owed.
        # The others wait for the sweep, so a tick costs nothing per quiet workspace.
        self._active: set[str] = set()
        self._ticks = 0
        self._loop = RefreshLoop(self._tick, interval=tick, name="rate-limit-tick", what="rate-limit allowance")
        self._carried = False  # another component's tick runs `prepare` (`ride`): no loop of its own
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 64, **options: Any) -> RedisCounter:
        """A counter with its own bounded pool (`store/redis_client.py`: a burst queues for a connection rather
        than being admitted uncounted) and short timeouts, since an admission may wait on it."""
        return cls(bounded_client(url, socket_timeout=1.0, max_connections=max_connections), **options)

    def key(self, workspace_id: str) -> str:
        return self._prefix + workspace_id

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if self._available():
            log.warning("rate limiting is off for %.0f s: Redis failed: %s", self._backoff, exc)
        self._down_until = time.monotonic() + self._backoff

    async def start(self) -> None:
        """Settle with Redis every tick in the background until `close` (on the carrier's tick if `ride`)."""
        if not self._carried:
            self._loop.start()

    def ride(self) -> TickRider:
        """Let another component's tick carry this counter's settling (`store/redis_tick.py`): one round-trip
        a tick for both. Call before `start`."""
        self._carried = True
        return self

    def admit_now(self, workspace_id: str, limits: Limits, tokens: int) -> Admission | None:
        """`admit` decided in this process (`LocalCounter`): from the allowance, by a refusal seen within
        the last tick, or uncounted while Redis is down; None when Redis must be asked."""
        state = self._states.get(workspace_id)
        now = time.monotonic()
        if state is not None:
            if state.take(limits, tokens, now):
                return Admission(state.window, tokens)
            which = state.cached_refusal(limits, tokens, now)
            if which is not None:
                raise refusal(limits, which, state.ends_at - now, window_seconds=self._window_seconds)
        return None if now >= self._down_until else NOT_COUNTED

    async def admit(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        admission = self.admit_now(workspace_id, limits, tokens)
        if admission is not None:
            return admission
        return await self._admit_leasing(workspace_id, limits, tokens)

    async def _admit_leasing(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        while True:
            state = self._state(workspace_id)
            now = time.monotonic()
            if state.take(limits, tokens, now):
                return Admission(state.window, tokens)
            if not self._available():
                return NOT_COUNTED
            which = state.cached_refusal(limits, tokens, now)
            if which is not None:
                raise refusal(limits, which, state.ends_at - now, window_seconds=self._window_seconds)
            if state.busy is None:
                break
            # One call per workspace in flight: wait for it, then look at the allowance again.
            state.waiting += 1
            try:
                await state.busy.wait()
            finally:
                state.waiting -= 1
        return await self._lease_for(workspace_id, state, limits, tokens)

    async def _lease_for(self, workspace_id: str, state: Allowance, limits: Limits, tokens: int) -> Admission:
        """Ask Redis for this request and for `Allowance.wanted` more, handing back what is left."""
        done = state.busy = asyncio.Event()
        units, per = state.wanted(tokens)
        sent = time.monotonic()
        back = state.hand_back(sent, everything=True)
        try:
            try:
                admitted, window, reset_ms, which, granted = await self._lease(
                    keys=[self.key(workspace_id)], args=self._args(limits, tokens, back, units, per)
                )
            except (RedisError, OSError) as exc:
                state.restore(back)
                self._failed(exc)
                return NOT_COUNTED
            self._loaded = True
            window = int(window)
            state.settled(
                window, sent + reset_ms / 1000, limits, back, cost=tokens if admitted else None, units=granted, per=per
            )
            if admitted:
                state.counted(tokens)
                return Admission(window=window, tokens=tokens)
            state.refuse(_REFUSED[which], tokens, time.monotonic(), hold=self._tick_seconds)
            raise refusal(limits, _REFUSED[which], reset_ms / 1000, window_seconds=self._window_seconds)
        finally:
            state.busy = None
            done.set()

    def _args(self, limits: Limits | None, cost: int, back: Back, units: int, per: int) -> tuple[int, ...]:
        rpm = -1 if limits is None or limits.rpm is None else limits.rpm
        tpm = -1 if limits is None or limits.tpm is None else limits.tpm
        return (self._window_ms, rpm, tpm, cost, back.window, back.requests, back.tokens, units, per)

    def adjust_now(self, workspace_id: str, delta: int, window: int | None) -> bool:
        """Always in this process: tokens beyond the estimate come out of the allowance (owed when it runs
        short, settled by the next lease or tick); unused estimate goes back into it while its window is
        current. Returns True (`LocalCounter`)."""
        if delta == 0 or (delta < 0 and workspace_id not in self._states):
            return True
        self._state(workspace_id).use(delta, window, time.monotonic())
        return True

    async def adjust(self, workspace_id: str, delta: int, *, window: int | None) -> None:
        self.adjust_now(workspace_id, delta, window=window)

    async def usage(self, workspace_id: str) -> tuple[int, int]:
        """(requests, tokens) counted in the current window (for tests and diagnostics): the shared counts,
        which include allowance other processes have leased and not used yet, less this counter's own
        unused allowance and plus what it owes but has not settled yet."""
        state = self._state(workspace_id)
        while state.busy is not None:
            await state.busy.wait()
        # Hold the workspace's one call slot so no lease or tick changes the counts under the reading.
        done = state.busy = asyncio.Event()
        try:
            window, requests, tokens = await self._usage(keys=[self.key(workspace_id)], args=(self._window_ms,))
        finally:
            state.busy = None
            done.set()
        unused_requests, unused_tokens = state.unsettled(int(window), time.monotonic())
        return int(requests) - unused_requests, int(tokens) - unused_tokens

    def allowance(self, workspace_id: str) -> tuple[int, int]:
        """(requests, tokens) this counter holds of the current window unused (for tests and diagnostics);
        negative: used beyond it and not settled yet."""
        state = self._states.get(workspace_id)
        if state is None or not state.live(time.monotonic()):
            return 0, 0
        return state.requests, state.tokens

    def _state(self, workspace_id: str) -> Allowance:
        """The workspace's allowance, created if needed, marked for the next tick to look at."""
        self._active.add(workspace_id)
        state = self._states.get(workspace_id)
        if state is None:
            state = self._states[workspace_id] = Allowance()
        return state

    async def _tick(self) -> None:
        """Settle every workspace that needs it in one pipelined round-trip (when no other tick carries it)."""
        stage = await self.prepare()
        if stage is not None:
            await self._send(stage)

    async def prepare(self) -> _Settlement | None:
        """This tick's settling (`store/redis_tick.TickRider`): top up busy workspaces, give back idle ones,
        push what is owed; None when there is nothing to do, Redis is backing off or the counter has closed."""
        if self._closed:
            return None
        now = time.monotonic()
        self._ticks += 1
        visit = list(self._states if self._ticks % _SWEEP_TICKS == 0 else self._active)
        plans: list[tuple[str, Allowance, Plan]] = []
        for workspace_id in visit:
            state = self._states.get(workspace_id)
            if state is None:
                self._active.discard(workspace_id)
                continue
            state.rotate(now)
            plan = None if state.busy is not None else state.plan(now)
            if plan is not None:
                plans.append((workspace_id, state, plan))
                self._active.add(workspace_id)
            elif state.disposable(now):
                del self._states[workspace_id]
                self._active.discard(workspace_id)
            elif state.quiet():
                # Kept until its window ends, so unused estimate can still come back to it.
                self._active.discard(workspace_id)
            else:
                self._active.add(workspace_id)
        if not plans or not self._available():
            return None
        failure = await self._load_script()
        if failure is not None:
            self._failed(failure)
            return None
        return _Settlement(self, plans)

    async def _load_script(self) -> Exception | None:
        """Load the lease script unless Redis has it already, so pipelines may EVALSHA it; the error if not."""
        if not self._loaded:
            try:
                await self._client.script_load(_LEASE)
            except (RedisError, OSError) as exc:
                return exc
            self._loaded = True
        return None

    async def _settle(self, plans: list[tuple[str, Allowance, Plan]]) -> Exception | None:
        """One pipeline of lease calls without a request of their own; returns the error if it failed."""
        failure = await self._load_script()
        if failure is not None:
            return failure
        stage = _Settlement(self, plans, report=False)
        await self._send(stage)
        return stage.failure

    async def _send(self, stage: _Settlement) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            stage.queue(pipe)
            replies: Sequence[Any] | BaseException = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            replies = exc
        except BaseException as exc:  # cancelled mid-call: the allowance handed back must not stay busy
            stage.settle(exc)
            raise
        stage.settle(replies)

    async def close(self) -> None:
        """Stop the tick, give back what is unused of current windows and push what is owed (best effort,
        within two seconds), and close the client."""
        await self._loop.stop()
        self._closed = True  # a carrier's tick stages nothing from now on
        plans = [
            (workspace_id, state, Plan(everything=True, units=0, per=0))
            for workspace_id, state in self._states.items()
            if state.busy is None and (state.requests != 0 or state.tokens != 0)
        ]
        if plans and self._available():
            try:
                async with asyncio.timeout(2.0):
                    failure = await self._settle(plans)
            except TimeoutError as exc:
                failure = exc
            if failure is not None:
                log.info("rate-limit allowance not given back on close: %s", failure)
        self._states.clear()
        self._active.clear()
        await self._client.aclose()


class _Settlement:
    """One tick's lease calls without a request of their own (`store/redis_tick.TickStage`): staged when made
    (the allowance handed back and marked busy), settled once with Redis's replies."""

    def __init__(self, counter: RedisCounter, plans: list[tuple[str, Allowance, Plan]], *, report: bool = True) -> None:
        self._counter = counter
        self._report = report  # tell the counter of a failure (it backs off), or leave it in `failure`
        self.failure: Exception | None = None
        self._sent = sent = time.monotonic()
        self._calls: list[tuple[str, Allowance, Back, Plan, Limits | None, asyncio.Event]] = []
        for workspace_id, state, plan in plans:
            event = state.busy = asyncio.Event()
            back = state.hand_back(sent, everything=plan.everything)
            self._calls.append((workspace_id, state, back, plan, state.limits, event))

    def queue(self, pipe: Pipeline) -> None:
        counter = self._counter
        sha = counter._lease.sha
        for workspace_id, _, back, plan, limits, _ in self._calls:
            pipe.evalsha(sha, 1, counter.key(workspace_id), *counter._args(limits, -1, back, plan.units, plan.per))

    def settle(self, replies: Sequence[Any] | BaseException) -> None:
        counter = self._counter
        if isinstance(replies, BaseException):
            replies = [replies] * len(self._calls)
        try:
            for (_, state, back, plan, limits, _), reply in zip(self._calls, replies, strict=True):
                if isinstance(reply, BaseException):
                    state.restore(back)
                    if isinstance(reply, NoScriptError):
                        counter._loaded = False  # Redis restarted or flushed its scripts: load it next time
                    elif isinstance(reply, Exception) and not isinstance(reply, NotSent):
                        self.failure = self.failure or reply
                    continue
                _, window, reset_ms, _, granted = reply
                state.settled(
                    int(window), self._sent + reset_ms / 1000, limits, back, cost=None, units=granted, per=plan.per
                )
        finally:
            for _, state, _, _, _, event in self._calls:
                state.busy = None
                event.set()
        if self.failure is not None and self._report:
            counter._failed(self.failure)
