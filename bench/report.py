"""Percentiles, the targets the issue sets, the compact table printed at the end, and the JSON written to
bench/results/latest.json."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["TARGETS", "check_targets", "machine", "percentile", "render", "summary_ms", "write_json"]

# The targets, in milliseconds and requests per second.
TARGETS = {"added_p50_ms": 0.5, "added_p99_ms": 1.0, "rps_one_process": 3000.0, "stream_added_ttfb_ms": 1.0}


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


def check_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the figure as measured and the figure with the shared machine's noise taken out
    (at concurrency 1, the median round of the net latencies; for throughput, requests per CPU-second of the
    gateway; for streams, net latencies), and whether each meets it."""
    out: dict[str, dict[str, Any]] = {}
    added = results.get("latency", {}).get("added", {}).get("chat passthrough")
    if added:
        out["c=1 added p50, chat passthrough"] = _target(added["p50"], added["median_round_net_p50"],
                                                            TARGETS["added_p50_ms"], "ms")
        out["c=1 added p99, chat passthrough"] = _target(added["p99"], added["median_round_net_p99"],
                                                            TARGETS["added_p99_ms"], "ms")
    throughput = results.get("throughput", {})
    for name in ("chat passthrough", "messages -> openai"):
        rps = throughput.get("median_rps", {}).get(name)
        if rps is not None:
            out[f"req/s of one process, {name}"] = _target(rps, throughput["capacity_rps"][name],
                                                           TARGETS["rps_one_process"], "req/s", at_least=True)
    for variant, block in results.get("streams", {}).get("variants", {}).items():
        for name, row in block["added"].items():
            out[f"stream 1st byte p50, {name.replace(' stream', '')}, {variant}"] = _target(
                row["first_event_p50"], row["first_event_net_p50"], TARGETS["stream_added_ttfb_ms"], "ms")
    db = results.get("database")
    if db:
        verdict = db["per_request_verdict"]
        # Zero per request: what remains is the key cache's refresh, once a second whatever the load.
        out["DB statements per request"] = {"measured": db["per_request"], "clean": db["per_request"],
                                            "target": 0.01, "unit": "", "met": verdict, "clean_met": verdict}
    return out


def _target(measured: float, clean: float, target: float, unit: str, *, at_least: bool = False) -> dict[str, Any]:
    def meets(value: float) -> bool:
        return value >= target if at_least else value <= target

    return {"measured": round(measured, 3), "clean": round(clean, 3), "target": target, "unit": unit,
            "at_least": at_least, "met": meets(measured), "clean_met": meets(clean)}


def render(results: dict[str, Any]) -> str:
    """The compact human-readable table."""
    meta = results["machine"]
    lines = [f"ClearMaas bench  {meta['date']}  {meta['cpu']}  {meta['cores']} cores  python {meta['python']}  "
             f"commit {meta['commit']}  load avg at start {meta['loadavg_at_start']}"]
    quiet = meta.get("quiet_wait")
    if quiet:
        lines.append(f"waited {quiet['seconds']} s for a quiet machine; other processes then used "
                     f"{quiet['other_cpu_pct']}% of a core")
    if "latency" in results:
        lines += _render_latency(results["latency"])
    if "throughput" in results:
        lines += _render_throughput(results["throughput"])
    if "streams" in results:
        lines += _render_streams(results["streams"])
    db = results.get("database")
    if db:
        lines += ["", f"Database: {db['load_statements']} SQL statements during {db['load_requests']} requests "
                  f"({db['load_seconds']} s of load) vs {db['idle_statements']} in {db['idle_seconds']} s idle "
                  f"-> {db['per_request']} per request"]
    memory = results.get("memory")
    if memory:
        lines += ["", f"Gateway RSS: idle {memory['idle_kb'] / 1024:.1f} MiB, after load "
                  f"{memory['after_load_kb'] / 1024:.1f} MiB, peak {memory['peak_kb'] / 1024:.1f} MiB"]
    targets = results.get("targets")
    if targets:
        lines += ["", f"{'Targets':<56}{'as measured':>16}{'noise removed':>17}"]
        for name, row in targets.items():
            sign = ">=" if row.get("at_least") else "<="
            lines.append(f"  {name:<54}{_verdict(row['met']):>6}{row['measured']:>10}{_verdict(row['clean_met']):>7}"
                         f"{row['clean']:>10}   target {sign} {row['target']} {row['unit']}")
    if results.get("notes"):
        lines += ["", *(f"note: {note}" for note in results["notes"])]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "ok  " if met else "MISS"


