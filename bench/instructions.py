"""`python -m bench.instructions off,sqlite,pg [--requests 5000]`: the instructions the gateway executes per request.

Counted by valgrind (callgrind) for each mode (`--path chat|messages`: Chat passthrough, the default, or Messages
-> OpenAI), in all and per thread, with the ratio of each mode to the first.

Why instructions: on a noisy, shared machine req/s and CPU time drift by ±5-10 % from run to run, while an
instruction count is deterministic to well under 1 %, so a change of a few per cent shows in one run. It is
blind to cache misses, branch mispredictions and lock waits (a change that executes fewer instructions can still
be slower): confirm a gain in time with `python -m bench.pair`.

For each mode, two gateways are started one after the other (`clearmaas serve` under `valgrind --tool=callgrind`
on core 0; the fake upstream and `wrk -t1 -c16` on core 1), each with a fresh data directory (and for pg a fresh
scratch PostgreSQL database and Redis database, bench/modes.py). Each serves a warm-up, the counters are zeroed
with `callgrind_control`, it serves N requests (N = 0 for the first, `--requests` for the second), the usage log
writes the last of them, and the counters are dumped: Ir(N) - Ir(0), over N, is the cost of a request, start-up
and warm-up cancelled out. Only the gateway's process is counted (not PostgreSQL, Redis or the fake).

The gateway runs through this module's hidden `--launch` sub-command, which makes the usage log write exactly
one batch per 250 records (no time-based flushes, no maintenance) so every run writes the same batches, and
stretches the caches' once-a-second refreshes to 1000 s (`--keep-refresh` leaves them as shipped), so idle wall
time costs almost nothing. The Redis ticks of mode pg (credit leases, rate-limit allowances: every 50 ms) stay:
they are real per-second work, which the N = 0 run measures as an idle rate; its share of a request (the idle
rate times the load's seconds, over N) is printed with the figure without it.

Slow: valgrind runs the gateway about 50 times slower; about 3 minutes for two modes at 5,000 requests. Needs
valgrind (with callgrind_control) and wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from bench.client import Call
from bench.load import request_lua
from bench.modes import MODES, Mode, Prepared, backends, prepare
from bench.phases import Calls

__all__ = ["main"]

_LAUNCH = "--launch"  # the hidden sub-command that runs the gateway inside valgrind
_BATCH = 250  # the usage log's batch in these runs: warm-up and requests are multiples, so every record is written
_WARMUP = 500
_SETTLE_S = 2.0  # idle before zeroing and before dumping, the same in every run: the N = 0 run measures it
_STARTUP_TIMEOUT_S = 600.0  # valgrind translates the whole interpreter and the gateway's imports first
_ROWS_TIMEOUT_S = 600.0
# The Redis ticks are the shared mode's real per-second work; every other RefreshLoop re-reads a cache.
_TICKS = frozenset({"billing-leases", "rate-limit-tick"})

# wrk sends exactly `budget` requests: its -d can only stop on time, so the script counts. When the last answer
# arrives it prints a CG line (the caller then sends SIGINT, which ends wrk's sleep through -d) and `done` prints
# the status and socket errors.
_WRK_COUNTING = r"""
local budget = %(budget)d
local issued, answered, ok, bad = 0, 0, 0, 0
local req = nil
local verified = false
request = function()
  if req == nil then req = wrk.format() end
  -- wrk 4.1 calls request() once on thread 0's state before connecting (script_verify_request) and sends
  -- nothing of it: not counted.
  if not verified then verified = true; return req end
  if issued >= budget then return "" end  -- send nothing more; the connection just waits
  issued = issued + 1
  return req
