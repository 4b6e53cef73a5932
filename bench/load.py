"""Throughput runs with wrk, and the CPU accounting that says which side was the limit and how busy the rest
of the machine was: each core's busy share (/proc/stat), the gateway's and the fake's CPU and run-queue wait
(/proc/<pid>/task/*/schedstat), and wrk's own CPU (rusage of reaped children)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.client import Call

__all__ = ["CpuSample", "ForeignMeter", "LoadResult", "cpu_shares", "cpu_snapshot", "process_rss_kb", "request_lua",
           "run_wrk", "task_ns", "wait_for_quiet", "wrk_path"]

_HZ = os.sysconf("SC_CLK_TCK")

# wrk's `done` hook prints one JSON line; latency percentiles are in microseconds.
_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Cumulative CPU counters at one instant: per core (busy, total) in ticks, per watched pid (run, wait) in
    ns, and the CPU seconds of reaped children (wrk)."""

    at: float
    cores: dict[int, tuple[int, int]]
    pids: dict[str, tuple[int, int]]
    children: float


def _core_ticks() -> dict[int, tuple[int, int]]:
    cores = {}
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                ticks = [int(v) for v in values[:8]]
                idle = ticks[3] + ticks[4]  # idle + iowait
                cores[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return cores


def task_ns(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) summed over the process's threads (/proc schedstat)."""
    run = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0, 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                fields = stat.read().split()
        except FileNotFoundError:
            continue  # a thread that just ended
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


class ForeignMeter:
    """How much CPU processes other than the bench's own used since the meter started, in % of one core:
    both cores' busy time (/proc/stat) minus the watched pids, this process and its reaped children (wrk)."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        busy = sum(b for b, _ in _core_ticks().values()) / _HZ
        ours = sum(task_ns(pid)[0] for pid in self._pids) / 1e9
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        return time.monotonic(), busy, ours

    def percent(self) -> float:
        at, busy, ours = self._sample()
        at0, busy0, ours0 = self._start
        return round(100.0 * max((busy - busy0) - (ours - ours0), 0.0) / max(at - at0, 1e-9), 1)


def wait_for_quiet(limit_seconds: float, *, threshold_pct: float = 25.0) -> tuple[float, float]:
    """Sample one-second windows until other processes use less than `threshold_pct` of a core, for at most
    `limit_seconds`; returns (seconds waited, the last window's %)."""
    started = time.monotonic()
    while True:
        meter = ForeignMeter([])
        time.sleep(1.0)
        busy = meter.percent()
        waited = time.monotonic() - started
        if busy < threshold_pct or waited >= limit_seconds:
            return round(waited, 1), busy


def process_rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                out[name] = int(value.split()[0])
    return out


def _group_ns(pids: int | list[int]) -> tuple[int, int]:
    if isinstance(pids, int):
        return task_ns(pids)
    run = wait = 0
    for pid in pids:
        r, w = task_ns(pid)
        run, wait = run + r, wait + w
    return run, wait


def cpu_snapshot(pids: dict[str, int | list[int]]) -> CpuSample:
    """`pids`: a name for each watched process, or for a group of them (PostgreSQL's backends)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(time.monotonic(), _core_ticks(), {k: _group_ns(p) for k, p in pids.items()},
                     usage.ru_utime + usage.ru_stime)


def cpu_shares(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Percent of one core: each core's busy share, each watched process (`name`: on a CPU, `name_wait`:
    runnable but kept waiting by other processes), and reaped children (wrk)."""
    wall = after.at - before.at
    out: dict[str, float] = {}
    for core, (busy, total) in after.cores.items():
        busy0, total0 = before.cores.get(core, (0, 0))
        out[f"core{core}"] = round(100.0 * (busy - busy0) / max(total - total0, 1), 1)
    for name, (run, wait) in after.pids.items():
        run0, wait0 = before.pids[name]
        out[name] = round(100.0 * (run - run0) / 1e9 / wall, 1)
        out[f"{name}_wait"] = round(100.0 * (wait - wait0) / 1e9 / wall, 1)
    out["wrk"] = round(100.0 * (after.children - before.children) / wall, 1)
    return out


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One wrk run: completed requests per second, wrk's latency percentiles, errors and CPU shares."""

    name: str
    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_lua(call: Call) -> str:
    """The lines of a wrk script that make every request `call` (method, JSON body, headers)."""
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{orjson.dumps(call.body).decode()}]==]",
             'wrk.headers["Content-Type"] = "application/json"']
    lines.extend(f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in call.headers.items())
    return "\n".join(lines) + "\n"


def run_wrk(call: Call, *, seconds: float, connections: int, cpu: int | None,
            watch: dict[str, int | list[int]]) -> LoadResult:
    """`wrk -t1 -c<connections>` for `seconds` against `call`, pinned to `cpu`."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="clearmaas-bench-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(request_lua(call) + _DONE)
        command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
                   f"http://{call.host}:{call.port}{call.path}"]
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        before = cpu_snapshot(watch)
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
        after = cpu_snapshot(watch)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    stats = orjson.loads(line[6:])
    elapsed = stats["duration_us"] / 1e6
    return LoadResult(
        name=call.name,
        rps=round(stats["requests"] / elapsed, 1),
        requests=stats["requests"],
        seconds=round(elapsed, 2),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=stats["status_errors"] + stats["socket_errors"],
        cpu=cpu_shares(before, after),
    )
