"""The balance book: who may still spend how much, decided without a database round-trip. `BalanceBook` is
the interface; `MemoryBook` keeps it in this process (one gateway process), `redis_book.RedisBook` in Redis
(several replicas).

A book holds, per workspace, its balance and the total reserved by calls in flight, and per key, its spend
and the total reserved. Reserving checks both and takes both, or neither. The database stays the durable
record: charges reach it through the usage log (`usage_log.py`), credits through the CLI (`ledger.py`).

MemoryBook's balance is the database's value as last read, minus the charges settled here that the usage
log has not yet committed ("unflushed"). The usage log's writer task both commits batches (then calls
`flushed`, which moves those charges from "unflushed" into the stored balance) and re-reads the database
(`maintain`), one after the other and never at the same time, so a charge is never counted both in the
database's value and in "unflushed", and never in neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import Engine, select

from clearmaas.catalogue.entry import Prices
from clearmaas.store.schema import api_keys, workspaces

__all__ = ["BalanceBook", "Charge", "MemoryBook", "Refusal", "Reservation", "read_balances"]

# Why a reservation was refused: the workspace balance, or the key's own credit limit.
Refusal = Literal["balance", "key_credit"]


@dataclass(slots=True)
class Reservation:
    """A bound on one call's cost, held against the workspace balance and the key's credit until settled."""

    id: str
    workspace_id: str
    key_id: str
    amount_micros: int
    model_id: str
    prices: Prices
    created: float  # wall-clock seconds (time.time()), comparable across processes


@dataclass(frozen=True, slots=True)
class Charge:
    """A settled charge the usage log has committed to the database."""

    workspace_id: str
    key_id: str
    micros: int


class BalanceBook(Protocol):
    """Where reservations are taken and charges counted; every method is atomic with respect to the others."""

    async def load(self) -> None:
        """Read the balances once at startup."""

    def take_now(self, reservation: Reservation, credit_limit_micros: int | None, deadline: float) -> bool:
        """`reserve` when it can be decided in this process without suspending: True when the reservation is
        now held; False when nothing was taken, and the caller awaits `reserve` (which also says why a
        refusal is one)."""

    async def reserve(
        self, reservation: Reservation, *, credit_limit_micros: int | None, deadline: float
    ) -> Refusal | None:
        """Take `reservation.amount_micros` from the workspace's available balance and (when the key has a
        credit limit) from the key's remaining credit, or take nothing and say which could not cover it."""

    def release(self, reservation: Reservation) -> bool:
        """Give the reserved amount back, charging nothing; False when the reservation is not held.
        Synchronous: decided in this process (a shared book forwards it in the background), so a settling
        request never waits for it and a cancelled one cannot stop it half-way."""

    def settle(self, reservation: Reservation, cost_micros: int) -> bool:
        """Release the reservation and charge `cost_micros` (which may exceed it). False when the book does
        not know the reservation (already settled or released), in which case nothing is charged.
        Synchronous, like `release`."""

    def flushed(self, charges: Iterable[Charge]) -> None:
        """The usage log committed these charges to the database."""

    async def maintain(self, *, refresh: bool) -> None:
        """Periodic work: release reservations past their deadline and, when `refresh`, pick up balances
        changed elsewhere (credits). Called by the usage log's writer between batches."""

    async def reserved_micros(self, workspace_id: str) -> int | None:
        """The workspace's total reserved by calls in flight, as this book knows it."""

    async def close(self) -> None: ...


