"""`python -m bench.pair off,sqlite [--pairs 12] [--seconds 1.5] [--path chat|messages]`: an A/B of gateways'
throughput in short alternating `wrk -c64` runs, for deciding whether a change helps.

The gateways run side by side on core 0 (bench/modes.py) and take turns, the order flipping every pair, so
each ratio compares runs a second or two apart; the host's speed drifts by about 10 % over tens of seconds,
which a whole `python -m bench` round does not cancel. It prints, for each gateway after the first, the
quartiles of the per-pair ratios to the first, of req/s and of capacity (req/s per CPU-second of the
gateway). Between two runs on the same code the median still moves by about ±0.03: compare several runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.load import run_wrk
from bench.modes import MODES, backends, prepare, serving
from bench.phases import Calls

__all__ = ["main"]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 4], statistics.median(ordered), ordered[(3 * n) // 4]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pair", description=__doc__.splitlines()[0])
    parser.add_argument("modes", help="comma-separated modes, the first is the reference: " +
                        ", ".join(m.key for m in MODES))
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--path", choices=["chat", "messages"], default="chat")
    args = parser.parse_args(argv)
    keys = args.modes.split(",")
    modes = [next((m for m in MODES if m.key == key), None) for key in keys]
    if None in modes or len(keys) < 2:
        parser.error(f"give two or more of: {', '.join(m.key for m in MODES)}")
    from tests.e2e.harness import fake_upstream

    two_cores = (os.cpu_count() or 1) >= 2
    gateway_cpu, client_cpu = (0, 1) if two_cores else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    with tempfile.TemporaryDirectory(prefix="clearmaas-pair-") as tmp, ExitStack() as stack:
        fake = stack.enter_context(fake_upstream(fast=True, cpu=client_cpu))
        shared = stack.enter_context(backends()) if any(m.shared for m in modes if m) else None
        calls = {}
        pids = {}
        for mode in modes:
            assert mode is not None
            prepared = prepare(mode, Path(tmp) / mode.key, fake.url, shared if mode.shared else None)
            gateway = stack.enter_context(serving(prepared, fake.url, cpu=gateway_cpu, tag="pair"))
            made = Calls(fake.url, gateway.url, gateway.api_key)
            calls[mode.key] = made.chat() if args.path == "chat" else made.messages()
            pids[mode.key] = gateway.pid
        watch: dict[str, int | list[int]] = dict(pids)
        for key in keys:  # warm-up
            run_wrk(calls[key], seconds=2, connections=64, cpu=client_cpu, watch=watch)
            time.sleep(0.3)
        rps: dict[str, list[float]] = {key: [] for key in keys}
        capacity: dict[str, list[float]] = {key: [] for key in keys}
        for turn in range(args.pairs):
            for key in keys if turn % 2 == 0 else keys[::-1]:
                result = run_wrk(calls[key], seconds=args.seconds, connections=64, cpu=client_cpu, watch=watch)
                if result.errors:
                    raise RuntimeError(f"{key}: {result.errors} errors")
                rps[key].append(result.rps)
                capacity[key].append(result.rps * 100.0 / max(result.cpu[key], 1e-9))
                time.sleep(0.3)
    reference = keys[0]
    for key in keys:
        print(f"[{key}] {args.path}: req/s median {statistics.median(rps[key]):.0f}, "
              f"capacity median {statistics.median(capacity[key]):.0f}")
    for key in keys[1:]:
        by_rps = quartiles([a / b for a, b in zip(rps[key], rps[reference], strict=True)])
        by_capacity = quartiles([a / b for a, b in zip(capacity[key], capacity[reference], strict=True)])
        print(f"[{key}] / [{reference}]: req/s ratio q1 {by_rps[0]:.3f} median {by_rps[1]:.3f} q3 {by_rps[2]:.3f}; "
              f"capacity ratio q1 {by_capacity[0]:.3f} median {by_capacity[1]:.3f} q3 {by_capacity[2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
