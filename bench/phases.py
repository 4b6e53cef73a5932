"""The measurements with the fake upstream in its fast mode, each comparing every gateway path with calling the
fake directly and with the other gateways in the same run, interleaved round by round: latency at concurrency 1,
throughput under wrk, and latency and throughput while the database is slowed down."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.client import Call, Connection, WaitProbe, time_calls
from bench.dbprobe import ProbeCounts
from bench.load import LoadResult, run_wrk, task_ns
from bench.report import percentile, summary_ms

__all__ = [
    "SETTLE_SECONDS", "Calls", "measure_latency", "measure_slowed_database", "measure_throughput", "probe_for",
    "rotated",
]

_PROMPT = "Say hi."
_ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Calls:
    """Builds the requests of every compared path for one fake upstream and one gateway."""

    fake_url: str
    gateway_url: str
    api_key: str
    prompt: str = _PROMPT
    suffix: str = ""  # appended to every gateway path's name: which gateway it is

    def _at(self, url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    def _chat_body(self, model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": self.prompt}]}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def fake_openai(self, *, stream: bool = False) -> Call:
        from tests.fakes.upstream import FAKE_KEYS

        return Call("fake direct (openai)", *self._at(self.fake_url), "/openai/v1/chat/completions",
                    self._chat_body("gpt-4o-mini", stream), {"Authorization": f"Bearer {FAKE_KEYS['openai']}"})

    def chat(self, model: str = "openai/gpt-4o-mini", *, stream: bool = False, name: str = "") -> Call:
        return Call((name or "chat passthrough") + self.suffix, *self._at(self.gateway_url), "/v1/chat/completions",
                    self._chat_body(model, stream), {"Authorization": f"Bearer {self.api_key}"})

    def messages(self, model: str = "openai/gpt-4o-mini", *, stream: bool = False, name: str = "") -> Call:
        body: dict[str, Any] = {"model": model, "max_tokens": 64,
                                "messages": [{"role": "user", "content": self.prompt}]}
        if stream:
            body["stream"] = True
        return Call((name or "messages -> openai") + self.suffix, *self._at(self.gateway_url), "/v1/messages", body,
                    {"x-api-key": self.api_key, "anthropic-version": _ANTHROPIC_VERSION})


# A foreign process's CFS time slice is milliseconds (3-4 ms seen here); the client and the fake, sharing a core,
# wait for each other up to several hundred microseconds on a quiet machine (the fake's normal mode parses
# and records every request).
_SHARED_CORE_FLOOR_NS = 1_000_000


def probe_for(gateway_pid: int | None, fake_pid: int) -> WaitProbe:
    """Run-queue waits of a call's critical path: the gateway serving it (every wait counts, less the CPU its
    own other threads took meanwhile, e.g. the usage-log writer), the fake and this client (waits over 1 ms)."""
    tids = {fake_pid: _SHARED_CORE_FLOOR_NS, os.getpid(): _SHARED_CORE_FLOOR_NS}
    if gateway_pid is None:
        return WaitProbe(tids)
    return WaitProbe({gateway_pid: 0, **tids}, own_threads=gateway_pid)


def path_kind(name: str) -> str:
    """A path's name without its gateway: "chat passthrough [sqlite]" -> "chat passthrough"."""
    return name.rsplit(" [", 1)[0] if name.endswith("]") else name


# The pause after a gateway's turn or run: longer than the usage log's batch delay (200 ms) plus a batch, so
# that its last batch (and its Redis tick) land in the pause and not on the next path's requests.
SETTLE_SECONDS = 0.5