end
response = function(status, headers, body)
  answered = answered + 1
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
  if answered >= budget then
    io.write(string.format('CG {"ok":%%d,"bad":%%d}\n', ok, bad))
    io.flush()
    wrk.thread:stop()
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"status_errors":%%d,"socket_errors":%%d}\n',
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class Count:
    """One gateway's instructions from zeroing to the dump."""

    requests: int
    by_thread: dict[str, int]  # valgrind's thread number -> instructions; "01" is the main thread, the event loop
    load_s: float  # wall seconds wrk took to have every request answered
    measured_s: float  # wall seconds from zeroing to the dump

    @property
    def loop(self) -> int:
        return self.by_thread.get("01", 0)

    @property
    def total(self) -> int:
        return sum(self.by_thread.values())


@dataclass(frozen=True, slots=True)
class PerRequest:
    """Instructions per request of one mode: (Ir(N) - Ir(0)) / N, in all and per thread."""

    total: float
    loop: float
    workers: float  # asyncio.to_thread's threads: the usage-log writer (and the refreshes' reads, if kept)
    idle_rate: float  # instructions a wall-second of the N = 0 run: the ticks
    ticks: float  # idle_rate x the load's seconds / N: the ticks' share of a request

    @property
    def without_ticks(self) -> float:
        return self.total - self.ticks


def per_request(idle: Count, loaded: Count) -> PerRequest:
    n = loaded.requests
    idle_rate = idle.total / idle.measured_s
    return PerRequest(total=(loaded.total - idle.total) / n, loop=(loaded.loop - idle.loop) / n,
                      workers=((loaded.total - loaded.loop) - (idle.total - idle.loop)) / n,
                      idle_rate=idle_rate, ticks=idle_rate * loaded.load_s / n)


def missing_tools() -> list[str]:
    return [tool for tool in ("valgrind", "callgrind_control", "wrk") if shutil.which(tool) is None]


def wrk_script(call: Call, budget: int) -> str:
    return request_lua(call) + _WRK_COUNTING % {"budget": budget}


def send_exactly(call: Call, budget: int, workdir: Path, cpu: int | None) -> float:
    """Send exactly `budget` requests over 16 connections; raises unless every answer was a 200. Returns the
    seconds until the last answer."""
    script = workdir / f"wrk-{budget}.lua"
    script.write_text(wrk_script(call, budget))
    # -d only bounds a stuck run (the gateway serves 30-100 req/s under valgrind): the CG line ends it.
    command = ["wrk", "-t1", "-c16", f"-d{120 + budget // 5}s", "--timeout", "30s", "-s", str(script),
               f"http://{call.host}:{call.port}{call.path}"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    started = time.monotonic()
    took = 0.0
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    found: dict[str, int] = {}
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(("CG ", "BENCH ")):
            found.update(orjson.loads(line.split(" ", 1)[1]))
        if line.startswith("CG "):
            took = time.monotonic() - started
            process.send_signal(signal.SIGINT)  # wrk prints its summary (`done`) and exits
    process.wait(timeout=60)
    if (process.returncode != 0 or found.get("ok") != budget or found.get("bad")
            or found.get("status_errors") or found.get("socket_errors")):
        raise RuntimeError(f"wrk: not {budget} clean 200s ({found or 'no result'}, exit {process.returncode}):\n"
                           f"{''.join(lines)}{process.stderr.read()}")
    return took


def callgrind_control(*args: str) -> None:
    done = subprocess.run(["callgrind_control", *args], check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)}: {done.stdout}{done.stderr}")


def thread_totals(out_file: Path) -> dict[str, int]:
    """Instructions per thread of the first dump (`--separate-threads=yes` writes OUT.1-01, OUT.1-02, ...)."""
    totals = {}
    for path in sorted(out_file.parent.glob(f"{out_file.name}.1-*")):
        with path.open(errors="replace") as dump:
            line = next((line for line in dump if line.startswith(("totals:", "summary:"))), None)
        if line is None:
            raise RuntimeError(f"no totals in {path}")
        totals[path.name.rsplit("-", 1)[1]] = int(line.split()[1])
    if not totals:
        raise RuntimeError(f"callgrind wrote no dump {out_file}.1-*")
    return totals


