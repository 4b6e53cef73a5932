"""Proving "no database round-trip per request": a launcher that runs the ordinary `clearmaas` command line in a
process that counts everything it asks of its database and of Redis, and can slow its database down on demand.

`python -m bench.dbprobe COUNTS.json serve --port N --config FILE`:
- SQL: SQLAlchemy events on the `Engine` class (so every engine, SQLite or PostgreSQL) count each statement
  the process executes, by kind (an `executemany` is one execution; its rows are counted apart), the
  transactions begun and committed, and the executions made on the event loop's thread (which would block
  every request in flight; the gateway must run its queries in worker threads).
- Redis: `redis.asyncio` commands sent one by one (`execute_command`, scripts included: EVALSHA) and
  pipelines (one round-trip each, whatever they hold).
- Slowing: while COUNTS.json.delay holds a number of milliseconds, every SQL execution first sleeps that long,
  in whatever thread runs it. A query on a request's path would add the delay to that request.

A thread rewrites COUNTS.json every 50 ms (and reads the delay file); `ProbeCounts` reads it for the bench.
`CLEARMAAS_BENCH_TIMELINE=1` also records the spans of what can hold a request up and appends them to
COUNTS.json.timeline (`_Timeline`; read by bench/tail.py).
`CLEARMAAS_BENCH_SWITCH_INTERVAL=SECONDS` sets the interpreter's GIL switch interval (an experiment knob).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ProbeCounts", "Snapshot", "main", "script_names"]

_LITERAL = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b|%\(\w+\)s|\$\d+")
_IN_LIST = re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)")


def _normalise(statement: str) -> str:
    text = _LITERAL.sub("?", " ".join(statement.split()))
    return _IN_LIST.sub("(?…)", text)[:80]


class _State:
    """The counters, shared by every thread of the probed process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sql: Counter[str] = Counter()
        self.sql_rows: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()  # executions, loop_thread, begin, commit, rollback, pipelines, ...
        self.redis: Counter[str] = Counter()
        self.delay = 0.0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"at": time.monotonic(), "sql": dict(self.sql), "sql_rows": dict(self.sql_rows),
                    "totals": dict(self.totals), "redis": dict(self.redis), "delay_ms": self.delay * 1000}


def _install_sql(state: _State) -> None:
    from sqlalchemy import Engine, event

    main_thread = threading.main_thread()

    def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                       executemany: bool) -> None:
        kind = _normalise(statement)
        on_loop = threading.current_thread() is main_thread
        with state.lock:
            state.sql[kind] += 1
            state.sql_rows[kind] += len(parameters) if executemany else 1
            state.totals["executions"] += 1
            if on_loop:
                state.totals["loop_thread"] += 1
            delay = state.delay
        if delay:
            time.sleep(delay)

    def bump(name: str) -> Any:
        def listener(*_args: Any) -> None:
            with state.lock:
                state.totals[name] += 1

        return listener

    event.listen(Engine, "before_cursor_execute", before_execute)
    for name in ("begin", "commit", "rollback"):
        event.listen(Engine, name, bump(name))


def _install_redis(state: _State) -> None:
    from redis.asyncio.client import Pipeline, Redis

    execute_command = Redis.execute_command
    execute_pipeline = Pipeline.execute

    async def counted_command(self: Redis, *args: Any, **options: Any) -> Any:
        name = str(args[0]).upper()
        if name == "EVALSHA":  # which script: the bench names them by their SHA-1 (`script_names`)
            name = f"EVALSHA {str(args[1])[:8]}"
        with state.lock:
            state.redis[name] += 1
            state.totals["redis_round_trips"] += 1
        return await execute_command(self, *args, **options)

    async def counted_pipeline(self: Pipeline, raise_on_error: bool = True) -> Any:
        with state.lock:
            state.redis[f"pipeline({len(self.command_stack)})"] += 1
            state.totals["redis_round_trips"] += 1
        return await execute_pipeline(self, raise_on_error)

    Redis.execute_command = counted_command  # type: ignore[method-assign]
    Pipeline.execute = counted_pipeline  # type: ignore[method-assign]


