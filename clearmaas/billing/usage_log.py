"""The usage log: one row per request, written off the hot path in batches, each batch in ONE transaction with
its ledger charges and the balance and key-spend updates they imply.

`UsageLog.offer` queues a record without waiting when there is room; `UsageLog.put` waits for room when the
bounded queue is full (back-pressure: records are never dropped to keep up). A single writer task wakes twice
a batch, not once a record: at the first record, and when `batch_size` records are queued or `max_delay` has
passed. It writes the batch in a worker thread, and between batches runs the book's periodic work
(`maintain`), so a balance is never re-read while a batch of this process is half committed.

Writing is idempotent on `request_id`: a batch retried after an ambiguous failure (the commit happened but
its acknowledgement was lost) skips the records already stored, so nothing is charged twice.

The worker thread shares the core (and the GIL) with the event loop, so every microsecond it spends on a
record is taken from serving requests (bench/README.md, "Where the time goes"). It therefore bypasses
SQLAlchemy's per-row bind processing: on SQLite each record becomes one tuple for the driver's
`executemany`; on PostgreSQL the whole batch is one JSON document (orjson) that a single statement unpacks,
stores, charges and summarises. Both store exactly what the `schema.py` tables would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clearmaas.billing.book import Charge

if TYPE_CHECKING:
    from clearmaas.relay.record import CallRecord

__all__ = ["UsageItem", "UsageLog", "book_charges", "write_batch"]

log = logging.getLogger("clearmaas.billing")

_TRANSIENT = (OperationalError, InterfaceError, PoolTimeout)
# Column widths (schema.py): a longer value would fail the whole batch on PostgreSQL.
_WIDTHS: Final = {
    "request_id": 64, "workspace_id": 32, "key_id": 32, "requested_model": 200, "served_model": 200,
    "router": 64, "endpoint": 32, "error_code": 64,
}  # fmt: skip


@dataclass(slots=True)
class UsageItem:
    """A finished call waiting in the usage log: its `CallRecord`, when it started on the wall clock, and the
    charge it carries (`cost_micros` against `workspace_id` / `key_id`).

    The usage row itself is built from the record once, by the writer (`_values` for SQLite, `_plain_values`
    for PostgreSQL): building a 23-field object on the event loop for every request and turning it into a tuple
    again on the writer cost ~14,000 instructions a request (bench/README.md). The record must not change
    once queued; `Gateway.finish` is the last to write to it.
    """

    record: CallRecord
    started_at: float  # wall-clock seconds (time.time()) at the request's start
    workspace_id: str | None
    key_id: str | None
    cost_micros: int = 0
    # Whether the balance book counted this charge (so it must hear when the database has it).
    book_charged: bool = False

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.started_at, UTC)

    def row(self) -> dict[str, Any]:
        """The `usage_records` row as the SQLAlchemy table binds it: what `_values` and the PostgreSQL
        statement store, and what a record that could not be stored is logged as."""
        values = dict(zip(_COLUMNS, _plain_values(self), strict=True))
        values["created_at"] = self.created_at
        for name, width in _WIDTHS.items():
            text = values[name]
            if isinstance(text, str) and len(text) > width:
                values[name] = text[:width]
        return values


def _plain_values(item: UsageItem) -> tuple[Any, ...]:
    """The record's `usage_records` values in `_COLUMNS` order, uncut, a missing one None, and the time as
    wall-clock seconds: what the PostgreSQL writer sends (as JSON) and `UsageItem.row` is made from."""
    record = item.record
    usage = record.usage
    started, finished, first_byte = record.started, record.finished, record.first_byte
    tools = usage.server_tool_calls
    return (
        record.request_id,
        item.started_at,
        item.workspace_id,
        item.key_id,
        record.requested_model,
        record.served_model,
        record.router,
        record.fallback_level,
        record.endpoint,
        int(record.stream),
        record.status,
        record.error_code,
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        orjson.dumps(tools).decode() if tools else None,
        item.cost_micros,
        None if finished is None else int((finished - started) * 1000),
        None if first_byte is None else int((first_byte - started) * 1000),
        int(record.client_disconnected),
    )


# The `usage_records` columns in the order of `_values`; tests/billing/test_usage_log_sql.py checks it names
# every column of the table.
_COLUMNS: Final = (
    "request_id", "created_at", "workspace_id", "key_id", "requested_model", "served_model", "router",
    "fallback_level", "endpoint", "stream", "status", "error_code", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "server_tool_calls", "cost_micros", "latency_ms",
    "ttft_ms", "client_disconnected",
)  # fmt: skip
_REQUEST, _WORKSPACE, _KEY = 0, 2, 3
_COST = _COLUMNS.index("cost_micros")
# SQLAlchemy's SQLite storage format for DateTime (sqlalchemy.dialects.sqlite.DATETIME).
_SQLITE_TIME: Final = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class _SomeStored(Exception):
    """A batch holds records stored before (a retry): roll back and write only the new ones."""


def _sqlite_time(started_at: float) -> str:
    """The text a `UtcDateTime` column holds on SQLite: the UTC time, no offset, six fractional digits."""
    moment = datetime.fromtimestamp(started_at, UTC)
    # Formatted here, not by `isoformat` (which goes through C's sprintf and costs ~1,700 instructions more).
    return _SQLITE_TIME % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond
    )


def _values(item: UsageItem) -> tuple[Any, ...]:
    """The record's `usage_records` values for SQLite, as `UsageItem.row` and the ORM would bind them, except
    that a missing value is bound as empty text or -1 (`_INSERT` turns them back into NULL). Text longer than
    its column is cut (the widths of `_WIDTHS`)."""
    record = item.record
    usage = record.usage
    started, finished, first_byte = record.started, record.finished, record.first_byte
    tools = usage.server_tool_calls
    fallback_level = record.fallback_level
    return (
        record.request_id[:64],
        _sqlite_time(item.started_at),
        (item.workspace_id or "")[:32],
        (item.key_id or "")[:32],
        (record.requested_model or "")[:200],
        (record.served_model or "")[:200],
        (record.router or "")[:64],
        -1 if fallback_level is None else fallback_level,
        record.endpoint[:32],
        int(record.stream),
        record.status,
        (record.error_code or "")[:64],
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        orjson.dumps(tools).decode() if tools else "",
        item.cost_micros,
        -1 if finished is None else int((finished - started) * 1000),
        -1 if first_byte is None else int((first_byte - started) * 1000),
        int(record.client_disconnected),
    )


def _unfit(exc: Exception) -> StatementError:
    # What SQLAlchemy's bind processing raises for such a value, so `UsageLog` isolates the record.
    return StatementError(f"a usage record cannot be stored: {exc}", None, None, exc)


# A missing value is bound as empty text or -1 and turned back into NULL by the statement: the sqlite3 module
# of Python 3.11 binds None through a failed adapter look-up that formats and discards an AttributeError, about
# 0.2 us per value against 0.02 us for a number, and a record has five to seven of them (bench/README.md).
# No value stored in these columns is ever empty text or a negative number.
_NULLABLE_TEXT: Final = frozenset(
    {"workspace_id", "key_id", "requested_model", "served_model", "router", "error_code", "server_tool_calls"}
)
_NULLABLE_NUMBER: Final = frozenset({"fallback_level", "latency_ms", "ttft_ms"})


def _placeholder(column: str) -> str:
    if column in _NULLABLE_TEXT:
        return "NULLIF(?, '')"
    if column in _NULLABLE_NUMBER:
        return "NULLIF(?, -1)"
    return "?"


_INSERT: Final = (
    f"INSERT INTO usage_records ({', '.join(_COLUMNS)}) VALUES ({', '.join(_placeholder(c) for c in _COLUMNS)})"
)
# The batch's charges, copied by SQLite from the rows just inserted rather than bound again from Python (five
# values a record). Those rows hold consecutive rowids: each insert takes the largest rowid + 1 while this
# transaction holds the database's write lock, so they are the `len(rows)` rowids up to `last_insert_rowid()`.
_LEDGER: Final = (
    "INSERT INTO ledger_entries (workspace_id, kind, amount_micros, request_id, key_id, created_at) "
    "SELECT workspace_id, 'charge', -cost_micros, request_id, key_id, created_at FROM usage_records "
    "WHERE rowid BETWEEN ? AND ? AND cost_micros <> 0 AND workspace_id IS NOT NULL ORDER BY rowid"
)
_BALANCE: Final = "UPDATE workspaces SET balance_micros = balance_micros - {mark} WHERE id = {mark}"
_SPEND: Final = "UPDATE api_keys SET spent_micros = spent_micros + {mark} WHERE id = {mark}"
_IN_CHUNK: Final = 500  # ids per `IN (...)`, well under SQLite's bound-parameter limit


# SQLite runs a batch's statements as one long burst of C code (about 15 us a record here), and the kernel
# lets a running thread finish its time slice (milliseconds) before a request the event loop was woken for
# gets the core: a request arriving mid-batch waited for most of the batch (bench/README.md, "The p99 at
# concurrency 1"). A progress handler, called every `_PROGRESS_STEPS` virtual-machine steps (about six rows),
# hands the core back after every `_YIELD_AFTER` seconds of the writer's own CPU time. Counted in CPU time, not
# per call or wall time: under full load every yield costs the writer one slice of the loop's, and it must keep
# up with the requests.
_PROGRESS_STEPS: Final = 1000
_YIELD_AFTER: Final = 0.0005
_sched_yield: Final = getattr(os, "sched_yield", None)  # POSIX only


class _Yielding:
    """The progress handler of one batch (see `_PROGRESS_STEPS`)."""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due = time.thread_time() + _YIELD_AFTER

    def __call__(self) -> int:
        used = time.thread_time()  # this thread's CPU time: what it waited for meanwhile does not count
        if used >= self.due:
            _sched_yield()  # releases the GIL too
            self.due = used + _YIELD_AFTER
        return 0  # non-zero would abort the statement


@contextlib.contextmanager
def _yielding(connection: Connection) -> Iterator[None]:
    """Within it, the connection's statements give the core back now and then (`_Yielding`)."""
    driver = connection.connection.driver_connection
    if _sched_yield is None or driver is None:
        yield
        return
    driver.set_progress_handler(_Yielding(), _PROGRESS_STEPS)
    try:
        yield
    finally:
        driver.set_progress_handler(None, 0)  # the pooled connection also serves the caches' reads