@contextmanager
def row_counter(database_url: str) -> Iterator[Callable[[], int]]:
    """Counts the usage records in the gateway's database."""
    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    from clearmaas.store.database import create_engine_for

    engine = create_engine_for(database_url, poolclass=NullPool)

    def count() -> int:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM usage_records")).scalar_one())

    try:
        yield count
    finally:
        engine.dispose()


def wait_for_rows(count: Callable[[], int], want: int) -> None:
    deadline = time.monotonic() + _ROWS_TIMEOUT_S
    while (got := count()) != want:
        if got > want or time.monotonic() > deadline:
            raise RuntimeError(f"usage_records: {got} rows, expected {want}")
        time.sleep(0.2)


@contextmanager
def under_callgrind(prepared: Prepared, config: Path, out_file: Path, *, cpu: int | None,
                    keep_refresh: bool) -> Iterator[tuple[str, int]]:
    """Run the gateway under callgrind, not counting until told (`--instr-atstart=no`); yields (url, pid)."""
    from tests.e2e.harness import ROOT, free_port, stop, wait_for_health

    port = free_port()
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
               f"--callgrind-out-file={out_file}", sys.executable, "-m", "bench.instructions", _LAUNCH,
               *(["--keep-refresh"] if keep_refresh else []), "serve", "--port", str(port), "--config", str(config)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    log_path = prepared.workdir / "serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=prepared.env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(f"{url}/health", process, timeout=_STARTUP_TIMEOUT_S)
            yield url, process.pid
        except RuntimeError as error:
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise RuntimeError(f"{error}\n--- the gateway's log, last lines ---\n{tail}") from error
        finally:
            stop(process)


def count_run(mode: Mode, requests: int, fake_url: str, workdir: Path, *, cpus: tuple[int | None, int | None],
              path: str, keep_refresh: bool) -> Count:
    """One fresh gateway of `mode`: warm-up, zero, `requests` requests, the usage log's last batch, dump."""
    gateway_cpu, client_cpu = cpus
    with ExitStack() as stack:
        shared = stack.enter_context(backends() if mode.shared else nullcontext())
        prepared = prepare(mode, workdir, fake_url, shared)
        config = prepared.write_config(fake_url)
        database_url = shared.database_url if shared else f"sqlite:///{workdir / 'data' / 'clearmaas.db'}"
        count_rows = stack.enter_context(row_counter(database_url))
        out_file = workdir / "callgrind.out"
        url, pid = stack.enter_context(under_callgrind(prepared, config, out_file, cpu=gateway_cpu,
                                                       keep_refresh=keep_refresh))
        calls = Calls(fake_url, url, prepared.api_key)
        call = calls.chat() if path == "chat" else calls.messages()
        written = _WARMUP if mode.billing else 0
        # Switched on before the warm-up, so what the switch and the first requests leave to do (valgrind
        # re-translates the code; Python specialises its bytecode and fills its caches) is done before zeroing.
        callgrind_control("--instr=on", str(pid))
        send_exactly(call, _WARMUP, workdir, client_cpu)
        wait_for_rows(count_rows, written)
        time.sleep(_SETTLE_S)
        callgrind_control("--zero", str(pid))
        zeroed = time.monotonic()
        load_s = 0.0
        if requests:
            load_s = send_exactly(call, requests, workdir, client_cpu)
            written += requests if mode.billing else 0
            wait_for_rows(count_rows, written)
        time.sleep(_SETTLE_S)
        measured_s = time.monotonic() - zeroed
        callgrind_control("--dump", str(pid))
        by_thread = thread_totals(out_file)
        if (rows := count_rows()) != written:
            raise RuntimeError(f"[{mode.key}] usage_records: {rows} rows after the dump, expected {written}")
    return Count(requests, by_thread, load_s, measured_s)


