"""`python -m bench`: start the fake upstream and, side by side, the real gateway with billing off, with billing on
over SQLite, and with billing on over PostgreSQL + Redis; measure each against calling the fake directly and
against each other, print a table and write bench/results/latest.json."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.accounting import Accounting, summarise
from bench.load import ForeignMeter, process_rss_kb, wait_for_quiet, wrk_path
from bench.modes import MODES, Backends, Gateway, Mode, backends, prepare, serving
from bench.phases import Calls, measure_latency, measure_slowed_database, measure_throughput
from bench.render import render
from bench.report import check_targets, machine, write_json
from bench.streams import measure_streams

__all__ = ["main"]

_RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
_DIRECT = "fake direct (openai)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures are rough)")
    parser.add_argument("--out", type=Path, default=_RESULTS, help=f"JSON results (default {_RESULTS})")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["latency", "throughput", "streams", "slowed", "pg"],
                        help="leave out one measurement, or the PostgreSQL + Redis gateway (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=15.0, metavar="SECONDS",
                        help="wait up to this long for other processes to go quiet before starting (default 15)")
    return parser


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"rounds": 3, "per_round": 200, "warmup": 100, "wrk_rounds": 1, "wrk_seconds": 2,
                "stream_rounds": 2, "stream_per_round": 5, "idle_seconds": 2, "slow_rounds": 2,
                "slow_per_round": 150, "slow_wrk_seconds": 2, "slow_delay_ms": 10}
    return {"rounds": 10, "per_round": 1000, "warmup": 300, "wrk_rounds": 5, "wrk_seconds": 3,
            "stream_rounds": 6, "stream_per_round": 10, "idle_seconds": 3, "slow_rounds": 6,
            "slow_per_round": 200, "slow_wrk_seconds": 3, "slow_delay_ms": 10}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan(args.quick)
    skip = set(args.skip)
    two_cores = (os.cpu_count() or 1) >= 2
    # The gateways get core 0 (one at a time under load); this client, wrk and the fake share core 1.
    pins = (0, 1) if two_cores else (None, None)
    if pins[1] is not None:
        os.sched_setaffinity(0, {pins[1]})
    notes: list[str] = []
    if not two_cores:
        notes.append("fewer than 2 cores: nothing is pinned, figures mix the gateway with the load side")
    if wrk_path() is None and "throughput" not in skip:
        notes.append("wrk is not installed (apt-get install wrk): throughput and the slowed-database runs were skipped")
        print(notes[-1], file=sys.stderr)
        skip |= {"throughput", "slowed"}
    results: dict[str, Any] = {"machine": machine(), "plan": plan, "skipped": sorted(skip), "notes": notes,
                               "pinning": {"gateways": pins[0], "client_wrk_fake": pins[1]}}
    if args.quiet_wait > 0:
        _say("waiting for a quiet machine")
        waited, busy = wait_for_quiet(args.quiet_wait)
        results["machine"]["quiet_wait"] = {"seconds": waited, "other_cpu_pct": busy}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clearmaas-bench-") as tmp, ExitStack() as stack:
        shared: Backends | None = None
        if "pg" not in skip:
            _say("creating a scratch PostgreSQL database and claiming a Redis database")
            try:
                shared = stack.enter_context(backends())
            except Exception as exc:  # noqa: BLE001 - any failure to reach either server: run without that mode
                notes.append(f"PostgreSQL + Redis unavailable ({type(exc).__name__}: {exc}); that gateway was skipped")
                print(notes[-1], file=sys.stderr)
        modes = [m for m in MODES if not m.shared or shared is not None]
        results["modes"] = {m.key: {"label": m.label, "billing": m.billing, "shared": m.shared} for m in modes}
        _run(results, Path(tmp), modes, shared, plan, skip, pins)
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = check_targets(results)
    print(render(results))
    write_json(results, args.out)
    print(f"\n{args.out} written in {results['elapsed_seconds']} s")
    return 0


def _run(results: dict[str, Any], work: Path, modes: list[Mode], shared: Backends | None, plan: dict[str, Any],
         skip: set[str], pins: tuple[int | None, int | None]) -> None:
    from tests.e2e.harness import fake_upstream

    gateway_cpu, client_cpu = pins
    with fake_upstream(fast=True, cpu=client_cpu) as fake:
        _say("preparing the gateways (" + ", ".join(m.label for m in modes) + ")")
        prepared = {m.key: prepare(m, work / m.key, fake.url, shared) for m in modes}
        with ExitStack() as stack:
            gateways = {key: stack.enter_context(serving(p, fake.url, cpu=gateway_cpu, tag="fast"))
                        for key, p in prepared.items()}
            _against_fast_fake(results, fake.url, fake.process.pid, gateways, shared, plan, skip, pins)
    if "streams" not in skip:
        # Fast mode sends a stream in one write, so the streams run against the fake in its normal mode (which
        # paces frames on request): the same gateways, restarted with their providers pointed at it.
        _say("streams, frame by frame")
        with fake_upstream(cpu=client_cpu) as fake, ExitStack() as stack:
            gateways = {key: stack.enter_context(serving(p, fake.url, cpu=gateway_cpu, tag="streams"))
                        for key, p in prepared.items()}
            meter = ForeignMeter([fake.process.pid, *(gw.pid for gw in gateways.values())])
            results["streams"] = measure_streams(
                fake.url, {f" [{key}]": (gw.url, gw.api_key, gw.pid) for key, gw in gateways.items()},
                fake_pid=fake.process.pid, pace_ms=5, rounds=plan["stream_rounds"],
                per_round={"back-to-back": plan["stream_per_round"] * 4, "paced": plan["stream_per_round"]})
            results["streams"]["other_cpu_pct"] = meter.percent()


def _against_fast_fake(results: dict[str, Any], fake_url: str, fake_pid: int, gateways: dict[str, Gateway],
                       shared: Backends | None, plan: dict[str, Any], skip: set[str],
                       pins: tuple[int | None, int | None]) -> None:
    """Latency, throughput, memory, database and Redis accounting, and the slowed database, with the fake in
    fast mode."""
    gateway_cpu, client_cpu = pins
    accounting = Accounting(gateways, shared)
    idle_rss = {key: process_rss_kb(gw.pid) for key, gw in gateways.items()}
    _say("idle window (the background database work of each gateway)")
    accounting.measure("idle", lambda: time.sleep(plan["idle_seconds"]))
    direct = Calls(fake_url, fake_url, "").fake_openai()
    paths = {_DIRECT: direct}
    mode_of: dict[str, str] = {}
    for key, gw in gateways.items():
        calls = Calls(fake_url, gw.url, gw.api_key, suffix=f" [{key}]")
        for call in (calls.chat(), calls.messages()):
            paths[call.name] = call
            mode_of[call.name] = key
    own = [fake_pid, *(gw.pid for gw in gateways.values())]
    if shared is not None and shared.redis_pid is not None:
        own.append(shared.redis_pid)
    load_phases = []
    if "latency" not in skip:
        _say("latency at concurrency 1")
        meter = ForeignMeter(own + (shared.pg_backend_pids() if shared else []))
        server_pid = {name: gateways[mode_of[name]].pid if name in mode_of else fake_pid for name in paths}
        results["latency"] = accounting.measure("latency", lambda: measure_latency(
            paths, dict.fromkeys(mode_of, _DIRECT), server_pid=server_pid, fake_pid=fake_pid,
            rounds=plan["rounds"], per_round=plan["per_round"], warmup=plan["warmup"]))
        results["latency"]["other_cpu_pct"] = meter.percent()
        _served(accounting, "latency", results["latency"]["requests"], mode_of)
        load_phases.append("latency")
    if "throughput" not in skip:
        _say("throughput (wrk)")
        watch = _watch(fake_pid, gateways, shared)
        meter = ForeignMeter(own + list(watch.get("postgres", [])))
        results["throughput"] = accounting.measure("throughput", lambda: measure_throughput(
            paths, server={name: mode_of.get(name, "fake") for name in paths}, watch=watch,
            rounds=plan["wrk_rounds"], seconds=plan["wrk_seconds"], connections=64, client_cpu=client_cpu,
            gateway_cpu=gateway_cpu))
        results["throughput"]["other_cpu_pct"] = meter.percent()
        _served(accounting, "throughput", results["throughput"]["requests"], mode_of)
        load_phases.append("throughput")
    results["memory"] = {key: {"idle_kb": idle_rss[key]["VmRSS"], "after_load_kb": process_rss_kb(gw.pid)["VmRSS"],
                               "peak_kb": process_rss_kb(gw.pid)["VmHWM"]} for key, gw in gateways.items()}
    if load_phases:
        results["accounting"] = summarise(accounting, idle_phase="idle", load_phases=load_phases)
    if "slowed" not in skip:
        results["slowed"] = {}
        for key, gw in gateways.items():
            if key == "off":
                continue
            _say(f"database slowed by {plan['slow_delay_ms']} ms per statement [{key}]")
            call = Calls(fake_url, gw.url, gw.api_key, suffix=f" [{key}]").chat()
            results["slowed"][key] = accounting.measure(f"slowed {key}", lambda gw=gw, call=call: (
                measure_slowed_database(call, gw.counts, gateway_pid=gw.pid, fake_pid=fake_pid,
                                        delay_ms=plan["slow_delay_ms"], rounds=plan["slow_rounds"],
                                        per_round=plan["slow_per_round"], wrk_seconds=plan["slow_wrk_seconds"],
                                        client_cpu=client_cpu, watch=_watch(fake_pid, gateways, shared))))


def _watch(fake_pid: int, gateways: dict[str, Gateway], shared: Backends | None) -> dict[str, int | list[int]]:
    watch: dict[str, int | list[int]] = {"fake": fake_pid, **{key: gw.pid for key, gw in gateways.items()}}
    if shared is not None:
        if shared.redis_pid is not None:
            watch["redis"] = shared.redis_pid
        watch["postgres"] = shared.pg_backend_pids()
    return watch


def _served(accounting: Accounting, phase: str, requests: dict[str, int], mode_of: dict[str, str]) -> None:
    for name, count in requests.items():
        if name in mode_of:
            accounting.served(phase, mode_of[name], count)


def _say(step: str) -> None:
    print(f"[bench] {step} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