def _write_sqlite(engine: Engine, items: list[UsageItem]) -> int:
    """The first attempt inserts every record, skipping none; a record already stored (a retried batch) shows
    in the row count, and the batch is done again with only the records not stored yet."""
    try:
        rows = [_values(item) for item in items]
    except (TypeError, ValueError, AttributeError, OverflowError, OSError) as exc:
        raise _unfit(exc) from exc
    try:
        with engine.begin() as connection, _yielding(connection):
            inserted = connection.exec_driver_sql(_INSERT + " ON CONFLICT (request_id) DO NOTHING", rows)
            if inserted.rowcount != len(rows):
                raise _SomeStored
            _charge_sqlite(connection, rows)
        return len(rows)
    except _SomeStored:
        pass
    with engine.begin() as connection, _yielding(connection):
        # Read before the write lock is taken: a record another process stores in between fails this batch on
        # the primary key (and `UsageLog` writes its records one by one); it can never be charged twice.
        ids = [row[_REQUEST] for row in rows]
        stored: set[str] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = tuple(ids[start : start + _IN_CHUNK])
            query = f"SELECT request_id FROM usage_records WHERE request_id IN ({', '.join('?' * len(chunk))})"
            stored.update(request_id for (request_id,) in connection.exec_driver_sql(query, chunk))
        new = [row for row in rows if row[_REQUEST] not in stored]
        if new:
            connection.exec_driver_sql(_INSERT, new)
            _charge_sqlite(connection, new)
    return len(new)