def report(results: dict[str, PerRequest], requests: int, path: str) -> None:
    reference = next(iter(results))
    label = {"chat": "Chat passthrough", "messages": "Messages -> OpenAI"}[path]
    for key, result in results.items():
        print(f"[{key}] {label}, {requests:,} requests: {result.total / 1000:,.1f}k instructions a request "
              f"(event loop {result.loop / 1000:,.1f}k, worker threads {result.workers / 1000:,.1f}k)")
        print(f"    idle {result.idle_rate / 1e6:,.2f}M a wall-second (N = 0): ticks ~{result.ticks / 1000:,.1f}k "
              f"a request ({100 * result.ticks / result.total:.1f} %); "
              f"without them {result.without_ticks / 1000:,.1f}k")
    first = results[reference]
    for key, result in list(results.items())[1:]:
        print(f"[{key}] / [{reference}]: {result.total / first.total:.3f} "
              f"(without the ticks {result.without_ticks / first.without_ticks:.3f})")


def launch(argv: list[str]) -> NoReturn:
    """Inside valgrind: `clearmaas ARGS` with the usage log writing exactly one batch per 250 records and, unless
    `--keep-refresh` comes first, the caches' refreshes stretched to 1000 s."""
    keep_refresh = argv[:1] == ["--keep-refresh"]
    from clearmaas.billing.usage_log import UsageLog
    from clearmaas.cli import main as clearmaas_main
    from clearmaas.store.refresh import RefreshLoop

    usage_log_init = UsageLog.__init__

    def batched(self: UsageLog, *args: Any, **kwargs: Any) -> None:
        # No time-based flush or maintenance: which records share a batch would depend on timing.
        usage_log_init(self, *args, **{**kwargs, "batch_size": _BATCH, "max_delay": 1000.0,
                                       "maintain_interval": 1000.0})

    UsageLog.__init__ = batched  # type: ignore[method-assign]
    if not keep_refresh:
        refresh_init = RefreshLoop.__init__

        def stretched(self: RefreshLoop, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("name") not in _TICKS:
                kwargs["interval"] = 1000.0
            refresh_init(self, *args, **kwargs)

        RefreshLoop.__init__ = stretched  # type: ignore[method-assign]
    clearmaas_main(argv[1:] if keep_refresh else argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [_LAUNCH]:
        launch(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("modes", help="comma-separated modes, the first is the reference: " +
                        ", ".join(m.key for m in MODES))
    parser.add_argument("--requests", type=int, default=5000, help=f"a multiple of {_BATCH}")
    parser.add_argument("--path", choices=["chat", "messages"], default="chat")
    parser.add_argument("--keep-refresh", action="store_true",
                        help="leave the caches' once-a-second refreshes as shipped (they then add to the idle rate)")
    args = parser.parse_args(argv)
    keys = args.modes.split(",")
    modes = [next((m for m in MODES if m.key == key), None) for key in keys]
    if None in modes or len(set(keys)) != len(keys):
        parser.error(f"give distinct modes of: {', '.join(m.key for m in MODES)}")
    if args.requests <= 0 or args.requests % _BATCH:
        parser.error(f"--requests must be a positive multiple of {_BATCH} (the usage log's batch in these runs)")
    if missing := missing_tools():
        parser.error(f"not found on PATH: {', '.join(missing)} (apt-get install valgrind wrk)")
    from tests.e2e.harness import fake_upstream

    two_cores = (os.cpu_count() or 1) >= 2
    gateway_cpu, client_cpu = (0, 1) if two_cores else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    results: dict[str, PerRequest] = {}
    with tempfile.TemporaryDirectory(prefix="clearmaas-instructions-") as tmp, \
            fake_upstream(fast=True, cpu=client_cpu) as fake:
        for mode in modes:
            assert mode is not None
            counts = []
            for requests in (0, args.requests):
                started = time.monotonic()
                counts.append(count_run(mode, requests, fake.url, Path(tmp) / f"{mode.key}-{requests}",
                                        cpus=(gateway_cpu, client_cpu), path=args.path,
                                        keep_refresh=args.keep_refresh))
                print(f"[{mode.key}] N = {requests}: {counts[-1].total:,} instructions "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            results[mode.key] = per_request(*counts)
    report(results, args.requests, args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
