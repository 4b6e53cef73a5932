"""Percentiles, the targets the issues set (the gateway's own cost, and the money path's cost against the same
gateway with billing off), the machine's description and the JSON written to bench/results/latest.json."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["TARGETS", "check_targets", "machine", "percentile", "ratio_rows", "summary_ms", "write_json"]

# Issue 2 (the gateway's own cost) in ms and req/s; issue 3 (billing on vs off: within 15 %; no database
# round-trip per request).
TARGETS = {"added_p50_ms": 0.5, "added_p99_ms": 1.0, "rps_one_process": 3000.0, "stream_added_ttfb_ms": 1.0,
           "billing_latency_ratio": 1.15, "billing_rps_ratio": 0.85, "transactions_per_request": 0.05,
           "slowed_p50_change_ms": 1.0, "slowed_rps_ratio": 0.85, "redis_per_request": 3.0}
BASE_PATHS = ("chat passthrough", "messages -> openai")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values_ns: Sequence[int]) -> dict[str, float]:
    values = [v / 1e6 for v in values_ns]
    return {"n": len(values), "p50": round(percentile(values, 50), 4), "p90": round(percentile(values, 90), 4),
            "p99": round(percentile(values, 99), 4), "mean": round(sum(values) / max(len(values), 1), 4)}


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": model, "cores": os.cpu_count(),
            "python": platform.python_version(), "kernel": platform.release(), "commit": commit,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def _ratio(on: float, off: float) -> float:
    return on / off if off > 0 else math.inf


def _median_ratio(on: Sequence[float], off: Sequence[float]) -> float:
    return statistics.median(_ratio(a, b) for a, b in zip(on, off, strict=True))


def ratio_rows(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Billing on / billing off, per billing-on gateway and path: (measured, noise removed).

    Latency: the added p50 and p99 (gateway minus direct) pooled, and the median over rounds of each round's
    ratio of net added latencies (the paths ran interleaved, so a round's two figures saw the same machine).
    Throughput: median req/s, and the median over rounds of the ratio of capacities (req/s per CPU-second).
    Streams: added first event p50, raw and net.
    """
    rows: dict[str, dict[str, Any]] = {}
    on_modes = [key for key, mode in results.get("modes", {}).items() if mode["billing"]]
    latency = results.get("latency", {}).get("added", {})
    throughput = results.get("throughput", {})
    streams = results.get("streams", {}).get("variants", {})
    for mode in on_modes:
        for base in BASE_PATHS:
            on, off = latency.get(f"{base} [{mode}]"), latency.get(f"{base} [off]")
            if on and off:
                for q in ("p50", "p99"):
                    rows[f"c=1 added {q}, {base} [{mode}]"] = {
                        "measured": _ratio(on[q], off[q]),
                        "clean": _median_ratio(on[f"round_net_{q}"], off[f"round_net_{q}"]), "kind": "latency"}
            name_on, name_off = f"{base} [{mode}]", f"{base} [off]"
            if name_on in throughput.get("median_rps", {}) and name_off in throughput["median_rps"]:
                rows[f"req/s, {base} [{mode}]"] = {
                    # Per round, then the median: each round's on and off runs are seconds apart (phases.py).
                    "measured": _median_ratio(throughput["round_rps"][name_on], throughput["round_rps"][name_off]),
                    "clean": _median_ratio(throughput["round_capacity"][name_on],
                                           throughput["round_capacity"][name_off]), "kind": "rps"}
        for variant, block in streams.items():
            for base in ("chat stream passthrough", "messages stream -> openai"):
                on, off = block["added"].get(f"{base} [{mode}]"), block["added"].get(f"{base} [off]")
                if on and off:
                    rows[f"stream 1st event p50, {base.replace(' stream', '')}, {variant} [{mode}]"] = {
                        "measured": _ratio(on["first_event_p50"], off["first_event_p50"]),
                        "clean": _ratio(on["first_event_net_p50"], off["first_event_net_p50"]), "kind": "latency"}
    for row in rows.values():
        row["measured"], row["clean"] = round(row["measured"], 3), round(row["clean"], 3)
    return rows


