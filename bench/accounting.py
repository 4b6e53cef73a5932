"""What each gateway asked of its database and of Redis while it served the bench's requests: the counting
launcher's figures (bench/dbprobe.py) per gateway and per phase, PostgreSQL's own transaction counters for the
scratch database, and Redis's command counters, turned into figures per request and per usage-log batch."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from bench.dbprobe import Snapshot, script_names
from bench.modes import Backends, Gateway

__all__ = ["Accounting", "summarise"]

T = TypeVar("T")

# PostgreSQL backends publish their statistics at most once a second (PGSTAT_MIN_INTERVAL) when idle.
_PG_STATS_LAG = 1.2


class Accounting:
    """Snapshots every gateway's counters (and the shared servers') around each phase."""

    def __init__(self, gateways: dict[str, Gateway], shared: Backends | None) -> None:
        self.gateways = gateways
        self.shared = shared
        self.phases: dict[str, dict[str, Any]] = {}

    def _read(self) -> tuple[dict[str, Snapshot], dict[str, int], dict[str, tuple[int, int]]]:
        snaps = {key: gw.counts.read() for key, gw in self.gateways.items()}
        pg = self.shared.pg_stats() if self.shared is not None else {}
        redis = self.shared.redis_commandstats() if self.shared is not None else {}
        return snaps, pg, redis

    def measure(self, phase: str, run: Callable[[], T]) -> T:
        """Run one phase and keep what each gateway did meanwhile (`requests` are added by `served`)."""
        before = self._read()
        started = time.monotonic()
        result = run()
        time.sleep(0.4)  # the usage log writes what it holds within 200 ms
        if self.shared is not None:
            time.sleep(_PG_STATS_LAG)
        after = self._read()
        seconds = time.monotonic() - started
        pg = {k: after[1][k] - before[1].get(k, 0) for k in after[1]}
        redis = {cmd: (calls - before[2].get(cmd, (0, 0))[0], usec - before[2].get(cmd, (0, 0))[1])
                 for cmd, (calls, usec) in after[2].items()}
        self.phases[phase] = {"seconds": round(seconds, 2),
                              "probe": {key: after[0][key] - before[0][key] for key in self.gateways},
                              "requests": dict.fromkeys(self.gateways, 0),
                              "pg_server": pg,
                              "redis_server": {cmd: v for cmd, v in redis.items() if v[0]}}
        return result

    def served(self, phase: str, mode: str, requests: int) -> None:
        self.phases[phase]["requests"][mode] += requests


def summarise(accounting: Accounting, *, idle_phase: str, load_phases: list[str]) -> dict[str, Any]:
    """Per gateway, over the load phases: requests, SQL executions and transactions, usage-log batches and the
    records in them, executions on the event loop's thread, Redis round-trips; the background rate (the caches'
    refreshes, the book's balance refresh) comes from the idle phase and is taken off before dividing by
    batches."""
    idle = accounting.phases[idle_phase]
    out: dict[str, Any] = {"idle_seconds": idle["seconds"], "load_phases": load_phases, "modes": {}}
    for mode in accounting.gateways:
        total = Snapshot.empty()
        requests = 0
        seconds = 0.0
        for phase in load_phases:
            block = accounting.phases[phase]
            total = total + block["probe"][mode]
            requests += block["requests"][mode]
            seconds += block["seconds"]
        idle_snap: Snapshot = idle["probe"][mode]

        def beyond(total_count: int, idle_count: int) -> float:
            """What the load added to a count: the total less the idle rate over the same time."""
            return max(total_count - idle_count / max(idle["seconds"], 1e-9) * seconds, 0.0)

        batches, records = total.usage_batches()
        executions = total.totals["executions"]
        extra_sql = beyond(executions, idle_snap.totals["executions"])
        extra_txns = beyond(total.totals["begin"], idle_snap.totals["begin"])
        extra_redis = beyond(total.totals["redis_round_trips"], idle_snap.totals["redis_round_trips"])
        names = script_names()
        scripts = {f"{names.get(cmd.split()[1], cmd)}": n for cmd, n in total.redis.items() if cmd.startswith("EVALSHA")}
        row: dict[str, Any] = {
            "requests": requests, "seconds": round(seconds, 1),
            "sql_executions": executions, "sql_per_request": round(executions / max(requests, 1), 5),
            "transactions": total.totals["begin"], "commits": total.totals["commit"],
            "transactions_per_request": round(total.totals["begin"] / max(requests, 1), 5),
            "load_transactions_per_request": round(extra_txns / max(requests, 1), 5),
            "loop_thread_executions": total.totals["loop_thread"],
            "usage_batches": batches, "usage_records": records,
            "records_per_batch": round(records / batches, 1) if batches else 0,
            "background_per_second": round(idle_snap.totals["executions"] / max(idle["seconds"], 1e-9), 2),
            "sql_per_batch_beyond_background": round(extra_sql / batches, 1) if batches else None,
            "sql_kinds": dict(total.sql.most_common(10)),
            "idle_sql_kinds": dict(idle_snap.sql.most_common(10)),
            "redis_round_trips": total.totals["redis_round_trips"],
            "redis_per_request": round(total.totals["redis_round_trips"] / max(requests, 1), 3),
            "load_redis_per_request": round(extra_redis / max(requests, 1), 3),
            "redis_scripts_per_request": {name: round(n / max(requests, 1), 3) for name, n in scripts.items()},
            "redis_commands": dict(total.redis.most_common(10)),
            "idle_redis_commands": dict(idle_snap.redis.most_common(10)),
        }
        out["modes"][mode] = row
    if accounting.shared is not None:
        pg: Counter[str] = Counter()
        redis_calls: Counter[str] = Counter()
        redis_usec: Counter[str] = Counter()
        for phase in load_phases:
            block = accounting.phases[phase]
            pg.update(block["pg_server"])
            for cmd, (calls, usec) in block["redis_server"].items():
                redis_calls[cmd] += calls
                redis_usec[cmd] += usec
        shared = out["modes"].get("pg", {})
        shared_requests = shared.get("requests", 0)
        transactions = pg["xact_commit"] + pg["xact_rollback"]
        idle_transactions = idle["pg_server"]["xact_commit"] + idle["pg_server"]["xact_rollback"]
        extra = max(transactions - idle_transactions / max(idle["seconds"], 1e-9) * shared.get("seconds", 0.0), 0.0)
        out["pg_server"] = {**dict(pg), "transactions": transactions,
                            "transactions_per_request": round(transactions / max(shared_requests, 1), 5),
                            "load_transactions_per_request": round(extra / max(shared_requests, 1), 5),
                            "idle_transactions_per_second": round(idle_transactions / max(idle["seconds"], 1e-9), 2),
                            "idle": idle["pg_server"]}
        # The whole server's counters: other clients of the same Redis (another test run) count here too.
        out["redis_server"] = {"calls": dict(redis_calls.most_common(8)), "usec": dict(redis_usec.most_common(8)),
                               "evalsha_calls": redis_calls["evalsha"],
                               "evalsha_usec_per_call": round(redis_usec["evalsha"] / max(redis_calls["evalsha"], 1), 1),
                               "our_evalsha_calls": sum(n for cmd, n in shared.get("redis_commands", {}).items()
                                                        if cmd.startswith("EVALSHA"))}
    return out