def rotated(names: list[Any], turn: int) -> list[Any]:
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def measure_latency(paths: dict[str, Call], reference: dict[str, str], *, server_pid: dict[str, int],
                    fake_pid: int, rounds: int, per_round: int, warmup: int,
                    settle: float = SETTLE_SECONDS) -> dict[str, Any]:
    """Sequential requests, one keep-alive connection per path, the paths interleaved round by round, with a
    pause of `settle` seconds after each path's turn: a gateway's last usage batch (written up to the usage
    log's delay after its last request) and its Redis tick land in the pause, not on the next path's requests.

    `reference[path]` is the direct path a gateway path is compared with; `server_pid[path]` the process that
    serves it (the fake for direct paths), whose CPU time per request is reported. Besides the raw latencies,
    each request's `net` latency leaves out the time other processes kept the gateway, the fake or this client
    off a CPU (see `WaitProbe`).
    """
    connections = {name: Connection(call.host, call.port) for name, call in paths.items()}
    payloads = {name: call.payload() for name, call in paths.items()}
    samples: dict[str, list[list[int]]] = {name: [] for name in paths}
    net: dict[str, list[list[int]]] = {name: [] for name in paths}
    server_ns = dict.fromkeys(paths, 0)
    probes: dict[str, WaitProbe] = {}
    try:
        for name in paths:
            time_calls(connections[name], payloads[name], warmup)
        # After the warm-up, so that the gateways' worker threads exist and are known to the probes.
        by_pid = {pid: probe_for(None if pid == fake_pid else pid, fake_pid) for pid in set(server_pid.values())}
        probes = {name: by_pid[server_pid[name]] for name in paths}
        for turn in range(rounds):
            for name in rotated(list(paths), turn):
                cpu_before = task_ns(server_pid[name])[0]
                latencies, waits = time_calls(connections[name], payloads[name], per_round, probes[name])
                server_ns[name] += task_ns(server_pid[name])[0] - cpu_before
                samples[name].append(latencies)
                net[name].append([max(lat - wait, 0) for lat, wait in zip(latencies, waits, strict=True)])
                time.sleep(settle)
    finally:
        for probe in set(probes.values()):
            probe.close()
        for connection in connections.values():
            connection.close()
    stats: dict[str, dict[str, Any]] = {}
    for name, batches in samples.items():
        pooled = [v for batch in batches for v in batch]
        stats[name] = {**summary_ms(pooled), "net": summary_ms([v for batch in net[name] for v in batch]),
                       "server_cpu_ms": round(server_ns[name] / 1e6 / len(pooled), 4)}
    added = {}
    for name, direct in reference.items():
        by_round = {q: _added_by_round(samples[name], samples[direct], q) for q in (50, 99)}
        net_by_round = {q: _added_by_round(net[name], net[direct], q) for q in (50, 99)}
        added[name] = {"p50": round(stats[name]["p50"] - stats[direct]["p50"], 4),
                       "p99": round(stats[name]["p99"] - stats[direct]["p99"], 4),
                       "net_p50": round(stats[name]["net"]["p50"] - stats[direct]["net"]["p50"], 4),
                       "net_p99": round(stats[name]["net"]["p99"] - stats[direct]["net"]["p99"], 4),
                       # Robust to a minority of rounds disturbed by other processes in ways the wait probe
                       # cannot see (the other core's neighbours, the host): the median round.
                       "median_round_net_p50": round(statistics.median(net_by_round[50]), 4),
                       "median_round_net_p99": round(statistics.median(net_by_round[99]), 4),
                       "round_p50": [round(v, 4) for v in by_round[50]],
                       "round_p99": [round(v, 4) for v in by_round[99]],
                       "round_net_p50": [round(v, 4) for v in net_by_round[50]],
                       "round_net_p99": [round(v, 4) for v in net_by_round[99]]}
    requests = {name: rounds * per_round + warmup for name in paths}
    return {"rounds": rounds, "per_round": per_round, "warmup": warmup, "paths": stats, "added": added,
            "requests": requests}


def _added_by_round(gateway: list[list[int]], direct: list[list[int]], q: float) -> list[float]:
    """Per round, the gateway's percentile minus the direct path's, in ms."""
    return [(percentile(g, q) - percentile(d, q)) / 1e6 for g, d in zip(gateway, direct, strict=True)]