def _publish_forever(state: _State, counts_path: Path, timeline: _Timeline | None) -> None:
    tmp = counts_path.with_suffix(".tmp")
    delay_path = Path(f"{counts_path}.delay")
    while True:
        try:
            delay = float(delay_path.read_text() or 0) / 1000
        except (FileNotFoundError, ValueError):
            delay = 0.0
        with state.lock:
            state.delay = delay
        tmp.write_bytes(orjson.dumps(state.snapshot()))
        tmp.replace(counts_path)
        if timeline is not None:
            timeline.flush()
        time.sleep(0.05)


class Snapshot:
    """The counters at one instant; `a - b` is what happened between two snapshots."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.at: float = raw["at"]
        self.sql: Counter[str] = Counter(raw["sql"])
        self.sql_rows: Counter[str] = Counter(raw["sql_rows"])
        self.totals: Counter[str] = Counter(raw["totals"])
        self.redis: Counter[str] = Counter(raw["redis"])

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        return Snapshot({"at": self.at - earlier.at, "sql": self.sql - earlier.sql,
                         "sql_rows": self.sql_rows - earlier.sql_rows, "totals": self.totals - earlier.totals,
                         "redis": self.redis - earlier.redis})

    def __add__(self, other: Snapshot) -> Snapshot:
        return Snapshot({"at": self.at + other.at, "sql": self.sql + other.sql,
                         "sql_rows": self.sql_rows + other.sql_rows, "totals": self.totals + other.totals,
                         "redis": self.redis + other.redis})

    @classmethod
    def empty(cls) -> Snapshot:
        return cls({"at": 0.0, "sql": {}, "sql_rows": {}, "totals": {}, "redis": {}})

    def usage_batches(self) -> tuple[int, int]:
        """(batches, records) of the usage log: executions and rows of its INSERT."""
        kinds = [kind for kind in self.sql if kind.startswith("INSERT INTO usage_records")]
        return sum(self.sql[k] for k in kinds), sum(self.sql_rows[k] for k in kinds)


def script_names() -> dict[str, str]:
    """The first 8 hex digits of each Lua script's SHA-1 (what EVALSHA sends) -> `module.CONSTANT`."""
    import hashlib

    from clearmaas.billing import redis_state
    from clearmaas.limits import redis_counter

    names = {}
    for module in (redis_state, redis_counter):
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                sha = hashlib.sha1(value.encode()).hexdigest()[:8]
                names[sha] = f"{module.__name__.rsplit('.', 1)[-1]}.{name.strip('_').lower()}"
    return names


