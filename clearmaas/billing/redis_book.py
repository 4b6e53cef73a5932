"""The balance book in Redis, shared by every replica: each reserve, settle and release is one Lua script, so
one round-trip and atomic across processes.

Keys, under a prefix (default "clearmaas:billing:"):
    bal:{ws}        the workspace's running balance: initialised from the database, then charged here at
                    settlement and credited when a ledger credit is applied
    applied:{ws}    ids of the non-charge ledger entries (credits, refunds, adjustments) `bal` includes
    wres:{ws}       total reserved by the workspace's calls in flight
    spent:{key}     the key's running spend; kres:{key} its reserved total
    res:{id}        one reservation (ws, key, amount, state active|expired, owner)
    deadlines       sorted set, reservation id by deadline; owners / owned:{owner} / alive:{owner} track
                    which replica holds which reservations, so a crashed replica's are released quickly

A credit reaches `bal` exactly once, whoever applies it (the CLI right after its commit, or any replica's
periodic sync): applying is "SADD applied:{ws} id, and INCRBY only if that added it". Initialising `bal`
from the database marks, from the same snapshot, every entry the balance already includes. Amounts are
integers; Lua compares them as doubles, exact below 2^53 micro-dollars (about $9 billion).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine, and_, select

from clearmaas.billing.book import Charge, Refusal, Reservation
from clearmaas.store.schema import api_keys, ledger_entries, new_id, utc_now, workspaces

__all__ = [
    "DEFAULT_PREFIX",
    "RedisBook",
    "RedisKeys",
    "apply_credit_sync",
    "overdue_reservations_sync",
    "read_live_sync",
]

log = logging.getLogger("clearmaas.billing")

DEFAULT_PREFIX: Final = "clearmaas:billing:"

# KEYS: bal, wres, spent, kres, res, deadlines, owned, owners.
# ARGV: amount, credit limit ('' = none), deadline, ws, key, id, owner.
# Returns 1 reserved, 0 balance too low, 2 key credit too low, -1 bal missing, -2 spent missing.
# Idempotent: a retry of a reservation that was taken (its reply lost) finds it and takes nothing more.
_RESERVE: Final = """
if redis.call('EXISTS', KEYS[5]) == 1 then return 1 end
local bal = redis.call('GET', KEYS[1])
if not bal then return -1 end
local spent = redis.call('GET', KEYS[3])
if not spent then return -2 end
local amount = tonumber(ARGV[1])
local wres = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(bal) - wres < amount then return 0 end
if ARGV[2] ~= '' then
  local kres = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tonumber(ARGV[2]) - tonumber(spent) - kres < amount then return 2 end
end
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('INCRBY', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[5], 'ws', ARGV[4], 'key', ARGV[5], 'amount', ARGV[1], 'state', 'active', 'owner', ARGV[7])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[6])
redis.call('SADD', KEYS[8], ARGV[7])
return 1
"""

# KEYS: res, wres, kres, bal, spent, deadlines, owned. ARGV: cost, id.
# Releases an active reservation, then charges `cost` (release = cost 0). Returns 1, or 0 if unknown, so
# a retry after a lost reply charges nothing twice.
_SETTLE: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state == 'active' then
  local amount = redis.call('HGET', KEYS[1], 'amount')
  redis.call('DECRBY', KEYS[2], amount)
  redis.call('DECRBY', KEYS[3], amount)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[6], ARGV[2])
redis.call('SREM', KEYS[7], ARGV[2])
if ARGV[1] ~= '0' then
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('DECRBY', KEYS[4], ARGV[1]) end
  if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('INCRBY', KEYS[5], ARGV[1]) end
end
return 1
"""

# KEYS: res, wres, kres, deadlines, owned. ARGV: id, seconds to keep an expired reservation.
# Releases an active reservation but keeps it, as expired, so a late settlement still charges.
_EXPIRE: Final = """
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
local amount = redis.call('HGET', KEYS[1], 'amount')
redis.call('DECRBY', KEYS[2], amount)
redis.call('DECRBY', KEYS[3], amount)
redis.call('HSET', KEYS[1], 'state', 'expired')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: bal, applied. ARGV: balance, then the ids of the non-charge entries that balance includes.
_INIT_BALANCE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
  return 1
end
return 0
"""