def _charge_sqlite(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Charge the records just inserted (`rows`, all of them new), in the same transaction."""
    by_workspace: dict[str, int] = defaultdict(int)
    by_key: dict[str, int] = defaultdict(int)
    charged = 0
    for row in rows:
        cost, workspace_id = row[_COST], row[_WORKSPACE]
        if cost and workspace_id:
            charged += 1
            by_workspace[workspace_id] += cost
            if row[_KEY]:
                by_key[row[_KEY]] += cost
    if not charged:
        return
    (last,) = connection.exec_driver_sql("SELECT last_insert_rowid()").one()
    copied = connection.exec_driver_sql(_LEDGER, (last - len(rows) + 1, last)).rowcount
    if copied != charged:
        # Only if the rowids were not consecutive after all: roll back rather than charge the wrong rows.
        raise _unfit(RuntimeError(f"{copied} ledger charges for {charged} charged usage records"))
    _update_totals(connection, by_workspace, by_key, "?")


def _update_totals(connection: Connection, by_workspace: dict[str, int], by_key: dict[str, int], mark: str) -> None:
    # Sorted, so concurrent writers (replicas) lock rows in the same order and cannot deadlock.
    if by_workspace:
        statement = _BALANCE.format(mark=mark)
        connection.exec_driver_sql(statement, [(by_workspace[ws], ws) for ws in sorted(by_workspace)])
    if by_key:
        statement = _SPEND.format(mark=mark)
        connection.exec_driver_sql(statement, [(by_key[key], key) for key in sorted(by_key)])


# The batch as one JSON array of the records' values (`_plain_values`: a tuple built in Python and orjson's
# list encoding cost ~0.4 us a record, where orjson's encoding of the nested slotted dataclasses cost ~4 us),
# parsed once by the server as jsonb and read by position. Text is cut to its column's width as on SQLite;
# ON CONFLICT DO NOTHING skips the records an earlier attempt stored, and RETURNING gives only the new ones to
# the ledger insert and to the totals the writer then applies. `server_tool_calls` travels as orjson's text,
# so it is stored exactly as `UsageItem.row` has it; a number's text goes to float8 unchanged, so the time is
# the same double Python had.
_PG_WRITE: Final = """
WITH new AS (
    INSERT INTO usage_records (<columns>)
    SELECT left(v ->> 0, 64), to_timestamp((v ->> 1)::float8), left(v ->> 2, 32), left(v ->> 3, 32),
        left(v ->> 4, 200), left(v ->> 5, 200), left(v ->> 6, 64), (v ->> 7)::integer, left(v ->> 8, 32),
        (v ->> 9)::integer, (v ->> 10)::integer, left(v ->> 11, 64), (v ->> 12)::bigint, (v ->> 13)::bigint,
        (v ->> 14)::bigint, (v ->> 15)::bigint, (v ->> 16)::bigint, v ->> 17, (v ->> 18)::bigint,
        (v ->> 19)::integer, (v ->> 20)::integer, (v ->> 21)::integer
    FROM jsonb_array_elements(%s::jsonb) AS v
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id, created_at, workspace_id, key_id, cost_micros
), charged AS (
    INSERT INTO ledger_entries (workspace_id, kind, amount_micros, request_id, key_id, created_at)
    SELECT workspace_id, 'charge', -cost_micros, request_id, key_id, created_at FROM new
    WHERE cost_micros <> 0 AND workspace_id IS NOT NULL
)
SELECT workspace_id, key_id, count(*), sum(cost_micros)::bigint FROM new GROUP BY workspace_id, key_id
""".replace("<columns>", ", ".join(_COLUMNS))


def _write_postgres(engine: Engine, items: list[UsageItem]) -> int:
    try:
        document = orjson.dumps([_plain_values(item) for item in items]).decode()
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise _unfit(exc) from exc
    written = 0
    by_workspace: dict[str, int] = defaultdict(int)
    by_key: dict[str, int] = defaultdict(int)
    with engine.begin() as connection:
        for workspace_id, key_id, count, cost in connection.exec_driver_sql(_PG_WRITE, (document,)):
            written += count
            if cost and workspace_id is not None:
                by_workspace[workspace_id] += cost
                if key_id is not None:
                    by_key[key_id] += cost
        _update_totals(connection, by_workspace, by_key, "%s")
    return written


def write_batch(engine: Engine, items: Sequence[UsageItem]) -> int:
    """Store the records not stored yet, their charges, and the balance and spend changes, in one
    transaction; returns how many records were new."""
    unique: dict[str, UsageItem] = {}
    for item in items:
        unique.setdefault(item.record.request_id[:64], item)  # the first of a repeated id, as the table keeps it
    batch = list(unique.values())
    if not batch:
        return 0
    name = engine.dialect.name
    if name == "postgresql":
        return _write_postgres(engine, batch)
    if name == "sqlite":
        return _write_sqlite(engine, batch)
    raise NotImplementedError(f"usage records are written to SQLite or PostgreSQL, not {name}")


def book_charges(items: Iterable[UsageItem]) -> list[Charge]:
    """The charges of `items` that the balance book counted, summed per workspace and key: what `flushed`
    hears once their batch is committed (one entry per key instead of one per record)."""
    totals: dict[tuple[str, str], int] = {}
    for item in items:
        if item.book_charged and item.cost_micros and item.workspace_id is not None and item.key_id is not None:
            pair = (item.workspace_id, item.key_id)
            totals[pair] = totals.get(pair, 0) + item.cost_micros
    return [Charge(workspace_id, key_id, micros) for (workspace_id, key_id), micros in totals.items()]


def _write_counted(engine: Engine, items: list[UsageItem]) -> tuple[int, list[Charge]]:
    # Both in the worker thread: the charges are summed while the event loop serves requests.
    return write_batch(engine, items), book_charges(items)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class UsageLog:
    """The bounded queue of usage records and the single task that writes them.

    The queue is a plain deque, not an `asyncio.Queue`: a record is one append and the writer takes a batch in
    one go, where the queue's bookkeeping cost about a microsecond a record on each side (bench/README.md).
    Producers that find it full wait on futures of their own (`put`), woken when the writer takes a batch.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        on_flushed: Callable[[list[Charge]], None] = lambda charges: None,
        maintain: Callable[..., Awaitable[None]] | None = None,
        before_write: Callable[[], Awaitable[None]] | None = None,
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
        # The Redis book pushes the costs it holds, so the shared balance is charged before the database.
        self._before_write = before_write
        self._items: deque[UsageItem] = deque()
        # 0 or less: unbounded, as asyncio.Queue's maxsize.
        self._max_queue = max_queue if max_queue > 0 else 0
        self._batch_size = max(batch_size, 1)
        # A queue this long wakes a writer waiting for more records: a full batch, or a full queue if smaller
        # (its producers are waiting).
        self._full_batch = min(self._batch_size, self._max_queue) if self._max_queue else self._batch_size
        self._max_delay = max_delay
        self._maintain_interval = maintain_interval
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stop_timeout = stop_timeout
        self._stop_deadline: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # The writer's sleep, and the queue length that ends it early (`_sleep`).
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 1
        # Producers waiting for room in a full queue, oldest first.
        self._room: deque[asyncio.Future[None]] = deque()
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def offer(self, item: UsageItem) -> bool:
        """Queue a record if there is room, without waiting; False when the queue is full (or others are
        waiting for room) or the log has stopped, and the caller then awaits `put(item)`."""
        if self._closed or (self._max_queue and (len(self._items) >= self._max_queue or self._room)):
            return False
        self._append(item)
        return True

    async def put(self, item: UsageItem) -> None:
        """Queue a record, waiting while the queue is full (after the producers already waiting). After
        `stop()`, write it directly."""
        if self.offer(item):
            return
        loop = asyncio.get_running_loop()
        while not self._closed:
            room = loop.create_future()
            self._room.append(room)
            try:
                await room
            finally:
                with contextlib.suppress(ValueError):
                    self._room.remove(room)
            if not self._closed and len(self._items) < self._max_queue:
                self._append(item)
                return
        await self._write([item])

    def _append(self, item: UsageItem) -> None:
        items = self._items
        items.append(item)
        if self._waiter is not None and len(items) >= self._wake_at:
            _wake(self._waiter)

    def _wake_room(self) -> None:
        """Wake as many waiting producers as there is room for, oldest first (all of them after `stop`)."""
        free = len(self._room) if self._closed else self._max_queue - len(self._items)
        for waiter in self._room:
            if free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

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
        if self._waiter is not None:
            _wake(self._waiter)  # a writer waiting for more records takes what is queued now
        self._wake_room()  # producers waiting for room write their records themselves
        await task
        self._task = None

    async def _run(self) -> None:
        next_maintain = time.monotonic() + self._maintain_interval
        while True:
            batch = await self._collect(max(next_maintain - time.monotonic(), 0.0))
            if batch:
                await self._write(batch)
            if self._closed and not self._items:
                return
            if time.monotonic() >= next_maintain:
                await self._run_maintain()
                next_maintain = time.monotonic() + self._maintain_interval

    async def _collect(self, wait: float) -> list[UsageItem]:
        """Up to `batch_size` records: wait up to `wait` seconds for the first, then `max_delay` for more
        unless a full batch is queued sooner. Two wake-ups a batch, not one per record."""
        items = self._items
        if not items:
            if self._closed:
                return []
            await self._sleep(wait, 1)
            if not items:
                return []
        if not self._closed:
            await self._sleep(self._max_delay, self._full_batch)
        if len(items) <= self._batch_size:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(self._batch_size)]
        if self._room:
            self._wake_room()
        return batch

    async def _sleep(self, timeout: float, wake_at: int) -> None:
        """Sleep `timeout` seconds, or until the queue holds `wake_at` entries or `stop()` is called."""
        if timeout <= 0 or len(self._items) >= wake_at or self._closed:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        self._waiter, self._wake_at = waiter, wake_at
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

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
        if self._before_write is not None:
            try:
                await self._before_write()
            except Exception:
                log.warning("pushing settled costs before a usage batch failed", exc_info=True)
        delay = self._retry_delay
        charges: list[Charge] | None = None
        while True:
            try:
                written, charges = await asyncio.to_thread(_write_counted, self._engine, batch)
                self.written += written
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
        if charges is None:
            charges = book_charges(batch)
        if charges:
            self._on_flushed(charges)


def _log_lost(items: Iterable[UsageItem], why: str) -> None:
    for item in items:
        try:
            record = item.row()
            record["created_at"] = item.created_at.isoformat()
            text = orjson.dumps(record).decode()
        except (TypeError, ValueError, OverflowError, OSError):
            text = repr(item)  # the very value that could not be stored cannot be serialised either
        log.error("usage record NOT stored (%s): %s", why, text)