class ProbeCounts:
    """Reads the launcher's counters and sets its database delay."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Snapshot:
        time.sleep(0.12)  # let the publishing thread catch up with everything executed so far
        return Snapshot(orjson.loads(self.path.read_bytes()))

    def slow_database(self, delay_ms: float) -> None:
        """Every SQL execution sleeps `delay_ms` first, from the next publishing tick (50 ms) on."""
        Path(f"{self.path}.delay").write_text(str(delay_ms))
        time.sleep(0.15)


class _Timeline:
    """Spans of what can hold a request up, on this process's monotonic clock (shared with the bench):
    garbage collections, usage-log batches (the writer thread's transaction, the loop's share after it),
    Redis round-trips. Appended to `<counts>.timeline` as JSON lines by the publishing thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans: deque[tuple[str, int, int]] = deque()  # appended by any thread, drained by the publisher
        self._gc_started = 0

    def install(self) -> None:
        import gc

        clock = time.monotonic_ns

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                self._gc_started = clock()
            else:
                self.spans.append((f"gc{info['generation']}", self._gc_started, clock()))

        gc.callbacks.append(on_gc)
        self._time_usage_log(clock)
        self._time_redis(clock)
        self._time_requests(clock)

    def _time_usage_log(self, clock: Any) -> None:
        from clearmaas.billing import usage_log

        write_counted = usage_log._write_counted

        def timed_write(engine: Any, items: Any) -> Any:
            started = clock()
            try:
                return write_counted(engine, items)
            finally:
                self.spans.append((f"writer({len(items)})", started, clock()))

        usage_log._write_counted = timed_write
        on_loop = usage_log.UsageLog.__init__

        def init(self_: Any, engine: Any, **options: Any) -> None:
            flushed = options.get("on_flushed")
            if flushed is not None:
                def timed_flushed(charges: Any) -> None:
                    started = clock()
                    flushed(charges)
                    self.spans.append((f"on_flushed({len(charges)})", started, clock()))
                options["on_flushed"] = timed_flushed
            on_loop(self_, engine, **options)

        usage_log.UsageLog.__init__ = init  # type: ignore[method-assign]
        put = usage_log.UsageLog.put

        async def timed_put(self_: Any, item: Any) -> None:  # only awaited when the queue is full
            started = clock()
            await put(self_, item)
            self.spans.append(("queue_full", started, clock()))

        usage_log.UsageLog.put = timed_put  # type: ignore[method-assign]

    def _time_redis(self, clock: Any) -> None:
        from redis.asyncio.client import Pipeline, Redis

        command, pipeline = Redis.execute_command, Pipeline.execute

        async def timed_command(self_: Any, *args: Any, **options: Any) -> Any:
            started = clock()
            try:
                return await command(self_, *args, **options)
            finally:
                self.spans.append((f"redis {args[0]}", started, clock()))

        async def timed_pipeline(self_: Any, raise_on_error: bool = True) -> Any:
            started = clock()
            size = len(self_.command_stack)
            try:
                return await pipeline(self_, raise_on_error)
            finally:
                self.spans.append((f"pipeline({size})", started, clock()))

        Redis.execute_command = timed_command  # type: ignore[method-assign]
        Pipeline.execute = timed_pipeline  # type: ignore[method-assign]

    def _time_requests(self, clock: Any) -> None:
        """Each HTTP request from its arrival to its last body byte ("request"), and each upstream call from its
        send to the upstream's head ("upstream"): a slow request's time splits into the gateway's own work and
        the wait for the upstream."""
        from clearmaas.transport import client as transport_client
        from clearmaas.web import server as web_server

        spans, build_app = self.spans, web_server.build_app

        def timed_build_app(*args: Any, **kwargs: Any) -> Any:
            app = build_app(*args, **kwargs)

            async def timed_app(scope: Any, receive: Any, send: Any) -> Any:
                if scope["type"] != "http":
                    return await app(scope, receive, send)
                started = clock()

                async def timed_send(message: Any) -> Any:
                    if message["type"] == "http.response.body" and not message.get("more_body"):
                        spans.append(("request", started, clock()))
                    return await send(message)

                return await app(scope, receive, timed_send)

            return timed_app

        web_server.build_app = timed_build_app
        send_upstream = transport_client.UpstreamClient.send

        async def timed_send_upstream(self_: Any, *args: Any, **kwargs: Any) -> Any:
            started = clock()
            response = await send_upstream(self_, *args, **kwargs)
            spans.append(("upstream", started, clock()))
            return response

        transport_client.UpstreamClient.send = timed_send_upstream  # type: ignore[method-assign]

    def flush(self) -> None:
        spans = [self.spans.popleft() for _ in range(len(self.spans))]
        if spans:
            with self.path.open("ab") as out:
                out.write(b"".join(orjson.dumps(span) + b"\n" for span in spans))


def main(argv: list[str]) -> None:
    # For experiments: the interpreter's GIL switch interval (seconds; Python's default is 0.005), which bounds
    # how long the event loop can wait for the GIL while a worker thread (the usage-log writer) holds it.
    interval = os.environ.get("CLEARMAAS_BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    state = _State()
    _install_sql(state)
    _install_redis(state)
    timeline = _Timeline(Path(f"{argv[0]}.timeline")) if os.environ.get("CLEARMAAS_BENCH_TIMELINE") else None
    if timeline is not None:
        timeline.install()
    threading.Thread(target=_publish_forever, args=(state, Path(argv[0]), timeline), name="bench-probe",
                     daemon=True).start()
    from clearmaas.cli import main as clearmaas_main

    clearmaas_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