def measure_throughput(paths: dict[str, Call], *, server: dict[str, str], watch: dict[str, int | list[int]],
                       rounds: int, seconds: float, connections: int, client_cpu: int | None,
                       gateway_cpu: int | None, pause: float = SETTLE_SECONDS) -> dict[str, Any]:
    """wrk against the fake alone and each gateway path, the paths interleaved round by round.

    `server[path]` names the process serving it in `watch` (its CPU gives the capacity). A pause after each run
    lets a gateway's usage log write its last batch before the next run starts on the same core.
    """

    def run(name: str, duration: float) -> LoadResult:
        result = run_wrk(paths[name], seconds=duration, connections=connections, cpu=client_cpu, watch=watch)
        if result.errors or result.requests == 0:
            raise RuntimeError(f"{name}: {result.errors} errors in {result.requests} requests")
        time.sleep(pause)
        return result

    warm = {name: run(name, 1).requests for name in paths}
    runs: dict[str, list[LoadResult]] = {name: [] for name in paths}
    # The gateways' runs of one path follow each other, so each round's on/off ratio compares runs seconds
    # apart: the machine's speed drifts by ±10 % over tens of seconds (other VMs on the host), which made the
    # ratio of runs a whole round apart swing by ±0.05.
    kinds = list(dict.fromkeys(path_kind(name) for name in paths))
    for turn in range(rounds):
        for kind in rotated(kinds, turn):
            for name in rotated([name for name in paths if path_kind(name) == kind], turn):
                runs[name].append(run(name, seconds))
    median_rps = {name: statistics.median(r.rps for r in results) for name, results in runs.items()}

    # What one process would serve with a core to itself: requests per second of its own CPU time (all its
    # threads, the usage-log writer's included). The machine is shared, so the gateway rarely gets all of
    # core 0; this figure is immune to that (though not to the cache and frequency effects of sharing, which
    # make it slightly pessimistic).
    def capacity_of(r: LoadResult, name: str) -> float:
        return r.rps * 100.0 / max(r.cpu[server[name]], 1e-9)

    capacity = {name: statistics.median(capacity_of(r, name) for r in results) for name, results in runs.items()}
    round_capacity = {name: [round(capacity_of(r, name)) for r in results] for name, results in runs.items()}
    cpu_us = {name: round(1e6 / value, 1) for name, value in capacity.items()}
    gateway_runs = [r for name, results in runs.items() if server[name] != "fake" for r in results]
    fastest = max(median_rps[name] for name in paths if server[name] != "fake")
    fake_rps = next(median_rps[name] for name in paths if server[name] == "fake")
    headroom = fake_rps / fastest
    client_side = max(r.cpu.get("fake", 0.0) + r.cpu.get("wrk", 0.0) for r in gateway_runs)
    load_side = {"fake_direct_rps": fake_rps, "headroom": round(headroom, 2), "max_fake_plus_wrk_pct": client_side,
                 "verdict": "not the limit" if headroom >= 2 and client_side < 60 else "MAY BE THE LIMIT"}
    median_runs = {name: min(results, key=lambda r: abs(r.rps - median_rps[name])).as_dict()
                   for name, results in runs.items()}
    requests = {name: warm[name] + sum(r.requests for r in results) for name, results in runs.items()}
    return {"rounds": rounds, "seconds": seconds, "connections": connections, "client_cpu": client_cpu,
            "gateway_cpu": gateway_cpu, "server": server, "median_rps": median_rps, "median_runs": median_runs,
            "capacity_rps": {name: round(value) for name, value in capacity.items()}, "cpu_us_per_request": cpu_us,
            "round_rps": {name: [r.rps for r in results] for name, results in runs.items()},
            "round_capacity": round_capacity, "load_side": load_side, "requests": requests,
            "runs": {name: [r.as_dict() for r in results] for name, results in runs.items()}}


