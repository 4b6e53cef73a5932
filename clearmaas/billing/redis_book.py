"""The balance book shared by replicas through Redis, without a Redis round-trip per request.

Each replica holds a credit lease per (workspace, key) it serves (`lease.py`): reserved credit in Redis that
its calls reserve from in memory. Settling is local too: the cost is owed to the lease. A tick (every 50 ms)
pushes, for every lease with something to do, in one pipelined round-trip: the costs owed (charged to the
shared balance and the key's spend), headroom given back by an idle lease, or more asked for by a busy one.
A call that does not fit in its lease's headroom pushes at once and waits for the answer, so a workspace
that is not busy reserves exactly each call's bound in Redis, as if there were no lease.

Guarantees, across any number of replicas:
- A call is served only out of credit Redis has set aside for its replica: balances and key credits are
  never overspent except by overruns (a call costing more than its bound), as with one process.
- Costs reach the shared balance within a tick; a clean shutdown pushes everything and gives every lease
  back. A crashed replica's leases are released by the others once its heartbeat stops; what it settled in
  its last tick and had not pushed is missing from the live balance (never from the database's, which the
  usage log writes) until the next restart re-reads it — see docs/billing.md.
- Extra headroom comes out of 1/16 of what remains, and a replica refused while others hold reservations
  squeezes the workspace (nobody takes extra; idle leases are given back within a tick) and asks again, so
  credit held by one replica's lease does not turn away another replica's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine

from clearmaas.billing.book import Charge, Refusal, Reservation
from clearmaas.billing.lease import Lease, Push, PushResult
from clearmaas.billing.redis_state import (
    APPLY_CREDIT,
    DEFAULT_PREFIX,
    EXPIRE,
    INIT_BALANCE,
    PUSH,
    RedisKeys,
    as_int,
    as_text,
    read_credits_since,
    read_snapshot,
    read_spent,
    workspace_ids,
)
from clearmaas.store.redis_client import bounded_client
from clearmaas.store.redis_tick import Carried, TickRider
from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import new_id, utc_now

__all__ = ["DEFAULT_PREFIX", "BookUnavailable", "RedisBook", "RedisKeys"]

log = logging.getLogger("clearmaas.billing")

_RETRYABLE: Final = (RedisConnectionError, RedisTimeoutError)


class BookUnavailable(RedisError):
    """A push could not reach Redis; the request that needed it is refused with a 503."""


class RedisBook:
    """Leases in Redis, reservations and settlements in memory."""

    def __init__(
        self,
        engine: Engine,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        tick: float = 0.05,
        heartbeat_ttl: float = 15.0,
        housekeeping_interval: float = 1.0,
        lease_ttl: float = 1800.0,
        keep_expired: int = 86_400,
        extra_divisor: int = 16,
        squeeze_ms: int = 500,
        refusal_retries: int = 3,
        credit_lookback: timedelta = timedelta(days=7),
        credit_overlap: timedelta = timedelta(seconds=60),
    ) -> None:
        self._engine = engine
        self._client = client
        self.keys = RedisKeys(prefix)
        self.owner = new_id("rep")
        self._tick = tick
        self._heartbeat_ttl = heartbeat_ttl
        self._interval = housekeeping_interval
        self._lease_ttl = lease_ttl
        self._keep_expired = keep_expired
        self._divisor = extra_divisor
        self._squeeze_ms = squeeze_ms
        self._refusal_retries = refusal_retries
        self._overlap = credit_overlap
        self._credits_since = utc_now() - credit_lookback
        self._push = client.register_script(PUSH)
        self._expire = client.register_script(EXPIRE)
        self._init_balance = client.register_script(INIT_BALANCE)
        self._apply_credit = client.register_script(APPLY_CREDIT)
        self._leases: dict[tuple[str, str], Lease] = {}
        self._sequence = itertools.count(1)
        self._active: dict[str, tuple[Reservation, Lease, float]] = {}  # id -> (reservation, lease, deadline)
        # Released locally past their deadline, still charged if settled late: id -> (reservation, when).
        self._expired: dict[str, tuple[Reservation, float]] = {}
        self._loop = RefreshLoop(self._tick_once, interval=tick, name="billing-leases", what="credit lease")
        self._rider: TickRider | None = None  # whose settling this tick carries (`carry`)
        self._next_housekeeping = 0.0
        self._closed = False

    @classmethod
    def from_url(cls, engine: Engine, url: str, *, max_connections: int = 64, **options: Any) -> RedisBook:
        """A book with its own bounded pool (`store/redis_client.py`)."""
        return cls(engine, bounded_client(url, socket_timeout=2.0, max_connections=max_connections), **options)

    def carry(self, rider: TickRider) -> None:
        """Send `rider`'s periodic settling in this book's tick pipeline (`store/redis_tick.py`): one
        round-trip every tick for both. The rider must talk to the same Redis."""
        self._rider = rider

    # -- lifecycle ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Initialise every workspace and key absent from Redis (present ones are left alone), then start
        the tick, heartbeat and sweeper. Only absent workspaces have their ledger read."""
        known = await asyncio.to_thread(workspace_ids, self._engine)
        async with self._client.pipeline(transaction=False) as pipe:
            for ws in known:
                pipe.exists(self.keys.balance(ws))
            present = await pipe.execute()
        missing = [ws for ws, exists in zip(known, present, strict=True) if not exists]
        for start in range(0, len(missing), 500):
            snapshot = await asyncio.to_thread(read_snapshot, self._engine, missing[start : start + 500])
            await self._initialise(snapshot, {})
        spent = await asyncio.to_thread(read_spent, self._engine, None)
        await self._initialise({}, spent)
        await self.heartbeat()
        self._next_housekeeping = time.monotonic() + self._interval
        self._loop.start()

    async def close(self) -> None:
        """Push what every lease owes and give back its headroom, then leave."""
        if self._closed:
            return
        await self._loop.stop()
        try:
            for lease in self._leases.values():
                if lease.busy is not None:
                    await asyncio.shield(lease.busy)
                lease.target = lease.reserved_this_tick = 0
            await self.flush()
        except RedisError:
            log.warning("giving back the credit leases failed; the other replicas will release them", exc_info=True)
        with contextlib.suppress(RedisError, OSError):
            await self._client.delete(self.keys.alive(self.owner))
        self._closed = True
        await self._client.aclose()

    async def _initialise(self, snapshot: dict[str, tuple[int, list[int]]], spent: dict[str, int]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for ws, (balance, entries) in snapshot.items():
                await self._init_balance(
                    keys=[self.keys.balance(ws), self.keys.applied(ws)], args=[balance, *entries], client=pipe
                )
            for key_id, value in spent.items():
                pipe.set(self.keys.spent(key_id), value, nx=True)
            await pipe.execute()

    # -- per request: in memory unless the lease is short ---------------------------------------------

    def _lease(self, workspace_id: str, key_id: str) -> Lease:
        lease = self._leases.get((workspace_id, key_id))
        if lease is None:
            lease = self._leases[workspace_id, key_id] = Lease(
                workspace_id, key_id, f"lease:{self.owner}:{workspace_id}:{key_id}", self._sequence
            )
        return lease

    def take_now(self, reservation: Reservation, credit_limit_micros: int | None, deadline: float) -> bool:
        # What fits in the lease is decided here; a push to Redis (or a refusal) is `reserve`'s.
        lease = self._lease(reservation.workspace_id, reservation.key_id)
        lease.credit_limit = credit_limit_micros
        if lease.take(reservation.amount_micros):
            self._active[reservation.id] = (reservation, lease, deadline)
            return True
        return False

    async def reserve(
        self, reservation: Reservation, *, credit_limit_micros: int | None, deadline: float
    ) -> Refusal | None:
        amount = reservation.amount_micros
        retries = 0
        while True:
            # Looked up again after every wait: the tick forgets an idle lease, and a push or a take on a
            # forgotten one would hold credit in Redis that no tick ever gives back.
            lease = self._lease(reservation.workspace_id, reservation.key_id)
            lease.credit_limit = credit_limit_micros
            if lease.take(amount):
                self._active[reservation.id] = (reservation, lease, deadline)
                return None
            busy = lease.busy
            if busy is not None and not busy.done():
                # A push is on its way for this lease; look again once it has landed.
                await asyncio.shield(busy)
                continue
            result = await asyncio.shield(self._start_push(lease, amount))
            if result is None:
                raise BookUnavailable("the credit lease could not be extended")
            if result.status == 1:
                continue
            if result.others and retries < self._refusal_retries:
                # Others hold credit in this workspace, perhaps idle headroom the squeeze makes them give
                # back within a tick or two: ask once more before refusing.
                retries += 1
                await asyncio.sleep(3 * self._tick)
                continue
            return "balance" if result.status == 0 else "key_credit"

    def release(self, reservation: Reservation) -> bool:
        return self.settle(reservation, 0)

    def settle(self, reservation: Reservation, cost_micros: int) -> bool:
        held = self._active.pop(reservation.id, None)
        if held is not None:
            held[1].finish(reservation.amount_micros, cost_micros)
            return True
        if self._expired.pop(reservation.id, None) is None:
            return False
        # Released by the local sweep (it outlived its deadline): what it cost is still owed.
        self._lease(reservation.workspace_id, reservation.key_id).finish(0, cost_micros)
        return True

    def flushed(self, charges: Iterable[Charge]) -> None:
        # Charges reach Redis through the leases' pushes; committing them to the database changes nothing here.
        return None

    async def reserved_micros(self, workspace_id: str) -> int | None:
        return as_int(await self._client.get(self.keys.ws_reserved(workspace_id)))

    # -- pushes ---------------------------------------------------------------------------------------

    def _start_push(self, lease: Lease, need: int) -> asyncio.Task[PushResult | None]:
        task = asyncio.create_task(self._push_now(lease, need))
        lease.busy = task
        return task

    async def _push_now(self, lease: Lease, need: int) -> PushResult | None:
        """The hot path's push: the lease's pending one first (its reply was lost), then its own."""
        try:
            if lease.pending is not None and await self._send([lease]) is None:
                return None
            lease.pending = lease.plan(need=need)
            results = await self._send([lease])
            return None if results is None else results[0]
        finally:
            lease.busy = None

    async def flush(self, *, retarget: bool = True, carried: Carried | None = None) -> None:
        """One tick now: push every lease that owes or holds something off its target (re-aimed at the
        rate since the last tick unless `retarget` is False), with `carried` (a rider's stage) in the same
        pipeline."""
        now = time.monotonic()
        due: list[Lease] = []
        for pair, lease in list(self._leases.items()):
            if lease.busy is not None:
                continue
            if retarget:
                lease.retarget()
            if lease.pending is None:
                keepalive = lease.granted > 0 and now - lease.last_push > self._lease_ttl / 4
                if not (lease.needs_push() or keepalive):
                    if lease.idle:
                        del self._leases[pair]
                    continue
                lease.pending = lease.plan()
            due.append(lease)
        if not due:
            if carried is not None:
                # Only the rider's work: an error reaches it through `settle` (it backs off on its own).
                with contextlib.suppress(RedisError, OSError):
                    await self._pipeline([], carried)
            return
        done: asyncio.Future[PushResult | None] = asyncio.get_running_loop().create_future()
        for lease in due:
            lease.busy = done
        try:
            await self._send(due, carried)
        finally:
            for lease in due:
                lease.busy = None
            done.set_result(None)

    async def push_owed(self) -> None:
        """Push every cost settled so far (waiting for pushes in flight): the usage log calls this before
        it commits a batch, so the shared balance is charged no later than the database. After `close`,
        nothing: the client is gone, and such a late cost reaches the database through the usage log only."""
        if self._closed:
            return
        for lease in list(self._leases.values()):
            busy = lease.busy
            if lease.unpushed and busy is not None and not busy.done():
                await asyncio.shield(busy)
        await self.flush(retarget=False)

    async def _send(self, leases: Sequence[Lease], carried: Carried | None = None) -> list[PushResult] | None:
        """Send each lease's pending push in one pipeline, retried (unchanged: each applies once) while the
        connection fails; None when Redis stayed unreachable (the pushes stay pending). `carried` goes with
        the first attempt only: a failed one settles it with the error, and its rider tries again next tick."""
        for attempt in range(3):
            try:
                replies = await self._pipeline(leases, carried if attempt == 0 else None)
                break
            except _RETRYABLE:
                if attempt == 2:
                    log.warning("pushing %d credit leases to Redis failed", len(leases), exc_info=True)
                    return None
                await asyncio.sleep(0.05 * (attempt + 1))
        results: list[PushResult] = []
        missing: list[Lease] = []
        now = time.monotonic()
        for lease, reply in zip(leases, replies, strict=True):
            status, amount, squeezed, others = (int(v) for v in reply)
            result = PushResult(status, amount, bool(squeezed), bool(others))
            if status < 0:
                missing.append(lease)  # nothing was applied: the push stays pending
            else:
                lease.confirm(result)
                lease.pending = None
                lease.last_push = now
            results.append(result)
        if missing:
            await self._initialise_missing(missing)
            return await self._send(leases) if len(leases) == len(missing) else results
        return results

    async def _pipeline(self, leases: Sequence[Lease], carried: Carried | None = None) -> list[Any]:
        """The leases' pending pushes, and `carried` after them, in one round-trip; returns the pushes'
        replies (`carried` gets its own). EVALSHA by hand rather than through the registered script: a
        pipeline that calls a `Script` first asks Redis `SCRIPT EXISTS`, a second round-trip on every tick.
        Redis without the script (restarted, flushed) answers NOSCRIPT and nothing is applied: the script is
        loaded and the pushes are sent again."""
        k, deadline = self.keys, repr(time.time() + self._lease_ttl)
        replies: list[Any] = []
        for _attempt in range(2):
            async with self._client.pipeline(transaction=False) as pipe:
                for lease in leases:
                    push = lease.pending
                    assert push is not None
                    ws, key = lease.workspace_id, lease.key_id
                    keys = [
                        k.reservation(lease.lease_id), k.ws_reserved(ws), k.key_reserved(key), k.balance(ws),
                        k.spent(key), k.deadlines, k.owned(self.owner), k.owners, k.squeeze(ws),
                    ]  # fmt: skip
                    self._queue_push(pipe, keys, self._push_args(push, lease, deadline))
                if carried is not None:
                    carried.queue(pipe)
                try:
                    replies = list(await pipe.execute(raise_on_error=False))
                except BaseException as exc:
                    if carried is not None:
                        carried.settle(exc)
                    raise
            if carried is not None:
                carried.settle(replies[len(leases) :])
                carried, replies = None, replies[: len(leases)]
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                break
            self._push.sha = await self._client.script_load(PUSH)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _queue_push(self, pipe: Pipeline, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(self._push.sha, len(keys), *keys, *args)

    def _push_args(self, push: Push, lease: Lease, deadline: str) -> list[Any]:
        """ARGV of the push script (redis_state.PUSH)."""
        return [
            push.seq, push.charge, push.release, push.forced, push.need, push.extra,
            "" if push.credit_limit is None else push.credit_limit, deadline, lease.workspace_id, lease.key_id,
            lease.lease_id, self.owner, self._divisor, self._squeeze_ms, self._keep_expired,
        ]  # fmt: skip

    async def _initialise_missing(self, leases: Sequence[Lease]) -> None:
        """First use of a workspace or key since Redis was emptied: one database read each."""
        for lease in leases:
            snapshot = await asyncio.to_thread(read_snapshot, self._engine, [lease.workspace_id])
            spent = await asyncio.to_thread(read_spent, self._engine, lease.key_id)
            await self._initialise(snapshot or {lease.workspace_id: (0, [])}, spent or {lease.key_id: 0})

    # -- periodic work --------------------------------------------------------------------------------

    async def _tick_once(self) -> None:
        """The tick: push the leases, with the rider's settling (`carry`); about once a second, also the
        heartbeat and the sweeps."""
        stage = await self._rider.prepare() if self._rider is not None else None
        carried = Carried(stage) if stage is not None else None
        try:
            await self.flush(carried=carried)
        finally:
            if carried is not None:
                carried.settle_unsent()
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self._interval
            self.sweep_local()
            await self.heartbeat()
            released = await self.sweep()
            if released:
                log.warning("released %d credit leases left by replicas that stopped", released)

    def sweep_local(self, *, now: float | None = None) -> int:
        """Release this process's reservations past their deadline (a call that never settled)."""
        now = time.time() if now is None else now
        overdue = [rid for rid, (_r, _lease, deadline) in self._active.items() if deadline <= now]
        for rid in overdue:
            reservation, lease, _deadline = self._active.pop(rid)
            lease.finish(reservation.amount_micros, 0)
            self._expired[rid] = (reservation, now)
        for rid in [rid for rid, (_r, when) in self._expired.items() if when + self._keep_expired <= now]:
            del self._expired[rid]
        return len(overdue)

    async def maintain(self, *, refresh: bool) -> None:
        """Apply credits committed to the database that Redis has not seen (e.g. added by a CLI without
        redis_url, or one that stopped between its commit and its INCRBY)."""
        if not refresh:
            return
        started = utc_now()
        credits = await asyncio.to_thread(read_credits_since, self._engine, self._credits_since - self._overlap)
        for entry_id, ws, amount in credits:
            if await self._apply_credit(keys=[self.keys.balance(ws), self.keys.applied(ws)], args=[entry_id, amount]):
                log.info("applied ledger entry %d (%d micro-dollars) to workspace %s", entry_id, amount, ws)
        self._credits_since = started

    async def heartbeat(self) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.alive(self.owner), 1, px=int(self._heartbeat_ttl * 1000))
            pipe.sadd(self.keys.owners, self.owner)
            await pipe.execute()

    async def sweep(self, *, now: float | None = None) -> int:
        """Release leases past their deadline, and every lease of a replica whose heartbeat stopped (it
        crashed); returns how many were released."""
        now = time.time() if now is None else now
        released = 0
        overdue = await self._client.zrangebyscore(self.keys.deadlines, "-inf", repr(now), start=0, num=1000)
        for lease_id in overdue:
            released += await self._expire_one(as_text(lease_id))
        for raw_owner in await self._client.smembers(self.keys.owners):
            owner = as_text(raw_owner)
            if owner == self.owner or await self._client.exists(self.keys.alive(owner)):
                continue
            for lease_id in await self._client.smembers(self.keys.owned(owner)):
                released += await self._expire_one(as_text(lease_id))
            if not await self._client.scard(self.keys.owned(owner)):
                await self._client.srem(self.keys.owners, owner)
        return released

    async def _expire_one(self, lease_id: str) -> int:
        k = self.keys
        ws, key, owner = await self._client.hmget(k.reservation(lease_id), ["ws", "key", "owner"])
        if ws is None or key is None:
            await self._client.zrem(k.deadlines, lease_id)
            return 0
        owner_name = as_text(owner) if owner is not None else self.owner
        keys = [
            k.reservation(lease_id), k.ws_reserved(as_text(ws)), k.key_reserved(as_text(key)), k.deadlines,
            k.owned(owner_name),
        ]  # fmt: skip
        return int(await self._expire(keys=keys, args=[lease_id, self._keep_expired]))