def check_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the figure as measured and the figure with the shared machine's noise taken out, and
    whether each meets it."""
    out: dict[str, dict[str, Any]] = {}
    latency = results.get("latency", {}).get("added", {})
    throughput = results.get("throughput", {})
    for mode in results.get("modes", {}):
        added = latency.get(f"chat passthrough [{mode}]")
        if added:
            out[f"c=1 added p50, chat passthrough [{mode}]"] = _target(
                added["p50"], added["median_round_net_p50"], TARGETS["added_p50_ms"], "ms")
            out[f"c=1 added p99, chat passthrough [{mode}]"] = _target(
                added["p99"], added["median_round_net_p99"], TARGETS["added_p99_ms"], "ms")
        for base in BASE_PATHS:
            name = f"{base} [{mode}]"
            if name in throughput.get("median_rps", {}):
                out[f"req/s of one process, {name}"] = _target(
                    throughput["median_rps"][name], throughput["capacity_rps"][name], TARGETS["rps_one_process"],
                    "req/s", at_least=True)
    for variant, block in results.get("streams", {}).get("variants", {}).items():
        for name, row in block["added"].items():
            out[f"stream 1st event p50, {name.replace(' stream', '')}, {variant}"] = _target(
                row["first_event_p50"], row["first_event_net_p50"], TARGETS["stream_added_ttfb_ms"], "ms")
    for name, row in ratio_rows(results).items():
        if row["kind"] == "rps":
            out[f"on/off {name}"] = _target(row["measured"], row["clean"], TARGETS["billing_rps_ratio"], "",
                                            at_least=True)
        else:
            out[f"on/off {name}"] = _target(row["measured"], row["clean"], TARGETS["billing_latency_ratio"], "")
    _database_targets(results, out)
    return out


def _database_targets(results: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    accounting = results.get("accounting")
    if accounting:
        for mode, row in accounting["modes"].items():
            out[f"SQL executions on the event loop thread [{mode}]"] = _target(
                row["loop_thread_executions"], row["loop_thread_executions"], 0, "")
            if results["modes"][mode]["billing"]:
                # Beyond the background (the caches' once-a-second refreshes), which grows with time, not load.
                out[f"DB transactions per request, beyond the background [{mode}]"] = _target(
                    row["load_transactions_per_request"], row["load_transactions_per_request"],
                    TARGETS["transactions_per_request"], "")
            if results["modes"][mode]["shared"]:
                server = accounting.get("pg_server", {})
                out[f"  the same, PostgreSQL's own count (pg_stat_database) [{mode}]"] = _target(
                    server.get("load_transactions_per_request", math.nan),
                    server.get("load_transactions_per_request", math.nan), TARGETS["transactions_per_request"], "")
                # One round-trip each for reserve, settle and admit is allowed (issue 3).
                out[f"Redis round-trips per request, beyond the background [{mode}]"] = _target(
                    row["load_redis_per_request"], row["load_redis_per_request"], TARGETS["redis_per_request"], "")
    for mode, slowed in results.get("slowed", {}).items():
        change = slowed["change"]
        out[f"DB +{slowed['delay_ms']:g} ms/statement: c=1 p50 change [{mode}]"] = _target(
            change["p50"], change["median_round_net_p50"], TARGETS["slowed_p50_change_ms"], "ms")
        out[f"DB +{slowed['delay_ms']:g} ms/statement: req/s slowed/normal [{mode}]"] = _target(
            change["rps_ratio"], change["capacity_ratio"], TARGETS["slowed_rps_ratio"], "", at_least=True)


def _target(measured: float, clean: float, target: float, unit: str, *, at_least: bool = False) -> dict[str, Any]:
    def meets(value: float) -> bool:
        return value >= target if at_least else value <= target

    return {"measured": round(measured, 3), "clean": round(clean, 3), "target": target, "unit": unit,
            "at_least": at_least, "met": meets(measured), "clean_met": meets(clean)}


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