# KEYS: bal, applied. ARGV: ledger entry id, amount. Applies a credit once, and only to an initialised bal.
_APPLY_CREDIT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[2])
return 1
"""


class RedisKeys:
    """The key names under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.deadlines = prefix + "deadlines"
        self.owners = prefix + "owners"

    def balance(self, workspace_id: str) -> str:
        return f"{self.prefix}bal:{workspace_id}"

    def applied(self, workspace_id: str) -> str:
        return f"{self.prefix}applied:{workspace_id}"

    def ws_reserved(self, workspace_id: str) -> str:
        return f"{self.prefix}wres:{workspace_id}"

    def spent(self, key_id: str) -> str:
        return f"{self.prefix}spent:{key_id}"

    def key_reserved(self, key_id: str) -> str:
        return f"{self.prefix}kres:{key_id}"

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}res:{reservation_id}"

    def owned(self, owner: str) -> str:
        return f"{self.prefix}owned:{owner}"

    def alive(self, owner: str) -> str:
        return f"{self.prefix}alive:{owner}"


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _text(value: Any) -> str:
    """A Redis reply as text (the clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_snapshot(engine: Engine, workspace_ids: Collection[str]) -> dict[str, tuple[int, list[int]]]:
    """Workspace id -> (balance, ids of the non-charge entries it includes), from ONE statement, so the
    ids are exactly those in that balance."""
    query = (
        select(workspaces.c.id, workspaces.c.balance_micros, ledger_entries.c.id.label("entry"))
        .outerjoin(
            ledger_entries,
            and_(ledger_entries.c.workspace_id == workspaces.c.id, ledger_entries.c.kind != "charge"),
        )
        .where(workspaces.c.id.in_(list(workspace_ids)))
    )
    snapshot: dict[str, tuple[int, list[int]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            _balance, entries = snapshot.setdefault(str(row.id), (int(row.balance_micros), []))
            if row.entry is not None:
                entries.append(int(row.entry))
    return snapshot


def _workspace_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [str(row) for row in connection.execute(select(workspaces.c.id)).scalars()]


def _read_spent(engine: Engine, key_id: str | None) -> dict[str, int]:
    query = select(api_keys.c.id, api_keys.c.spent_micros)
    if key_id is not None:
        query = query.where(api_keys.c.id == key_id)
    with engine.connect() as connection:
        return {str(row.id): int(row.spent_micros) for row in connection.execute(query)}


def _read_credits_since(engine: Engine, since: datetime) -> list[tuple[int, str, int]]:
    """(entry id, workspace id, amount) of non-charge entries of workspaces changed since `since`; adding a
    credit bumps `workspaces.updated_at` in the same transaction, so the small table narrows the search."""
    query = (
        select(ledger_entries.c.id, ledger_entries.c.workspace_id, ledger_entries.c.amount_micros)
        .join(workspaces, workspaces.c.id == ledger_entries.c.workspace_id)
        .where(workspaces.c.updated_at > since, ledger_entries.c.kind != "charge", ledger_entries.c.created_at > since)
        .order_by(ledger_entries.c.id)
    )
    with engine.connect() as connection:
        return [(int(r.id), str(r.workspace_id), int(r.amount_micros)) for r in connection.execute(query)]


class RedisBook:
    """The book shared by replicas through Redis; a Redis round-trip per operation, no database one."""

    def __init__(
        self,
        engine: Engine,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        heartbeat_ttl: float = 15.0,
        housekeeping_interval: float = 1.0,
        keep_expired: int = 86_400,
        credit_lookback: timedelta = timedelta(days=7),
        credit_overlap: timedelta = timedelta(seconds=60),
    ) -> None:
        self._engine = engine
        self._client = client
        self.keys = RedisKeys(prefix)
        self.owner = new_id("rep")
        self._heartbeat_ttl = heartbeat_ttl
        self._interval = housekeeping_interval
        self._keep_expired = keep_expired
        self._overlap = credit_overlap
        self._credits_since = utc_now() - credit_lookback
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._expire = client.register_script(_EXPIRE)
        self._init_balance = client.register_script(_INIT_BALANCE)
        self._apply_credit = client.register_script(_APPLY_CREDIT)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def from_url(cls, engine: Engine, url: str, *, max_connections: int = 64, **options: Any) -> RedisBook:
        """A book with its own bounded pool: a burst of requests waits (up to a second) for a connection
        instead of failing."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=1.0,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )
        return cls(engine, Redis.from_pool(pool), **options)

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> int:
        """Run a script, retrying twice when the connection fails: every per-request script is idempotent."""
        for attempt in range(3):
            try:
                return int(await script(keys=keys, args=args))
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- lifecycle ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Initialise every workspace and key absent from Redis (present ones are left alone), then start
        the heartbeat and sweeper. Only absent workspaces have their ledger read."""
        known = await asyncio.to_thread(_workspace_ids, self._engine)
        async with self._client.pipeline(transaction=False) as pipe:
            for ws in known:
                pipe.exists(self.keys.balance(ws))
            present = await pipe.execute()
        missing = [ws for ws, exists in zip(known, present, strict=True) if not exists]
        for start in range(0, len(missing), 500):
            snapshot = await asyncio.to_thread(_read_snapshot, self._engine, missing[start : start + 500])
            await self._initialise(snapshot, {})
        spent = await asyncio.to_thread(_read_spent, self._engine, None)
        await self._initialise({}, spent)
        await self.heartbeat()
        if self._task is None:
            self._task = asyncio.create_task(self._housekeeping(), name="clearmaas-billing-redis-sweeper")

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await self._client.delete(self.keys.alive(self.owner))
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

    # -- per request ----------------------------------------------------------------------------------

    async def reserve(
        self, reservation: Reservation, *, credit_limit_micros: int | None, deadline: float
    ) -> Refusal | None:
        k, ws, key = self.keys, reservation.workspace_id, reservation.key_id
        keys = [
            k.balance(ws), k.ws_reserved(ws), k.spent(key), k.key_reserved(key),
            k.reservation(reservation.id), k.deadlines, k.owned(self.owner), k.owners,
        ]  # fmt: skip
        args = [
            reservation.amount_micros, "" if credit_limit_micros is None else credit_limit_micros,
            repr(deadline), ws, key, reservation.id, self.owner,
        ]  # fmt: skip
        for _ in range(3):
            result = await self._run(self._reserve, keys, args)
            if result == 1:
                return None
            if result == 0:
                return "balance"
            if result == 2:
                return "key_credit"
            # First use of this workspace or key since Redis was empty: one database read, then retry.
            if result == -1:
                snapshot = await asyncio.to_thread(_read_snapshot, self._engine, [ws])
                await self._initialise(snapshot or {ws: (0, [])}, {})
            else:
                spent = await asyncio.to_thread(_read_spent, self._engine, key)
                await self._initialise({}, spent or {key: 0})
        raise RuntimeError(f"could not initialise the Redis balance of workspace {ws} / key {key}")

    async def release(self, reservation: Reservation) -> bool:
        return await self._finish(reservation, 0)

    async def settle(self, reservation: Reservation, cost_micros: int) -> bool:
        return await self._finish(reservation, cost_micros)

    async def _finish(self, reservation: Reservation, cost: int) -> bool:
        k, ws, key = self.keys, reservation.workspace_id, reservation.key_id
        keys = [
            k.reservation(reservation.id), k.ws_reserved(ws), k.key_reserved(key), k.balance(ws), k.spent(key),
            k.deadlines, k.owned(self.owner),
        ]  # fmt: skip
        return await self._run(self._settle, keys, [cost, reservation.id]) == 1

    def flushed(self, charges: Iterable[Charge]) -> None:
        # Charges were applied to Redis at settlement; committing them to the database changes nothing here.
        return None

    async def reserved_micros(self, workspace_id: str) -> int | None:
        return _int(await self._client.get(self.keys.ws_reserved(workspace_id)))

    # -- periodic work --------------------------------------------------------------------------------

    async def maintain(self, *, refresh: bool) -> None:
        """Apply credits committed to the database that Redis has not seen (e.g. added by a CLI without
        redis_url, or one that stopped between its commit and its INCRBY)."""
        if not refresh:
            return
        started = utc_now()
        credits = await asyncio.to_thread(_read_credits_since, self._engine, self._credits_since - self._overlap)
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
        """Release reservations past their deadline, and every reservation of a replica whose heartbeat
        stopped (it crashed); returns how many were released."""
        now = time.time() if now is None else now
        released = 0
        overdue = await self._client.zrangebyscore(self.keys.deadlines, "-inf", repr(now), start=0, num=1000)
        for rid in overdue:
            released += await self._expire_one(_text(rid))
        for raw_owner in await self._client.smembers(self.keys.owners):
            owner = _text(raw_owner)
            if owner == self.owner or await self._client.exists(self.keys.alive(owner)):
                continue
            for rid in await self._client.smembers(self.keys.owned(owner)):
                released += await self._expire_one(_text(rid))
            if not await self._client.scard(self.keys.owned(owner)):
                await self._client.srem(self.keys.owners, owner)
        return released

    async def _expire_one(self, reservation_id: str) -> int:
        k = self.keys
        ws, key, owner = await self._client.hmget(k.reservation(reservation_id), ["ws", "key", "owner"])
        if ws is None or key is None:
            await self._client.zrem(k.deadlines, reservation_id)
            return 0
        owner_name = _text(owner) if owner is not None else self.owner
        keys = [
            k.reservation(reservation_id), k.ws_reserved(_text(ws)), k.key_reserved(_text(key)), k.deadlines,
            k.owned(owner_name),
        ]  # fmt: skip
        return int(await self._expire(keys=keys, args=[reservation_id, self._keep_expired]))

    async def _housekeeping(self) -> None:
        task = asyncio.current_task()
        while not self._closing:
            try:
                await self.heartbeat()
                released = await self.sweep()
                if released:
                    log.warning("released %d reservations left by requests that never settled", released)
            except (RedisError, OSError):
                if not self._closing:
                    log.warning("billing housekeeping in Redis failed", exc_info=True)
            # redis-py can swallow a cancellation that lands mid-command; `close` also sets `_closing`.
            if self._closing or (task is not None and task.cancelling()):
                return
            await asyncio.sleep(self._interval)


# -- synchronous helpers for the CLI (`ledger.py`) ----------------------------------------------------------


def apply_credit_sync(client: redis.Redis, keys: RedisKeys, workspace_id: str, entry_id: int, amount: int) -> bool:
    """Apply one committed ledger entry to the live balance; False when Redis has no balance for the
    workspace yet (it will be initialised from the database, which includes the entry) or already has it."""
    return bool(client.eval(_APPLY_CREDIT, 2, keys.balance(workspace_id), keys.applied(workspace_id), entry_id, amount))


def read_live_sync(client: redis.Redis, keys: RedisKeys, workspace_id: str) -> tuple[int | None, int]:
    """(live balance or None when not initialised, reserved total) of a workspace."""
    balance, reserved = client.mget([keys.balance(workspace_id), keys.ws_reserved(workspace_id)])
    return (None if balance is None else int(balance)), _int(reserved)


def overdue_reservations_sync(client: redis.Redis, keys: RedisKeys, now: float) -> list[str]:
    """Ids of reservations whose deadline has passed but that no sweeper has released yet."""
    return [_text(rid) for rid in client.zrangebyscore(keys.deadlines, "-inf", repr(now))]
