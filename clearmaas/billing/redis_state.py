"""What the Redis balance book stores and the scripts that change it, shared by `redis_book.RedisBook` (the
gateway) and the CLI (`ledger.py`: credits, `workspaces show`, `billing reconcile`).

Keys, under a prefix (default "clearmaas:billing:"):
    bal:{ws}        the workspace's running balance: initialised from the database, then charged by the
                    replicas' pushes and credited when a ledger credit is applied
    applied:{ws}    ids of the non-charge ledger entries (credits, refunds, adjustments) `bal` includes
    wres:{ws}       total reserved in the workspace: the replicas' credit leases (`lease.py`)
    spent:{key}     the key's running spend; kres:{key} its reserved total
    res:{id}        one lease (ws, key, amount, state active|expired, owner, and the seq and status of the
                    last push applied, so a retried push applies once)
    deadlines       sorted set, lease id by deadline; owners / owned:{owner} / alive:{owner} track which
                    replica holds which leases, so a crashed replica's are released quickly
    squeeze:{ws}    set for a moment when a replica was refused: no replica takes extra headroom meanwhile

A credit reaches `bal` exactly once, whoever applies it (the CLI right after its commit, or any replica's
periodic sync): applying is "SADD applied:{ws} id, and INCRBY only if that added it". Initialising `bal`
from the database marks, from the same snapshot, every entry the balance already includes. Amounts are
integers; Lua compares them as doubles, exact below 2^53 micro-dollars (about $9 billion).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

import redis
from sqlalchemy import Engine, and_, select

from clearmaas.store.schema import api_keys, ledger_entries, workspaces

__all__ = [
    "APPLY_CREDIT",
    "DEFAULT_PREFIX",
    "EXPIRE",
    "INIT_BALANCE",
    "PUSH",
    "RedisKeys",
    "apply_credit_sync",
    "as_int",
    "as_text",
    "overdue_reservations_sync",
    "read_credits_since",
    "read_live_sync",
    "read_snapshot",
    "read_spent",
    "workspace_ids",
]

DEFAULT_PREFIX: Final = "clearmaas:billing:"

# KEYS: lease, wres, kres, bal, spent, deadlines, owned, owners, squeeze.
# ARGV: seq, charge, release, forced, need, extra, credit limit ('' = none), deadline, ws, key, lease id,
#       owner, extra divisor, squeeze ms, seconds to keep an emptied lease's record.
# Returns {status, lease amount, squeezed 0|1, others 0|1}; status 1 done, 0 the balance cannot cover
# `need`, 2 the key's credit cannot, -1 bal missing, -2 spent missing (nothing changed: initialise, resend).
# Charging and releasing always apply; a refused `need` takes nothing. Extra headroom is granted only out of
# 1/divisor of what remains after `need`, and not at all while the workspace is squeezed.
PUSH: Final = """
local seq = tonumber(ARGV[1])
if seq <= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then
  local done = redis.call('HMGET', KEYS[1], 'status', 'amount')
  return {tonumber(done[1]) or 1, tonumber(done[2]) or 0, 0, 0}
end
local bal = redis.call('GET', KEYS[4])
if not bal then return {-1, 0, 0, 0} end
local spent = redis.call('GET', KEYS[5])
if not spent then return {-2, 0, 0, 0} end
bal, spent = tonumber(bal), tonumber(spent)
local charge = tonumber(ARGV[2])
if charge ~= 0 then
  bal = redis.call('DECRBY', KEYS[4], charge)
  spent = redis.call('INCRBY', KEYS[5], charge)
end
local amount = 0
if redis.call('HGET', KEYS[1], 'state') == 'active' then
  amount = tonumber(redis.call('HGET', KEYS[1], 'amount') or '0')