def _render_latency(latency: dict[str, Any]) -> list[str]:
    lines = ["", f"Latency at concurrency 1, ms ({latency['rounds']} interleaved rounds x {latency['per_round']} "
             "requests; net = minus the time other processes kept gateway, fake or client off a CPU)",
             f"  other processes used {latency.get('other_cpu_pct', '?')}% of a core meanwhile",
             f"  {'path':<26}{'p50':>7}{'p90':>7}{'p99':>7}{'net p50':>9}{'net p99':>9}{'gw cpu':>8}"]
    for name, row in latency["paths"].items():
        lines.append(f"  {name:<26}{row['p50']:>7.3f}{row['p90']:>7.3f}{row['p99']:>7.3f}{row['net']['p50']:>9.3f}"
                     f"{row['net']['p99']:>9.3f}{row['gateway_cpu_ms']:>8.3f}")
    lines.append(f"  {'added by the gateway':<26}{'p50':>7}{'p99':>7}{'net p50':>9}{'net p99':>9}"
                 f"{'per-round p50':>17}{'per-round p99':>16}{'median round net p50/p99':>26}")
    for name, row in latency["added"].items():
        low, high = row["round_p50_range"]
        low99, high99 = row["round_p99_range"]
        lines.append(f"  {name:<26}{row['p50']:>7.3f}{row['p99']:>7.3f}{row['net_p50']:>9.3f}{row['net_p99']:>9.3f}"
                     f"{f'{low:.3f}..{high:.3f}':>17}{f'{low99:.2f}..{high99:.2f}':>16}"
                     f"{row['median_round_net_p50']:>17.3f}{row['median_round_net_p99']:>9.3f}")
    return lines


def _render_throughput(throughput: dict[str, Any]) -> list[str]:
    lines = ["", f"Throughput: wrk -t1 -c{throughput['connections']}, {throughput['rounds']} interleaved rounds x "
             f"{throughput['seconds']} s (median), gateway on core {throughput['gateway_cpu']}, wrk + fake on core "
             f"{throughput['client_cpu']}; other processes used {throughput.get('other_cpu_pct', '?')}% of a core",
             f"  {'path':<26}{'req/s':>7}{'vs fake':>8}{'p50 ms':>7}{'p99 ms':>7}{'gw%':>5}{'wait%':>6}"
             f"{'fake%':>6}{'wrk%':>5}{'core0%':>7}{'core1%':>7}{'us/req':>7}{'capacity':>9}"]
    for name, run in throughput["median_runs"].items():
        cpu = run["cpu"]
        ratio = throughput["median_rps"][name] / throughput["median_rps"]["fake direct"]
        lines.append(f"  {name:<26}{throughput['median_rps'][name]:>7.0f}{ratio:>8.2f}{run['p50_ms']:>7.2f}"
                     f"{run['p99_ms']:>7.2f}{cpu.get('gateway', 0):>5.0f}{cpu.get('gateway_wait', 0):>6.0f}"
                     f"{cpu.get('fake', 0):>6.0f}{cpu.get('wrk', 0):>5.0f}{cpu.get('core0', 0):>7.0f}"
                     f"{cpu.get('core1', 0):>7.0f}{throughput['cpu_us_per_request'][name]:>7.0f}"
                     f"{throughput['capacity_rps'][name]:>9.0f}")
    lines.append("  gw%/fake%/wrk%: CPU as % of one core; wait%: the gateway runnable but kept off its core by other")
    lines.append("  processes; us/req: CPU per request of the serving process (the fake on the first row);")
    lines.append("  capacity = 1e6 / us/req: the req/s of one process with a core to itself")
    side = throughput["load_side"]
    lines.append(f"  load side: the fake alone served {side['fake_direct_rps']:.0f} req/s, {side['headroom']:.1f}x the "
                 f"fastest gateway path; fake + wrk used at most {side['max_fake_plus_wrk_pct']:.0f}% of core "
                 f"{throughput['client_cpu']} during gateway runs -> {side['verdict']}")
    return lines


def _render_streams(streams: dict[str, Any]) -> list[str]:
    lines = ["", f"Streams, ms: the fake's frames back-to-back, or paced {streams['pace_ms']} ms apart; interleaved; "
             f"first event = first body byte; other processes used {streams.get('other_cpu_pct', '?')}% of a core",
             f"  {'variant / path':<42}{'head p50':>9}{'1st event p50':>14}{'p99':>7}{'net p50':>9}{'net p99':>9}"
             f"{'gap p50':>9}{'gap p99':>9}{'total p50':>10}"]
    for variant, block in streams["variants"].items():
        for name, row in block["paths"].items():
            lines.append(f"  {f'{variant} / {name}':<42}{row['first_byte']['p50']:>9.3f}"
                         f"{row['first_event']['p50']:>14.3f}{row['first_event']['p99']:>7.3f}"
                         f"{row['first_event_net']['p50']:>9.3f}{row['first_event_net']['p99']:>9.3f}"
                         f"{row['gap']['p50']:>9.3f}{row['gap']['p99']:>9.3f}{row['total']['p50']:>10.3f}")
        for name, row in block["added"].items():
            lines.append(f"  {f'  added, {name}':<51}{row['first_event_p50']:>+14.3f}{row['first_event_p99']:>+7.3f}"
                         f"{row['first_event_net_p50']:>+9.3f}{row['first_event_net_p99']:>+9.3f}"
                         f"{row['gap_p50']:>+9.3f}{row['gap_p99']:>+9.3f}{row['total_p50']:>+10.3f}")
    return lines


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