def measure_slowed_database(call: Call, counts: ProbeCounts, *, gateway_pid: int, fake_pid: int, delay_ms: float,
                            rounds: int, per_round: int, wrk_seconds: float, client_cpu: int | None,
                            watch: dict[str, int | list[int]]) -> dict[str, Any]:
    """The same gateway with its database as is and with every SQL execution delayed by `delay_ms` (in whatever
    thread runs it), alternated round by round at concurrency 1, then two wrk runs each.

    A query on a request's path would add at least `delay_ms` to each request; queries in the usage log's
    writer and the caches' refreshers only make those run slower.
    """
    variants = {"normal": 0.0, "slowed": delay_ms}
    samples: dict[str, list[int]] = {v: [] for v in variants}
    net: dict[str, list[int]] = {v: [] for v in variants}
    round_p50: dict[str, list[float]] = {v: [] for v in variants}
    round_net_p50: dict[str, list[float]] = {v: [] for v in variants}
    during: dict[str, Any] = {}
    slowed_sql = 0
    with Connection(call.host, call.port) as connection:
        payload = call.payload()
        time_calls(connection, payload, 100)
        probe = probe_for(gateway_pid, fake_pid)
        try:
            for turn in range(rounds):
                for variant in rotated(list(variants), turn):
                    counts.slow_database(variants[variant])
                    before = counts.read()
                    latencies, waits = time_calls(connection, payload, per_round, probe)
                    # The batch this round queued is written after up to 200 ms, at the round's delay.
                    time.sleep(0.35 + 6 * variants[variant] / 1000)
                    if variant == "slowed":
                        slowed_sql += (counts.read() - before).totals["executions"]
                    nets = [max(lat - wait, 0) for lat, wait in zip(latencies, waits, strict=True)]
                    samples[variant].extend(latencies)
                    net[variant].extend(nets)
                    round_p50[variant].append(percentile(latencies, 50) / 1e6)
                    round_net_p50[variant].append(percentile(nets, 50) / 1e6)
        finally:
            probe.close()
    wrk: dict[str, Any] = {}
    # Two runs each, in the order normal, slowed, slowed, normal: a drift of the machine's load during the
    # four runs weighs on both variants alike.
    for variant in [*variants, *reversed(variants)]:
        counts.slow_database(variants[variant])
        before = counts.read()
        result = run_wrk(call, seconds=wrk_seconds, connections=64, cpu=client_cpu,
                         watch={**watch, "gateway": gateway_pid})
        time.sleep(0.5 + 6 * variants[variant] / 1000)
        delta = counts.read() - before
        if result.errors:
            raise RuntimeError(f"slowed database, {variant}: {result.errors} errors")
        batches, records = delta.usage_batches()
        run = {"rps": result.rps, "capacity": result.rps * 100.0 / max(result.cpu["gateway"], 1e-9),
               "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "requests": result.requests,
               "sql_executions": delta.totals["executions"], "usage_batches": batches, "usage_records": records}
        if variant not in wrk:
            wrk[variant] = {**run, "runs": [result.as_dict()]}
        else:
            first = wrk[variant]
            wrk[variant] = {key: (first[key] + value) / 2 if key in ("rps", "capacity", "p50_ms", "p99_ms")
                            else first[key] + value for key, value in run.items()}
            wrk[variant]["runs"] = [*first["runs"], result.as_dict()]
        if variant == "slowed":
            slowed_sql += delta.totals["executions"]
    for row in wrk.values():
        row["rps"], row["capacity"] = round(row["rps"], 1), round(row["capacity"])
    counts.slow_database(0)
    for variant in variants:
        during[variant] = {"latency": summary_ms(samples[variant]), "net": summary_ms(net[variant]), "wrk": wrk[variant]}
    # Noise removed: the median over rounds of the slowed round's p50 minus the adjacent normal round's (net),
    # and the capacity (req/s per CPU-second of the gateway) rather than the req/s it got on a shared machine.
    change = {"p50": round(during["slowed"]["latency"]["p50"] - during["normal"]["latency"]["p50"], 4),
              "p99": round(during["slowed"]["latency"]["p99"] - during["normal"]["latency"]["p99"], 4),
              "net_p50": round(during["slowed"]["net"]["p50"] - during["normal"]["net"]["p50"], 4),
              "median_round_p50": round(statistics.median(
                  a - b for a, b in zip(round_p50["slowed"], round_p50["normal"], strict=True)), 4),
              "median_round_net_p50": round(statistics.median(
                  a - b for a, b in zip(round_net_p50["slowed"], round_net_p50["normal"], strict=True)), 4),
              "rps_ratio": round(wrk["slowed"]["rps"] / wrk["normal"]["rps"], 3),
              "capacity_ratio": round(wrk["slowed"]["capacity"] / max(wrk["normal"]["capacity"], 1), 3)}
    return {"delay_ms": delay_ms, "rounds": rounds, "per_round": per_round, "variants": during, "change": change,
            "slowed_sql_executions": slowed_sql,
            "requests": 100 + 2 * rounds * per_round + sum(w["requests"] for w in wrk.values())}