end
local wres = tonumber(redis.call('GET', KEYS[2]) or '0')
local kres = tonumber(redis.call('GET', KEYS[3]) or '0')
local others = 0
if wres - amount > 0 then others = 1 end
local release = math.min(tonumber(ARGV[3]), amount)
local take = tonumber(ARGV[4])
local avail = bal - wres + release - take
local kavail = nil
if ARGV[7] ~= '' then kavail = tonumber(ARGV[7]) - spent - kres + release - take end
local squeezed = redis.call('EXISTS', KEYS[9])
local status = 1
local need = tonumber(ARGV[5])
if need > 0 then
  if avail < need then status = 0 elseif kavail and kavail < need then status = 2 end
  if status == 1 then
    take = take + need
    avail = avail - need
    if kavail then kavail = kavail - need end
  else
    redis.call('SET', KEYS[9], 1, 'PX', ARGV[14])
    squeezed = 1
  end
end
if status == 1 and squeezed == 0 then
  local room = avail
  if kavail and kavail < room then room = kavail end
  room = math.floor(room / tonumber(ARGV[13]))
  local extra = math.min(tonumber(ARGV[6]), room)
  if extra > 0 then take = take + extra end
end
local delta = take - release
if delta ~= 0 then
  redis.call('INCRBY', KEYS[2], delta)
  redis.call('INCRBY', KEYS[3], delta)
end
amount = amount + delta
redis.call('HSET', KEYS[1], 'ws', ARGV[9], 'key', ARGV[10], 'amount', amount, 'state', 'active',
  'owner', ARGV[12], 'seq', seq, 'status', status)
if amount > 0 then
  redis.call('PERSIST', KEYS[1])
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[11])
  redis.call('SADD', KEYS[7], ARGV[11])
  redis.call('SADD', KEYS[8], ARGV[12])
else
  redis.call('ZREM', KEYS[6], ARGV[11])
  redis.call('SREM', KEYS[7], ARGV[11])
  redis.call('EXPIRE', KEYS[1], ARGV[15])
end
return {status, amount, squeezed, others}
"""

# KEYS: res, wres, kres, deadlines, owned. ARGV: id, seconds to keep an expired reservation.
# Releases an active lease but keeps its record, as expired, so a late push still charges what it carries.
EXPIRE: Final = """
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
INIT_BALANCE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
  return 1
end
return 0
"""

# KEYS: bal, applied. ARGV: ledger entry id, amount. Applies a credit once, and only to an initialised bal.
APPLY_CREDIT: Final = """
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

    def squeeze(self, workspace_id: str) -> str:
        return f"{self.prefix}squeeze:{workspace_id}"


def as_int(value: Any) -> int:
    return int(value) if value is not None else 0


def as_text(value: Any) -> str:
    """A Redis reply as text (the clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_snapshot(engine: Engine, workspace_ids: Collection[str]) -> dict[str, tuple[int, list[int]]]:
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


def workspace_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [str(row) for row in connection.execute(select(workspaces.c.id)).scalars()]


def read_spent(engine: Engine, key_id: str | None) -> dict[str, int]:
    query = select(api_keys.c.id, api_keys.c.spent_micros)
    if key_id is not None:
        query = query.where(api_keys.c.id == key_id)
    with engine.connect() as connection:
        return {str(row.id): int(row.spent_micros) for row in connection.execute(query)}


def read_credits_since(engine: Engine, since: datetime) -> list[tuple[int, str, int]]:
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


# -- synchronous helpers for the CLI (`ledger.py`) ----------------------------------------------------------


def apply_credit_sync(client: redis.Redis, keys: RedisKeys, workspace_id: str, entry_id: int, amount: int) -> bool:
    """Apply one committed ledger entry to the live balance; False when Redis has no balance for the
    workspace yet (it will be initialised from the database, which includes the entry) or already has it."""
    return bool(client.eval(APPLY_CREDIT, 2, keys.balance(workspace_id), keys.applied(workspace_id), entry_id, amount))


def read_live_sync(client: redis.Redis, keys: RedisKeys, workspace_id: str) -> tuple[int | None, int]:
    """(live balance or None when not initialised, reserved total) of a workspace."""
    balance, reserved = client.mget([keys.balance(workspace_id), keys.ws_reserved(workspace_id)])
    return (None if balance is None else int(balance)), as_int(reserved)


def overdue_reservations_sync(client: redis.Redis, keys: RedisKeys, now: float) -> list[str]:
    """Ids of leases whose deadline has passed but that no sweeper has released yet."""
    return [as_text(rid) for rid in client.zrangebyscore(keys.deadlines, "-inf", repr(now))]
