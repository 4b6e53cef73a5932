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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import BalanceBook, MemoryBook, Refusal, Reservation
from clearmaas.billing.money import format_usd
from clearmaas.billing.pricing import cost_micros, reservation_bound
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
        self._tool_rates: dict[str, Mapping[str, ToolRate]] = {}
        # Settlements still running after their caller was cancelled; `stop` waits for them.
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
        if settings.redis_url:
            from clearmaas.billing.redis_book import DEFAULT_PREFIX, RedisBook

            book = RedisBook.from_url(engine, settings.redis_url, prefix=redis_prefix or DEFAULT_PREFIX)
        else:
            if settings.workers > 1:
                log.warning(
                    "%d workers without redis_url: each holds its own reservations, so concurrent requests "
                    "in different workers can overspend a balance or a key's credit",
                    settings.workers,
                )
            book = MemoryBook(engine)
        usage_log = UsageLog(engine, on_flushed=book.flushed, maintain=book.maintain, **log_options)
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
        await self.book.close()

    async def reserve(
        self, key: KeyRecord, entry: ModelEntry, *, input_tokens: int, max_output_tokens: int | None
    ) -> Reservation:
        """Hold the bound of one attempt; raises InsufficientQuota (403) or ModelPriceError (400)."""
        if entry.prices is None:
            raise ModelPriceError(f"Pricing for the model '{entry.id}' is not set up.", param="model")
        output = (
            max_output_tokens if max_output_tokens is not None and max_output_tokens > 0 else entry.max_output_tokens
        )
        if entry.max_output_tokens > 0:
            output = min(output, entry.max_output_tokens)
        now = time.time()
        reservation = Reservation(
            id=new_id("res"),
            workspace_id=key.workspace_id,
            key_id=key.id,
            amount_micros=reservation_bound(entry.prices, input_tokens=input_tokens, max_output_tokens=output),
            model_id=entry.id,
            prices=entry.prices,
            created=now,
        )
        try:
            refusal = await self.book.reserve(
                reservation, credit_limit_micros=key.credit_limit_micros, deadline=now + self._ttl
            )
        except _BOOK_ERRORS as exc:
            log.exception("reserving credit failed")
            raise InternalError("Billing is temporarily unavailable.") from exc
        if refusal is not None:
            raise InsufficientQuota(_refusal_message(refusal, reservation.amount_micros))
        return reservation

    async def release(self, reservation: Reservation) -> None:
        """The attempt failed with no output: give the reservation back, charge nothing. Shielded: a caller
        cancelled meanwhile (client disconnect) does not stop it half-way."""
        await self._shielded(self._release(reservation))

    async def _release(self, reservation: Reservation) -> None:
        try:
            await self.book.release(reservation)
        except _BOOK_ERRORS:
            log.warning("releasing reservation %s failed; the sweeper will release it", reservation.id, exc_info=True)

    async def settle(self, reservation: Reservation | None, record: CallRecord) -> None:
        """Charge the call's actual cost, release the rest of its reservation, and log its usage record.

        Without a reservation (refused before reserving: authentication, validation, limits) the record is
        logged at cost 0 when its workspace is known, and nothing is charged. Shielded like `release`: once
        called, the charge and the record are made even if the caller is cancelled.
        """
        await self._shielded(self._settle(reservation, record))

    async def _shielded(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    async def _settle(self, reservation: Reservation | None, record: CallRecord) -> None:
        if reservation is None:
            if record.workspace_id is None:
                return
            await self.usage_log.put(
                _item(record, workspace_id=record.workspace_id, key_id=record.key_id, cost=0, charged=False)
            )
            return
        provider, rates = self._rates(reservation.model_id)
        cost = cost_micros(record.usage, reservation.prices, tool_rates=rates, provider=provider)
        try:
            charged = await self.book.settle(reservation, cost)
        except _BOOK_ERRORS:
            # The ledger still gets the charge below; only the live balance misses it until re-read.
            log.warning("settling reservation %s in the book failed", reservation.id, exc_info=True)
            charged = False
        if not charged and cost:
            log.warning("reservation %s was not held when settled; charging the ledger only", reservation.id)
        await self.usage_log.put(
            _item(record, workspace_id=reservation.workspace_id, key_id=reservation.key_id, cost=cost, charged=charged)
        )

    def _rates(self, model_id: str) -> tuple[str, Mapping[str, ToolRate]]:
        entry = self._catalogue.get(model_id) if self._catalogue is not None else None
        provider = entry.provider if entry is not None else model_id.partition("/")[0]
        rates = self._tool_rates.get(model_id)
        if rates is None:
            rates = self._tool_rates[model_id] = tool_rates_for(provider, model_id)
        return provider, rates


def _refusal_message(refusal: Refusal, amount: int) -> str:
    if refusal == "key_credit":
        return (
            f"This API key's credit limit cannot cover this request (up to ${format_usd(amount)}). "
            "Raise the key's limit or use another key."
        )
    return f"Insufficient balance to cover this request (up to ${format_usd(amount)}). Top up your credits."


def _item(record: CallRecord, *, workspace_id: str, key_id: str | None, cost: int, charged: bool) -> UsageItem:
    usage = record.usage
    elapsed = time.monotonic() - record.started
    return UsageItem(
        request_id=record.request_id,
        created_at=datetime.now(UTC) - timedelta(seconds=max(elapsed, 0.0)),
        endpoint=record.endpoint,
        status=record.status,
        workspace_id=workspace_id,
        key_id=key_id,
        requested_model=record.requested_model,
        served_model=record.served_model,
        router=record.router,
        fallback_level=record.fallback_level,
        stream=record.stream,
        error_code=record.error_code,
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        server_tool_calls=dict(usage.server_tool_calls),
        cost_micros=cost,
        latency_ms=record.latency_ms,
        ttft_ms=record.ttft_ms,
        client_disconnected=record.client_disconnected,
        book_charged=charged,
    )
