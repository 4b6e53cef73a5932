"""`python -m bench`: start the real gateway and the fake upstream on loopback, measure the gateway against
calling the fake directly, print a table and write bench/results/latest.json."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import ForeignMeter, process_rss_kb, wait_for_quiet, wrk_path
from bench.phases import Calls, measure_database, measure_latency, measure_streams, measure_throughput
from bench.report import check_targets, machine, render, write_json

__all__ = ["main"]

_RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures are rough)")
    parser.add_argument("--out", type=Path, default=_RESULTS, help=f"JSON results (default {_RESULTS})")
    parser.add_argument("--skip", action="append", default=[], choices=["latency", "throughput", "streams", "database"],
                        help="leave out one measurement (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=15.0, metavar="SECONDS",
                        help="wait up to this long for other processes to go quiet before starting (default 15)")
    return parser


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"rounds": 3, "per_round": 200, "warmup": 100, "wrk_rounds": 1, "wrk_seconds": 2,
                "stream_rounds": 2, "stream_per_round": 5, "db_seconds": 2}
    return {"rounds": 10, "per_round": 400, "warmup": 300, "wrk_rounds": 3, "wrk_seconds": 4,
            "stream_rounds": 6, "stream_per_round": 10, "db_seconds": 4}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan(args.quick)
    skip = set(args.skip)
    two_cores = (os.cpu_count() or 1) >= 2
    # The gateway gets core 0 to itself; this client, wrk and the fake share core 1.
    pins = (0, 1) if two_cores else (None, None)
    if pins[1] is not None:
        os.sched_setaffinity(0, {pins[1]})
    notes: list[str] = []
    if not two_cores:
        notes.append("fewer than 2 cores: nothing is pinned, figures mix the gateway with the load side")
    if wrk_path() is None and not {"throughput", "database"} <= skip:
        notes.append("wrk is not installed (apt-get install wrk): throughput and database were skipped")
        print(notes[-1], file=sys.stderr)
        skip |= {"throughput", "database"}
    results: dict[str, Any] = {"machine": machine(), "plan": plan, "skipped": sorted(skip), "notes": notes,
                               "pinning": {"gateway": pins[0], "client_wrk_fake": pins[1]}}
    if args.quiet_wait > 0:
        _say("waiting for a quiet machine")
        waited, busy = wait_for_quiet(args.quiet_wait)
        results["machine"]["quiet_wait"] = {"seconds": waited, "other_cpu_pct": busy}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clearmaas-bench-") as tmp:
        _against_fast_fake(results, Path(tmp), plan, skip, pins)
        if "streams" not in skip:
            _streams(results, Path(tmp), plan, pins)
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = check_targets(results)
    print(render(results))
    write_json(results, args.out)
    print(f"\n{args.out} written in {results['elapsed_seconds']} s")
    return 0


def _against_fast_fake(results: dict[str, Any], work: Path, plan: dict[str, Any], skip: set[str],
                       pins: tuple[int | None, int | None]) -> None:
    """Latency, throughput, memory and database, with the fake in fast mode."""
    from tests.e2e.harness import fake_upstream, gateway, gateway_config

    gateway_cpu, client_cpu = pins
    with fake_upstream(fast=True, cpu=client_cpu) as fake:
        config = gateway_config(fake.url)
        with gateway(config, work / "gateway", cpu=gateway_cpu) as gw:
            idle_rss = process_rss_kb(gw.process.pid)
            calls = Calls(fake.url, gw.url, gw.api_key)
            pids = {"gateway": gw.process.pid, "fake": fake.process.pid}
            if "latency" not in skip:
                _say("latency at concurrency 1")
                meter = ForeignMeter(list(pids.values()))
                results["latency"] = measure_latency(calls, rounds=plan["rounds"], per_round=plan["per_round"],
                                                     warmup=plan["warmup"], pids=pids)
                results["latency"]["other_cpu_pct"] = meter.percent()
            if "throughput" not in skip:
                _say("throughput (wrk)")
                meter = ForeignMeter(list(pids.values()))
                results["throughput"] = measure_throughput(
                    calls, rounds=plan["wrk_rounds"], seconds=plan["wrk_seconds"], connections=64,
                    client_cpu=client_cpu, gateway_cpu=gateway_cpu, watch=pids)
                results["throughput"]["other_cpu_pct"] = meter.percent()
            loaded_rss = process_rss_kb(gw.process.pid)
            results["memory"] = {"idle_kb": idle_rss["VmRSS"], "after_load_kb": loaded_rss["VmRSS"],
                                 "peak_kb": loaded_rss["VmHWM"]}
        if "database" not in skip:
            _say("database statements, idle vs under load")
            results["database"] = measure_database(fake.url, work / "probed", config, seconds=plan["db_seconds"],
                                                   gateway_cpu=gateway_cpu, client_cpu=client_cpu)


def _streams(results: dict[str, Any], work: Path, plan: dict[str, Any], pins: tuple[int | None, int | None]) -> None:
    """Streams frame by frame: fast mode sends a stream in one write, so the fake runs in its normal mode here
    (and paces frames with its slow marker)."""
    from tests.e2e.harness import fake_upstream, gateway, gateway_config

    gateway_cpu, client_cpu = pins
    _say("streams, frame by frame")
    with fake_upstream(cpu=client_cpu) as fake, gateway(gateway_config(fake.url), work / "streams",
                                                        cpu=gateway_cpu) as gw:
        pids = {"gateway": gw.process.pid, "fake": fake.process.pid}
        meter = ForeignMeter(list(pids.values()))
        results["streams"] = measure_streams(
            fake.url, gw.url, gw.api_key, pace_ms=5, rounds=plan["stream_rounds"],
            per_round={"back-to-back": plan["stream_per_round"] * 4, "paced": plan["stream_per_round"]}, pids=pids)
        results["streams"]["other_cpu_pct"] = meter.percent()


def _say(step: str) -> None:
    print(f"[bench] {step} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
