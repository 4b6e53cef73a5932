"""The usage log: one row per request, written off the hot path in batches, each batch in ONE transaction with
its ledger charges and the balance and key-spend updates they imply.

`UsageLog.put` waits for room when the bounded queue is full (back-pressure: records are never dropped to
keep up). A single writer task takes up to `batch_size` records or whatever arrived within `max_delay`,
writes them in a worker thread with synchronous SQLAlchemy, and between batches runs the book's periodic
work (`maintain`), so a balance is never re-read while a batch of this process is half committed.

Writing is idempotent on `request_id`: a batch retried after an ambiguous failure (the commit happened but
its acknowledgement was lost) skips the records already stored, so nothing is charged twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clearmaas.billing.book import Charge
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces

__all__ = ["UsageItem", "UsageLog", "write_batch"]

log = logging.getLogger("clearmaas.billing")

_TRANSIENT = (OperationalError, InterfaceError, PoolTimeout)
# Column widths (schema.py): a longer value would fail the whole batch on PostgreSQL.
_WIDTHS: Final = {
    "request_id": 64, "workspace_id": 32, "key_id": 32, "requested_model": 200, "served_model": 200,
    "router": 64, "endpoint": 32, "error_code": 64,
}  # fmt: skip


@dataclass(slots=True)
class UsageItem:
    """One usage record, and the charge it carries (`cost_micros` against `workspace_id` / `key_id`)."""

    request_id: str
    created_at: datetime
    endpoint: str
    status: int
    workspace_id: str | None = None
    key_id: str | None = None
    requested_model: str | None = None
    served_model: str | None = None
    router: str | None = None
    fallback_level: int | None = None
    stream: bool = False
    error_code: str | None = None
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    server_tool_calls: dict[str, int] = field(default_factory=dict)
    cost_micros: int = 0
    latency_ms: int | None = None
    ttft_ms: int | None = None
    client_disconnected: bool = False
    # Whether the balance book counted this charge (so it must hear when the database has it).
    book_charged: bool = False

    def row(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies and cost ~30 us a record on the writer thread, which
        # shares the core (and the GIL) with the event loop (bench/README.md).
        values = {name: getattr(self, name) for name in _ROW_FIELDS}
        for name, width in _WIDTHS.items():
            text = values[name]
            if isinstance(text, str) and len(text) > width:
                values[name] = text[:width]
        values["stream"] = int(self.stream)
        values["client_disconnected"] = int(self.client_disconnected)
        values["server_tool_calls"] = orjson.dumps(self.server_tool_calls).decode() if self.server_tool_calls else None
        return values

    def charge(self) -> Charge | None:
        if not self.book_charged or not self.cost_micros or self.workspace_id is None or self.key_id is None:
            return None
        return Charge(self.workspace_id, self.key_id, self.cost_micros)


_ROW_FIELDS = tuple(f.name for f in fields(UsageItem) if f.name != "book_charged")


def write_batch(engine: Engine, items: Sequence[UsageItem]) -> int:
    """Store the records not stored yet, their charges, and the balance and spend changes, in one
    transaction; returns how many records were new."""
    unique = list({item.request_id[:64]: item for item in reversed(items)}.values())
    with engine.begin() as connection:
        ids = [item.request_id[:64] for item in unique]
        stored = set(
            connection.execute(select(usage_records.c.request_id).where(usage_records.c.request_id.in_(ids))).scalars()
        )
        new = [item for item in unique if item.request_id[:64] not in stored]
        if not new:
            return 0
        connection.execute(usage_records.insert(), [item.row() for item in new])
        charged = [item for item in new if item.cost_micros and item.workspace_id is not None]
        if charged:
            connection.execute(
                ledger_entries.insert(),
                [
                    {
                        "workspace_id": item.workspace_id,
                        "kind": "charge",
                        "amount_micros": -item.cost_micros,
                        "request_id": item.request_id[:64],
                        "key_id": item.key_id,
                        "created_at": item.created_at,
                    }
                    for item in charged
                ],
            )
            by_workspace: dict[str, int] = defaultdict(int)
            by_key: dict[str, int] = defaultdict(int)
            for item in charged:
                by_workspace[str(item.workspace_id)] += item.cost_micros
                if item.key_id is not None:
                    by_key[item.key_id] += item.cost_micros
            # Sorted, so concurrent writers (replicas) lock rows in the same order and cannot deadlock.
            connection.execute(
                update(workspaces)
                .where(workspaces.c.id == bindparam("target"))
                .values(balance_micros=workspaces.c.balance_micros - bindparam("delta")),
                [{"target": ws, "delta": by_workspace[ws]} for ws in sorted(by_workspace)],
            )
            if by_key:
                connection.execute(
                    update(api_keys)
                    .where(api_keys.c.id == bindparam("target"))
                    .values(spent_micros=api_keys.c.spent_micros + bindparam("delta")),
                    [{"target": key, "delta": by_key[key]} for key in sorted(by_key)],
                )
    return len(new)


class _Stop:
    """Queued by `stop()` after the last record."""


_STOP: Final = _Stop()


class UsageLog:
    """The bounded queue of usage records and the single task that writes them."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_flushed: Callable[[list[Charge]], None] = lambda charges: None,
        maintain: Callable[..., Awaitable[None]] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        max_delay: float = 0.2,
        maintain_interval: float = 1.0,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._on_flushed = on_flushed
        self._maintain = maintain
        self._queue: asyncio.Queue[UsageItem | _Stop] = asyncio.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._maintain_interval = maintain_interval
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stop_timeout = stop_timeout
        self._stop_deadline: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def put(self, item: UsageItem) -> None:
        """Queue a record, waiting while the queue is full. After `stop()`, write it directly."""
        if self._closed:
            await self._write([item])
            return
        await self._queue.put(item)

    async def start(self) -> None:
        if self._task is None:
            self._closed = False
            self._task = asyncio.create_task(self._run(), name="clearmaas-usage-log-writer")

    async def stop(self) -> None:
        """Write everything queued, then end the writer task."""
        task = self._task
        if task is None or self._closed:
            return
        self._closed = True
        self._stop_deadline = time.monotonic() + self._stop_timeout
        await self._queue.put(_STOP)
        await task
        self._task = None

    async def _run(self) -> None:
        next_maintain = time.monotonic() + self._maintain_interval
        while True:
            batch, stopping = await self._collect(max(next_maintain - time.monotonic(), 0.0))
            if batch:
                await self._write(batch)
            if stopping:
                return
            if time.monotonic() >= next_maintain:
                await self._run_maintain()
                next_maintain = time.monotonic() + self._maintain_interval

    async def _collect(self, wait: float) -> tuple[list[UsageItem], bool]:
        """Up to `batch_size` records: wait `wait` seconds for the first, then `max_delay` for more."""
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout=wait) if wait > 0 else self._queue.get_nowait()
        except (TimeoutError, asyncio.QueueEmpty):
            return [], False
        if isinstance(first, _Stop):
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._max_delay
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=remaining)
                except TimeoutError:
                    break
            if isinstance(item, _Stop):
                return batch, True
            batch.append(item)
        return batch, False

    async def _run_maintain(self) -> None:
        if self._maintain is None:
            return
        try:
            await self._maintain(refresh=True)
        except Exception:
            log.warning("refreshing balances failed; keeping the ones in memory", exc_info=True)

    async def _write(self, batch: list[UsageItem]) -> None:
        """Write a batch, retrying while the database is unreachable. A batch the database refuses for its
        content is written record by record; a record refused alone is logged in full and dropped."""
        delay = self._retry_delay
        while True:
            try:
                self.written += await asyncio.to_thread(write_batch, self._engine, batch)
                break
            except _TRANSIENT:
                if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                    _log_lost(batch, "the database stayed unreachable through shutdown")
                    break
                log.warning("writing %d usage records failed; retrying in %.1fs", len(batch), delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
            except SQLAlchemyError:
                if len(batch) == 1:
                    log.exception("the database refused a usage record")
                    _log_lost(batch, "the database refused it")
                    break
                for item in batch:
                    await self._write([item])
                return
        charges = [charge for charge in (item.charge() for item in batch) if charge is not None]
        if charges:
            self._on_flushed(charges)


def _log_lost(items: Iterable[UsageItem], why: str) -> None:
    for item in items:
        record = item.row()
        record["created_at"] = item.created_at.isoformat()
        log.error("usage record NOT stored (%s): %s", why, orjson.dumps(record).decode())
