"""`python -m bench.tail off,off,sqlite,pg [--rounds 10] [--per-round 1500] [--path chat|messages]`: what makes
the slow requests at concurrency 1 slow.

The gateways (bench/modes.py; a mode named twice runs twice, `off#2`, as an A/A control that shows how far the
p99 moves between two identical gateways) and the fake's direct path take turns, `--per-round` sequential
requests each per round, with a pause (`--settle`) after each turn so that a gateway's last usage batch and
Redis tick land in the pause, not on the next gateway's requests. Each gateway records a timeline of what can
hold a request up (bench/dbprobe.py with CLEARMAAS_BENCH_TIMELINE: garbage collections, usage-log batches on
the writer thread, the book's flush on the loop, Redis round-trips, waits for room in a full usage queue) on the
machine's monotonic clock, which this client shares. Printed per gateway: the added p50 and p99 (pooled, and
the median round's), their ratio to the first gateway, and per kind of span the requests that overlapped one,
their p50 and p90 against the others', and the latency those requests had beyond the others' median, spread
over all requests ("excess per request"); and for all requests and the slowest 1 %, the median time of each
leg of a request (to the gateway, its work before the upstream call, the upstream call, its work after, back
to the client). The JSON goes to bench/results/tail.json.
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.client import Connection
from bench.cores import services_yielding
from bench.modes import MODES, backends, prepare, serving
from bench.phases import SETTLE_SECONDS, Calls, rotated

__all__ = ["main"]

_RESULTS = Path(__file__).resolve().parent / "results" / "tail.json"
_DIRECT = "direct"
_KINDS = ("gc", "writer", "on_flushed", "queue_full", "pipeline", "redis")


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q / 100), len(ordered) - 1)]


def _names(keys: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        names.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return names


def _measure(keys: list[str], names: list[str], *, path: str, rounds: int, per_round: int,
             warmup: int, settle: float, cores: tuple[int | None, int | None]) -> dict[str, Any]:
    from tests.e2e.harness import fake_upstream

    modes = {m.key: m for m in MODES}
    clock = time.monotonic_ns
    with tempfile.TemporaryDirectory(prefix="clearmaas-tail-") as tmp, ExitStack() as stack:
        fake = stack.enter_context(fake_upstream(fast=True, cpu=cores[1]))
        prepared = {}
        for key, name in zip(keys, names, strict=True):
            mode = modes[key]
            shared = stack.enter_context(backends()) if mode.shared else None
            prepared[name] = prepare(mode, Path(tmp) / name, fake.url, shared)
            prepared[name].env["CLEARMAAS_BENCH_TIMELINE"] = "1"
        with ExitStack() as running:
            calls = {}
            for name, ready in prepared.items():
                gateway = running.enter_context(serving(ready, fake.url, cpu=cores[0], tag="tail"))
                made = Calls(fake.url, gateway.url, gateway.api_key)
                calls[name] = made.chat() if path == "chat" else made.messages()
            calls[_DIRECT] = Calls(fake.url, fake.url, "").fake_openai()
            connections = {name: Connection(call.host, call.port) for name, call in calls.items()}
            payloads = {name: call.payload() for name, call in calls.items()}
            for name in calls:
                for _ in range(warmup):
                    connections[name].exchange(payloads[name])
            requests_of: dict[str, list[list[tuple[int, int]]]] = {name: [] for name in calls}  # (sent, done) by round
            for turn in range(rounds):
                for name in rotated(list(calls), turn):
                    connection, payload, times = connections[name], payloads[name], []
                    for _ in range(per_round):
                        connection.ensure_open()
                        started = clock()
                        status, _ = connection.exchange(payload)
                        times.append((started, clock()))
                        if status != 200:
                            raise RuntimeError(f"{name}: HTTP {status}")
                    requests_of[name].append(times)
                    time.sleep(settle)  # this gateway's last usage batch and ticks land here, not on the next
            for connection in connections.values():
                connection.close()
            time.sleep(0.2)  # the probes' publishing thread appends the last spans every 50 ms
        timelines = {}
        for name, ready in prepared.items():
            path_ = ready.workdir / "probe-tail.json.timeline"
            timelines[name] = [orjson.loads(line) for line in path_.read_bytes().splitlines()] if path_.exists() else []
    return {"requests": requests_of, "timelines": timelines}


def _analyse(names: list[str], measured: dict[str, Any]) -> dict[str, Any]:
    requests, timelines = measured["requests"], measured["timelines"]
    direct = [[end - start for start, end in times] for times in requests[_DIRECT]]
    direct_pooled = [v for r in direct for v in r]
    result: dict[str, Any] = {}
    for name in names:
        by_round = [[end - start for start, end in times] for times in requests[name]]
        pooled = [v for r in by_round for v in r]
        added = {
            "p50": _percentile(pooled, 50) - _percentile(direct_pooled, 50),
            "p99": _percentile(pooled, 99) - _percentile(direct_pooled, 99),
            "median_round_p99": statistics.median(
                _percentile(g, 99) - _percentile(d, 99) for g, d in zip(by_round, direct, strict=True)),
        }
        every = [span for times in requests[name] for span in times]
        slowest = _percentile(pooled, 99)
        kinds = {}
        for kind in _KINDS:
            spans = sorted((a, b) for label, a, b in timelines[name] if label.split("(")[0].startswith(kind))
            if not spans:
                continue
            starts = [a for a, _ in spans]
            ends_before = _running_max([b for _, b in spans])
            inside, outside, slow_inside = [], [], 0
            for start, end in every:
                i = bisect.bisect_left(starts, end) - 1  # the spans that began before the request ended
                hit = i >= 0 and ends_before[i] > start
                (inside if hit else outside).append(end - start)
                if hit and end - start >= slowest:
                    slow_inside += 1
            if not inside or not outside:
                continue
            typical = _percentile(outside, 50)
            kinds[kind] = {
                "spans": len(spans), "requests_inside": len(inside),
                "inside_p50": _percentile(inside, 50), "inside_p90": _percentile(inside, 90),
                "outside_p50": typical, "outside_p90": _percentile(outside, 90),
                "excess_per_request": sum(v - typical for v in inside) / len(every),
                "share_of_slowest_1pct": slow_inside / max(sum(v >= slowest for v in pooled), 1),
                "span_p50": _percentile([b - a for a, b in spans], 50),
            }
        result[name] = {"added": added, "kinds": kinds, "legs": _legs(timelines[name], requests[name], slowest)}
    return result


_LEGS = ("to gateway", "gateway before upstream", "upstream", "gateway after upstream", "to client")


def _legs(timeline: list[Any], requests: list[list[tuple[int, int]]], slowest: int) -> dict[str, Any]:
    """Median time of each leg of a request, over all requests and over the slowest 1 %: the client's send to
    the gateway's receipt, the gateway's work up to the upstream call, the upstream call up to its head, the
    gateway's work after it, its last byte to the client's receipt (the probe's "request" and "upstream"
    spans, matched to the client's requests by time)."""
    inner = sorted((a, b) for label, a, b in timeline if label == "request")
    calls = sorted((a, b) for label, a, b in timeline if label == "upstream")
    if not inner or not calls:
        return {}
    inner_starts, call_starts = [a for a, _ in inner], [a for a, _ in calls]
    every, slow = [], []
    for start, end in (span for times in requests for span in times):
        i = bisect.bisect_left(inner_starts, start)
        if i == len(inner) or inner[i][0] > end:
            continue
        arrived, answered = inner[i]
        j = bisect.bisect_left(call_starts, arrived)
        if j == len(calls) or calls[j][0] > answered:
            continue
        sent, headed = calls[j]
        legs = (arrived - start, sent - arrived, headed - sent, answered - headed, end - answered)
        every.append(legs)
        if end - start >= slowest:
            slow.append(legs)
    if not slow:
        return {}
    return {group: dict(zip(_LEGS, (statistics.median(leg) for leg in zip(*rows, strict=True)), strict=True))
            for group, rows in (("all", every), ("slowest_1pct", slow))}


def _running_max(values: list[int]) -> list[int]:
    out, top = [], 0
    for value in values:
        top = value if value > top else top
        out.append(top)
    return out


def _render(names: list[str], result: dict[str, Any]) -> str:
    first = result[names[0]]["added"]
    lines = [f"gateway      added p50   p99   median-round p99  (us)   ratio to {names[0]}: p50  p99  median-round p99"]
    for name in names:
        a = result[name]["added"]
        ratio = "" if name == names[0] else (
            f"{a['p50'] / first['p50']:.2f} {a['p99'] / first['p99']:.2f} "
            f"{a['median_round_p99'] / first['median_round_p99']:.2f}")
        lines.append(f"{name:12s} {a['p50'] / 1e3:9.0f} {a['p99'] / 1e3:6.0f} {a['median_round_p99'] / 1e3:10.0f}"
                     f"                 {ratio}")
    lines.append("")
    lines.append("gateway      span kind   spans  reqs inside  p50 in/out (us)  p90 in/out (us)  excess/req (us)"
                 "  of the slowest 1 %")
    for name in names:
        for kind, k in result[name]["kinds"].items():
            lines.append(
                f"{name:12s} {kind:10s} {k['spans']:6d} {k['requests_inside']:11d}  "
                f"{k['inside_p50'] / 1e3:6.0f} / {k['outside_p50'] / 1e3:5.0f}   "
                f"{k['inside_p90'] / 1e3:6.0f} / {k['outside_p90'] / 1e3:5.0f}  "
                f"{k['excess_per_request'] / 1e3:14.1f}  {k['share_of_slowest_1pct']:17.2f}")
    lines.append("")
    lines.append("gateway      requests       median (us): " + " | ".join(_LEGS))
    for name in names:
        for group, legs in result[name]["legs"].items():
            lines.append(f"{name:12s} {group:13s} " + " | ".join(f"{legs[leg] / 1e3:.0f}" for leg in _LEGS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tail", description=__doc__.splitlines()[0])
    parser.add_argument("modes", help="comma-separated modes, the first is the reference (repeat one for an A/A "
                        "control): " + ", ".join(m.key for m in MODES))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=1500)
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, metavar="SECONDS",
                        help=f"pause after each gateway's turn (default {SETTLE_SECONDS}, as in python -m bench)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--path", choices=["chat", "messages"], default="chat")
    parser.add_argument("--cores", choices=["pinned", "free"], default="pinned",
                        help="pinned: the gateways on core 0, the client and the fake on core 1; free: none pinned")
    parser.add_argument("--services", choices=["shared", "yielding"], default="shared",
                        help="shared: PostgreSQL and Redis compete for the cores as they are; yielding: they run "
                        "at the lowest group weight, on what the request's path leaves idle (bench/cores.py)")
    parser.add_argument("--out", type=Path, default=_RESULTS)
    args = parser.parse_args(argv)
    keys = args.modes.split(",")
    if len(keys) < 2 or any(key not in {m.key for m in MODES} for key in keys):
        parser.error(f"give two or more of: {', '.join(m.key for m in MODES)}")
    # pinned: the gateways on core 0, the client with the fake on core 1, as in python -m bench; free: the
    # scheduler places every process, as on a server where nothing is pinned
    cores = (0, 1) if args.cores == "pinned" and (os.cpu_count() or 1) >= 2 else (None, None)
    if cores[1] is not None:
        os.sched_setaffinity(0, {cores[1]})
    names = _names(keys)
    with ExitStack() as services:
        if args.services == "yielding" and not services.enter_context(services_yielding()):
            parser.error("--services yielding: no PostgreSQL or Redis scheduling group could be lowered "
                         "(autogroups off, or not allowed)")
        measured = _measure(keys, names, path=args.path, rounds=args.rounds, per_round=args.per_round,
                            warmup=args.warmup, settle=args.settle, cores=cores)
    result = _analyse(names, measured)
    print(_render(names, result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps({"modes": names, "path": args.path, "cores": args.cores,
                                       "services": args.services, "rounds": args.rounds,
                                       "per_round": args.per_round, "result": result},
                                      option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
