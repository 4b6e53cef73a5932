"""`Billing`: the money path of a request, as the relay sees it. Reserve a bound before the upstream call,
then settle to the actual cost (or release) when the call ends, and log one usage record per request.

The exact rules:
- The bound is `reservation_bound`: estimated input tokens at the dearest input price plus the allowed output
  tokens (the request's max_tokens, capped by the model's maximum, or that maximum when unset) at the
  output price. It must fit in the workspace's available balance (balance − unflushed charges − reserved)
  and, for a key with a credit limit, in its remaining credit (limit − spent − reserved); otherwise the
  request is refused with 403 insufficient_user_quota before anything is sent upstream.
- Settling charges the actual cost, even when it exceeds the bound (the input estimate was low, or built-in
  tools were called): what was generated is billed. Only such an overrun can take a balance below zero or
  a key's spend past its limit, and by no more than the overruns of the calls in flight; every reservation
  after that is refused until credit is added. When each call costs at most its bound, concurrent calls
  can never take either below zero.
- An attempt that failed with no output is released: nothing is charged.
- Settling charges once and logs once, and a caller cancelled meanwhile (client disconnect) cannot stop it
  half-way: the book decides a settle or release synchronously, and the record is queued with the usage
  log's non-blocking `offer`, so the usual settle runs inline with nothing to interrupt. Only when the queue is
  full does it wait (back-pressure), and then in a task of its own that the caller's cancellation does not
  reach and that `stop` waits for; a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import BalanceBook, MemoryBook, Refusal, Reservation
from clearmaas.billing.money import format_usd
from clearmaas.billing.pricing import cost_micros, reservation_bound, token_cost_micros
from clearmaas.billing.tools import ToolRate, tool_rates_for
from clearmaas.billing.usage_log import UsageItem, UsageLog
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import InsufficientQuota, InternalError, ModelPriceError
from clearmaas.relay.record import CallRecord
from clearmaas.settings import Settings, TimeoutSettings
from clearmaas.store.schema import new_id

__all__ = ["Billing", "reservation_ttl"]

log = logging.getLogger("clearmaas.billing")

_BOOK_ERRORS = (RedisError, OSError)


def reservation_ttl(settings: Settings) -> float:
    """How long a reservation may stay unsettled before the sweeper releases it: twice the longest total
    timeout any provider allows an attempt, and at least 30 minutes."""
    totals = [p.timeouts.total for p in settings.providers.values()] + [TimeoutSettings().total]
    return max(2 * max(totals), 1800.0)


class Billing:
    """Reservations, settlement and the usage log of one process."""

    def __init__(
        self,
        *,
        book: BalanceBook,
        usage_log: UsageLog,
        catalogue: Catalogue | None = None,
        ttl: float = 1800.0,
    ) -> None:
        self.book = book
        self.usage_log = usage_log
        self._catalogue = catalogue
        self._ttl = ttl
        self._tool_rates: dict[str, tuple[str, Mapping[str, ToolRate]]] = {}  # model id -> (provider, rates)
        # Reservation ids: a random prefix per process, then a counter. Unique across replicas (the prefix has
        # ~119 random bits) and without the system call a random id per reservation costs.
        self._reservation_prefix = new_id("res") + "."
        self._reservation_count = itertools.count()
        # Records waiting for room in a full queue (their callers may be gone); `stop` waits for them.
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopped = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        catalogue: Catalogue | None = None,
        *,
        redis_prefix: str | None = None,
        **log_options: Any,
    ) -> Billing:
        """A memory book, or a Redis book (keys under `redis_prefix`) when `settings.redis_url` is set;
        `log_options` go to `UsageLog` (max_queue, batch_size, max_delay, maintain_interval, ...)."""
        book: BalanceBook
        before_write: Callable[[], Awaitable[None]] | None = None
        if settings.redis_url:
            from clearmaas.billing.redis_book import DEFAULT_PREFIX, RedisBook

            shared = RedisBook.from_url(engine, settings.redis_url, prefix=redis_prefix or DEFAULT_PREFIX)
            # Costs reach the shared balance before the database: a crash can leave Redis stricter, never laxer.
            book, before_write = shared, shared.push_owed
        else:
            if settings.workers > 1:
                log.warning(
                    "%d workers without redis_url: each holds its own reservations, so concurrent requests "
                    "in different workers can overspend a balance or a key's credit",
                    settings.workers,
                )
            book = MemoryBook(engine)
        usage_log = UsageLog(
            engine, on_flushed=book.flushed, maintain=book.maintain, before_write=before_write, **log_options
        )
        return cls(book=book, usage_log=usage_log, catalogue=catalogue, ttl=reservation_ttl(settings))

    async def start(self) -> None:
        await self.book.load()
        await self.usage_log.start()

    async def stop(self) -> None:
        """Finish settlements in flight, write every queued usage record, then close the book."""
        if self._stopped:
            return
        self._stopped = True
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.usage_log.stop()
        # A settle that found the queue full while the log was stopping writes its record directly.
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.book.close()

    def reserve_now(
        self, key: KeyRecord, entry: ModelEntry, input_tokens: int, max_output_tokens: int | None
    ) -> Reservation | None:
        """`reserve` without a coroutine when the book can decide in this process: the reservation held, or
        None when the caller must await `reserve` (a refusal, or a Redis book's lease that needs topping up).
        Raises ModelPriceError (400) like `reserve`."""
        reservation = self._reservation(key, entry, input_tokens, max_output_tokens)
        try:
            # Positional, as `_reservation`'s calls: keywords cost more on every request.
            taken = self.book.take_now(reservation, key.credit_limit_micros, reservation.created + self._ttl)
        except _BOOK_ERRORS:
            return None  # `reserve` reports it
        return reservation if taken else None

    async def reserve(
        self, key: KeyRecord, entry: ModelEntry, *, input_tokens: int, max_output_tokens: int | None
    ) -> Reservation:
        """Hold the bound of one attempt; raises InsufficientQuota (403) or ModelPriceError (400)."""
        reservation = self._reservation(key, entry, input_tokens, max_output_tokens)
        try:
            refusal = await self.book.reserve(
                reservation, credit_limit_micros=key.credit_limit_micros, deadline=reservation.created + self._ttl
            )
        except _BOOK_ERRORS as exc:
            log.exception("reserving credit failed")
            raise InternalError("Billing is temporarily unavailable.") from exc
        if refusal is not None:
            raise InsufficientQuota(_refusal_message(refusal, reservation.amount_micros))
        return reservation

    def _reservation(
        self, key: KeyRecord, entry: ModelEntry, input_tokens: int, max_output_tokens: int | None
    ) -> Reservation:
        """The bound of one attempt on `entry`, not yet held; raises ModelPriceError (400) for an unpriced model."""
        prices = entry.prices
        if prices is None:
            raise ModelPriceError(f"Pricing for the model '{entry.id}' is not set up.", param="model")
        output = (
            max_output_tokens if max_output_tokens is not None and max_output_tokens > 0 else entry.max_output_tokens
        )
        if 0 < entry.max_output_tokens < output:
            output = entry.max_output_tokens
        # Positional (id, workspace_id, key_id, amount_micros, model_id, prices, created): half the cost of
        # seven keywords, once per attempt on the event loop.
        return Reservation(
            f"{self._reservation_prefix}{next(self._reservation_count):x}",
            key.workspace_id,
            key.id,
            reservation_bound(prices, input_tokens, output),
            entry.id,
            prices,
            time.time(),
        )

    async def release(self, reservation: Reservation) -> None:
        """The attempt failed with no output: give the reservation back, charge nothing. Never suspends, so a
        caller cancelled meanwhile cannot stop it half-way."""
        try:
            self.book.release(reservation)
        except _BOOK_ERRORS:
            log.warning("releasing reservation %s failed; the sweeper will release it", reservation.id, exc_info=True)

    async def settle(self, reservation: Reservation | None, record: CallRecord) -> None:
        """Charge the call's actual cost, release the rest of its reservation, and log its usage record.

        Without a reservation (refused before reserving: authentication, validation, limits) the record is
        logged at cost 0 when its workspace is known, and nothing is charged. Once called, the charge and
        the record are made even if the caller is cancelled: everything up to queueing the record runs
        without suspending, and a record that must wait for room in the queue waits in a task of its own.
        """
        waiting = self.settle_now(reservation, record)
        if waiting is not None:
            await waiting

    def settle_now(self, reservation: Reservation | None, record: CallRecord) -> Awaitable[None] | None:
        """`settle` without a coroutine: everything is done when it returns None; otherwise the queue was full
        and the caller awaits what it returns (back-pressure) while the record waits for room in a task that
        the caller's cancellation does not reach."""
        item = self._charge(reservation, record)
        if item is None or self.usage_log.offer(item):
            return None
        # bench/README.md: a task and a shield cost ~6 us and a wake-up, which is why the usual path does without.
        task = asyncio.create_task(self.usage_log.put(item))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return asyncio.shield(task)

    def _charge(self, reservation: Reservation | None, record: CallRecord) -> UsageItem | None:
        """Settle the reservation in the book and queue-ready the usage record; None when there is nothing to
        log. The call is finished from here on: the writer builds the usage row from `record` later."""
        finished = record.finished
        if finished is None:
            finished = record.finished = time.monotonic()
        # The request's start as wall-clock time: one clock read (a datetime is made by the writer).
        elapsed = finished - record.started
        started_at = time.time() - (elapsed if elapsed > 0.0 else 0.0)
        if reservation is None:
            if record.workspace_id is None:
                return None
            return UsageItem(record, started_at, record.workspace_id, record.key_id, 0, False)
        usage = record.usage
        if usage.server_tool_calls:
            provider, rates = self._rates(reservation.model_id)
            cost = cost_micros(usage, reservation.prices, tool_rates=rates, provider=provider)
        else:
            cost = token_cost_micros(usage, reservation.prices)
        try:
            charged = self.book.settle(reservation, cost)
        except _BOOK_ERRORS:
            # The ledger still gets the charge below; only the live balance misses it until re-read.
            log.warning("settling reservation %s in the book failed", reservation.id, exc_info=True)
            charged = False
        if not charged and cost:
            log.warning("reservation %s was not held when settled; charging the ledger only", reservation.id)
        # Positional (record, started_at, workspace_id, key_id, cost_micros, book_charged), once per request.
        return UsageItem(record, started_at, reservation.workspace_id, reservation.key_id, cost, charged)

    def _rates(self, model_id: str) -> tuple[str, Mapping[str, ToolRate]]:
        known = self._tool_rates.get(model_id)
        if known is None:
            entry = self._catalogue.get(model_id) if self._catalogue is not None else None
            provider = entry.provider if entry is not None else model_id.partition("/")[0]
            known = self._tool_rates[model_id] = (provider, tool_rates_for(provider, model_id))
        return known


def _refusal_message(refusal: Refusal, amount: int) -> str:
    if refusal == "key_credit":
        return (
            f"This API key's credit limit cannot cover this request (up to ${format_usd(amount)}). "
            "Raise the key's limit or use another key."
        )
    return f"Insufficient balance to cover this request (up to ${format_usd(amount)}). Top up your credits."