def read_balances(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """Every workspace's balance and every key's spend (keys that have spent nothing are left out)."""
    with engine.connect() as connection:
        balances = {
            str(row.id): int(row.balance_micros)
            for row in connection.execute(select(workspaces.c.id, workspaces.c.balance_micros))
        }
        spent = {
            str(row.id): int(row.spent_micros)
            for row in connection.execute(
                select(api_keys.c.id, api_keys.c.spent_micros).where(api_keys.c.spent_micros != 0)
            )
        }
    return balances, spent


def _add(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


class MemoryBook:
    """The book of one process. Its methods never await between reading and writing its state, so on the
    event loop each is one critical section: concurrent requests cannot both take the last credit."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], float] = time.time, keep_expired: float = 86_400.0
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._keep_expired = keep_expired
        # As read from the database, plus charges committed since that read.
        self._balance: dict[str, int] = {}
        self._spent: dict[str, int] = {}
        # Settled here, not yet committed by the usage log.
        self._unflushed_balance: dict[str, int] = {}
        self._unflushed_spent: dict[str, int] = {}
        self._reserved_ws: dict[str, int] = {}
        self._reserved_key: dict[str, int] = {}
        self._active: dict[str, tuple[Reservation, float]] = {}  # id -> (reservation, deadline)
        # Released by the sweeper past their deadline, still charged if settled late: id -> (reservation, when).
        self._expired: dict[str, tuple[Reservation, float]] = {}

    # -- what a request sees -------------------------------------------------------------------------

    def available(self, workspace_id: str) -> int:
        """Balance minus unflushed charges minus reservations; may be negative after an overrun."""
        return (
            self._balance.get(workspace_id, 0)
            - self._unflushed_balance.get(workspace_id, 0)
            - self._reserved_ws.get(workspace_id, 0)
        )

    def spent(self, key_id: str) -> int:
        return self._spent.get(key_id, 0) + self._unflushed_spent.get(key_id, 0)

    def remaining_credit(self, key_id: str, credit_limit_micros: int) -> int:
        return credit_limit_micros - self.spent(key_id) - self._reserved_key.get(key_id, 0)

    @property
    def active_reservations(self) -> int:
        return len(self._active)

    async def load(self) -> None:
        balances, spent = await asyncio.to_thread(read_balances, self._engine)
        self._apply_read(balances, spent)

    def take_now(self, reservation: Reservation, credit_limit_micros: int | None, deadline: float) -> bool:
        # `available`, `remaining_credit` and `_add`, inlined: this and `settle` run on every request.
        amount, workspace_id, key_id = reservation.amount_micros, reservation.workspace_id, reservation.key_id
        reserved_ws, reserved_key = self._reserved_ws, self._reserved_key
        held_ws = reserved_ws.get(workspace_id, 0)
        if self._balance.get(workspace_id, 0) - self._unflushed_balance.get(workspace_id, 0) - held_ws < amount:
            return False
        held_key = reserved_key.get(key_id, 0)
        if credit_limit_micros is not None:
            spent = self._spent.get(key_id, 0) + self._unflushed_spent.get(key_id, 0)
            if credit_limit_micros - spent - held_key < amount:
                return False
        # Never zero after adding a positive amount; a zero amount leaves the totals as they are.
        if amount:
            reserved_ws[workspace_id] = held_ws + amount
            reserved_key[key_id] = held_key + amount
        self._active[reservation.id] = (reservation, deadline)
        return True

    async def reserve(
        self, reservation: Reservation, *, credit_limit_micros: int | None, deadline: float
    ) -> Refusal | None:
        if self.take_now(reservation, credit_limit_micros, deadline):
            return None
        # Refused: say which, in the same synchronous step (nothing changed in between).
        if self.available(reservation.workspace_id) < reservation.amount_micros:
            return "balance"
        return "key_credit"

    def release(self, reservation: Reservation) -> bool:
        if self._expired.pop(reservation.id, None) is not None:
            return True
        return self._unreserve(reservation.id)

    def settle(self, reservation: Reservation, cost_micros: int) -> bool:
        if self._active.pop(reservation.id, None) is not None:
            # `_unreserve`, inlined: the usual settle on every request.
            amount = reservation.amount_micros
            if amount:
                _add(self._reserved_ws, reservation.workspace_id, -amount)
                _add(self._reserved_key, reservation.key_id, -amount)
        elif self._expired.pop(reservation.id, None) is None:
            return False
        if cost_micros:
            unflushed_ws, unflushed_key = self._unflushed_balance, self._unflushed_spent
            unflushed_ws[reservation.workspace_id] = unflushed_ws.get(reservation.workspace_id, 0) + cost_micros
            unflushed_key[reservation.key_id] = unflushed_key.get(reservation.key_id, 0) + cost_micros
        return True

    def _unreserve(self, reservation_id: str) -> bool:
        held = self._active.pop(reservation_id, None)
        if held is None:
            return False
        reservation = held[0]
        _add(self._reserved_ws, reservation.workspace_id, -reservation.amount_micros)
        _add(self._reserved_key, reservation.key_id, -reservation.amount_micros)
        return True

    # -- the usage log's writer task -----------------------------------------------------------------

    def flushed(self, charges: Iterable[Charge]) -> None:
        for charge in charges:
            _add(self._unflushed_balance, charge.workspace_id, -charge.micros)
            _add(self._unflushed_spent, charge.key_id, -charge.micros)
            _add(self._balance, charge.workspace_id, -charge.micros)
            _add(self._spent, charge.key_id, charge.micros)

    async def maintain(self, *, refresh: bool) -> None:
        if refresh:
            balances, spent = await asyncio.to_thread(read_balances, self._engine)
            self._apply_read(balances, spent)
        self.sweep()

    def _apply_read(self, balances: dict[str, int], spent: dict[str, int]) -> None:
        # Only called by the writer task, never while one of its batches is being committed: the values
        # read include every batch this process committed and none of its unflushed charges.
        self._balance = balances
        self._spent = spent

    def sweep(self) -> int:
        """Release reservations past their deadline (a request that never settled); returns how many."""
        now = self._clock()
        overdue = [rid for rid, (_reservation, deadline) in self._active.items() if deadline <= now]
        for rid in overdue:
            reservation = self._active[rid][0]
            self._unreserve(rid)
            self._expired[rid] = (reservation, now)
        for rid in [rid for rid, (_r, when) in self._expired.items() if when + self._keep_expired <= now]:
            del self._expired[rid]
        return len(overdue)

    async def reserved_micros(self, workspace_id: str) -> int | None:
        return self._reserved_ws.get(workspace_id, 0)

    async def close(self) -> None:
        return None
