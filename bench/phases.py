"""The measurements, each comparing the gateway with calling the fake upstream directly in the same run:
latency at concurrency 1, throughput under wrk, streamed timing, and database statements under load."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.client import Call, Connection, WaitProbe, content_deltas, time_calls, time_stream
from bench.dbprobe import probed_gateway
from bench.load import LoadResult, run_wrk, task_ns
from bench.report import percentile, summary_ms

__all__ = ["Calls", "measure_database", "measure_latency", "measure_streams", "measure_throughput"]

_PROMPT = "Say hi."
_ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Calls:
    """Builds the requests of every compared path for one fake upstream and one gateway."""

    fake_url: str
    gateway_url: str
    api_key: str
    prompt: str = _PROMPT

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

    def fake_anthropic(self) -> Call:
        from tests.fakes.upstream import FAKE_KEYS

        body = {"model": "claude-haiku-4-5-20251001", "max_tokens": 64,
                "messages": [{"role": "user", "content": self.prompt}]}
        return Call("fake direct (anthropic)", *self._at(self.fake_url), "/anthropic/v1/messages", body,
                    {"x-api-key": FAKE_KEYS["anthropic"], "anthropic-version": _ANTHROPIC_VERSION})

    def chat(self, model: str = "openai/gpt-4o-mini", *, stream: bool = False, name: str = "") -> Call:
        return Call(name or "chat passthrough", *self._at(self.gateway_url), "/v1/chat/completions",
                    self._chat_body(model, stream), {"Authorization": f"Bearer {self.api_key}"})

    def messages(self, model: str = "openai/gpt-4o-mini", *, stream: bool = False, name: str = "") -> Call:
        body: dict[str, Any] = {"model": model, "max_tokens": 64,
                                "messages": [{"role": "user", "content": self.prompt}]}
        if stream:
            body["stream"] = True
        return Call(name or "messages -> openai", *self._at(self.gateway_url), "/v1/messages", body,
                    {"x-api-key": self.api_key, "anthropic-version": _ANTHROPIC_VERSION})


# A foreign process's CFS time slice is milliseconds (3-4 ms seen here); the client and the fake, sharing a core,
# wait for each other up to several hundred microseconds on a quiet machine (the fake's normal mode parses
# and records every request).
_SHARED_CORE_FLOOR_NS = 1_000_000


def _probe(pids: dict[str, int]) -> WaitProbe:
    return WaitProbe({pids["gateway"]: 0, pids["fake"]: _SHARED_CORE_FLOOR_NS, os.getpid(): _SHARED_CORE_FLOOR_NS})


def _rotated(names: list[str], turn: int) -> list[str]:
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def measure_latency(calls: Calls, *, rounds: int, per_round: int, warmup: int,
                    pids: dict[str, int]) -> dict[str, Any]:
    """Sequential requests, one keep-alive connection per path, the paths interleaved round by round.

    Besides the raw latencies, each request's `net` latency leaves out the time other processes on the
    shared machine kept the gateway, the fake or this client off a CPU (see `WaitProbe`); the gateway's CPU
    time per request is summed per path.
    """
    paths = {
        "fake direct (openai)": calls.fake_openai(),
        "chat passthrough": calls.chat(),
        "messages -> openai": calls.messages(),
        "fake direct (anthropic)": calls.fake_anthropic(),
        "chat -> anthropic": calls.chat("anthropic/claude-haiku-4.5", name="chat -> anthropic"),
    }
    reference = {"chat passthrough": "fake direct (openai)", "messages -> openai": "fake direct (openai)",
                 "chat -> anthropic": "fake direct (anthropic)"}
    connections = {name: Connection(call.host, call.port) for name, call in paths.items()}
    payloads = {name: call.payload() for name, call in paths.items()}
    probe = _probe(pids)
    samples: dict[str, list[list[int]]] = {name: [] for name in paths}
    net: dict[str, list[list[int]]] = {name: [] for name in paths}
    gateway_ns = dict.fromkeys(paths, 0)
    try:
        for name in paths:
            time_calls(connections[name], payloads[name], warmup)
        for turn in range(rounds):
            for name in _rotated(list(paths), turn):
                cpu_before = task_ns(pids["gateway"])[0]
                latencies, waits = time_calls(connections[name], payloads[name], per_round, probe)
                gateway_ns[name] += task_ns(pids["gateway"])[0] - cpu_before
                samples[name].append(latencies)
                net[name].append([max(lat - wait, 0) for lat, wait in zip(latencies, waits, strict=True)])
    finally:
        probe.close()
        for connection in connections.values():
            connection.close()
    stats: dict[str, dict[str, Any]] = {}
    for name, batches in samples.items():
        pooled = [v for batch in batches for v in batch]
        stats[name] = {**summary_ms(pooled), "net": summary_ms([v for batch in net[name] for v in batch]),
                       "gateway_cpu_ms": round(gateway_ns[name] / 1e6 / len(pooled), 4)}
    added = {}
    for name, direct in reference.items():
        by_round_p50 = _added_by_round(samples[name], samples[direct], 50)
        by_round_p99 = _added_by_round(samples[name], samples[direct], 99)
        added[name] = {"p50": round(stats[name]["p50"] - stats[direct]["p50"], 4),
                       "p99": round(stats[name]["p99"] - stats[direct]["p99"], 4),
                       "net_p50": round(stats[name]["net"]["p50"] - stats[direct]["net"]["p50"], 4),
                       "net_p99": round(stats[name]["net"]["p99"] - stats[direct]["net"]["p99"], 4),
                       # Robust to a minority of rounds disturbed by other processes in ways the wait probe
                       # cannot see (the other core's neighbours, the host): the median round.
                       "median_round_net_p50": round(statistics.median(_added_by_round(net[name], net[direct], 50)), 4),
                       "median_round_net_p99": round(statistics.median(_added_by_round(net[name], net[direct], 99)), 4),
                       "round_p50_range": [round(min(by_round_p50), 4), round(max(by_round_p50), 4)],
                       "round_p99_range": [round(min(by_round_p99), 4), round(max(by_round_p99), 4)]}
    return {"rounds": rounds, "per_round": per_round, "paths": stats, "added": added}


def _added_by_round(gateway: list[list[int]], direct: list[list[int]], q: float) -> list[float]:
    """Per round, the gateway's percentile minus the direct path's, in ms."""
    return [(percentile(g, q) - percentile(d, q)) / 1e6 for g, d in zip(gateway, direct, strict=True)]


def measure_throughput(calls: Calls, *, rounds: int, seconds: float, connections: int, client_cpu: int | None,
                       gateway_cpu: int | None, watch: dict[str, int]) -> dict[str, Any]:
    """wrk against the fake alone and each gateway path, the paths interleaved round by round."""
    paths = {
        "fake direct": calls.fake_openai(),
        "chat passthrough": calls.chat(),
        "messages -> openai": calls.messages(),
        "chat -> anthropic": calls.chat("anthropic/claude-haiku-4.5", name="chat -> anthropic"),
        "chat stream passthrough": calls.chat(stream=True, name="chat stream passthrough"),
        "messages stream -> openai": calls.messages(stream=True, name="messages stream -> openai"),
    }

    def run(name: str, duration: float) -> LoadResult:
        result = run_wrk(paths[name], seconds=duration, connections=connections, cpu=client_cpu, watch=watch)
        if result.errors or result.requests == 0:
            raise RuntimeError(f"{name}: {result.errors} errors in {result.requests} requests")
        return result

    for name in paths:
        run(name, 1)
    runs: dict[str, list[LoadResult]] = {name: [] for name in paths}
    for turn in range(rounds):
        for name in _rotated(list(paths), turn):
            runs[name].append(run(name, seconds))
    median_rps = {name: statistics.median(r.rps for r in results) for name, results in runs.items()}
    # What one process would serve with a core to itself: requests per second of its own CPU time. The
    # machine is shared, so the gateway rarely gets all of core 0; this figure is immune to that (though
    # not to the cache and frequency effects of sharing, which make it slightly pessimistic).
    server = {name: "fake" if name == "fake direct" else "gateway" for name in paths}
    capacity = {name: statistics.median(r.rps * 100.0 / max(r.cpu[server[name]], 1e-9) for r in results)
                for name, results in runs.items()}
    cpu_us = {name: round(1e6 / value, 1) for name, value in capacity.items()}
    gateway_runs = [r for name, results in runs.items() if name != "fake direct" for r in results]
    fastest = max(median_rps[name] for name in paths if name != "fake direct")
    headroom = median_rps["fake direct"] / fastest
    client_side = max(r.cpu.get("fake", 0.0) + r.cpu.get("wrk", 0.0) for r in gateway_runs)
    load_side = {"fake_direct_rps": median_rps["fake direct"], "headroom": round(headroom, 2),
                 "max_fake_plus_wrk_pct": client_side,
                 "verdict": "not the limit" if headroom >= 2 and client_side < 60 else "MAY BE THE LIMIT"}
    median_runs = {name: min(results, key=lambda r: abs(r.rps - median_rps[name])).as_dict()
                   for name, results in runs.items()}
    return {"rounds": rounds, "seconds": seconds, "connections": connections, "client_cpu": client_cpu,
            "gateway_cpu": gateway_cpu, "median_rps": median_rps, "median_runs": median_runs,
            "capacity_rps": {name: round(value) for name, value in capacity.items()}, "cpu_us_per_request": cpu_us,
            "load_side": load_side,
            "runs": {name: [r.as_dict() for r in results] for name, results in runs.items()}}


def measure_streams(fake_url: str, gateway_url: str, api_key: str, *, pace_ms: int, rounds: int,
                    per_round: dict[str, int], pids: dict[str, int]) -> dict[str, Any]:
    """Streamed requests to the fake in its normal mode (each SSE frame its own write), in two variants
    interleaved round by round: `back-to-back` frames, and frames `paced` `pace_ms` apart. Every text
    delta's arrival is timed.

    `first_byte` is the response head, `first_event` the first body byte (the gateway sends its head only
    with the first event, so that an upstream failing before it still gets a real HTTP status), `net` leaves
    out the time other processes kept the gateway, the fake or this client off a CPU before that first event.
    Pacing leaves both cores idle between frames, and code that runs on a core that has just been idle runs
    slower (caches, the hypervisor): the fake's own first byte comes about 0.3 ms later when paced, so the
    paced first-event figures include that effect on the gateway's side too.
    """
    prompts = {"back-to-back": _PROMPT, "paced": f"{_PROMPT} [scenario:slow:{pace_ms}]"}
    calls: dict[tuple[str, str], Call] = {}
    for variant, prompt in prompts.items():
        built = Calls(fake_url, gateway_url, api_key, prompt=prompt)
        calls[variant, "fake direct (openai)"] = built.fake_openai(stream=True)
        calls[variant, "chat stream passthrough"] = built.chat(stream=True, name="chat stream passthrough")
        calls[variant, "messages stream -> openai"] = built.messages(stream=True, name="messages stream -> openai")
    connections = {key: Connection(call.host, call.port) for key, call in calls.items()}
    payloads = {key: call.payload() for key, call in calls.items()}
    probe = _probe(pids)
    series: dict[tuple[str, str], dict[str, list[int]]] = {
        key: {"first_byte": [], "first_event": [], "first_event_net": [], "gap": [], "total": []} for key in calls
    }
    deltas: dict[tuple[str, str], int] = {}
    try:
        for key in calls:
            for _ in range(3):
                time_stream(connections[key], payloads[key])
        for turn in range(rounds):
            for key in _rotated(list(calls), turn):
                for _ in range(per_round[key[0]]):
                    timing = time_stream(connections[key], payloads[key], probe)
                    times = content_deltas(timing)
                    deltas[key] = len(times)
                    out = series[key]
                    out["first_byte"].append(timing.first_byte)
                    out["first_event"].append(timing.pieces[0][0])
                    out["first_event_net"].append(max(timing.pieces[0][0] - timing.waited_before_first_piece, 0))
                    out["gap"].extend(b - a for a, b in zip(times, times[1:]))
                    out["total"].append(timing.end)
    finally:
        probe.close()
        for connection in connections.values():
            connection.close()
    variants: dict[str, Any] = {}
    for variant in prompts:
        stats: dict[str, dict[str, Any]] = {
            name: {**{k: summary_ms(values) for k, values in out.items()}, "text_deltas": deltas[v, name]}
            for (v, name), out in series.items() if v == variant
        }
        variants[variant] = {"requests": rounds * per_round[variant], "paths": stats, "added": _stream_added(stats)}
    return {"pace_ms": pace_ms, "variants": variants}


def _stream_added(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each gateway path's stream figures minus the direct path's."""
    direct = stats["fake direct (openai)"]
    added = {}
    for name, row in stats.items():
        if name == "fake direct (openai)":
            continue
        added[name] = {f"{key}_{q}": round(row[key][q] - direct[key][q], 4)
                       for key, q in (("first_byte", "p50"), ("first_event", "p50"), ("first_event", "p99"),
                                      ("first_event_net", "p50"), ("first_event_net", "p99"), ("gap", "p50"),
                                      ("gap", "p99"), ("total", "p50"))}
    return added


def measure_database(fake_url: str, workdir: Path, config: dict[str, Any], *, seconds: float,
                     gateway_cpu: int | None, client_cpu: int | None) -> dict[str, Any]:
    """SQL statements the gateway runs while idle vs under load of equal length (see bench/dbprobe.py)."""
    with probed_gateway(config, workdir, cpu=gateway_cpu) as (url, api_key, pid, counts):
        calls = Calls(fake_url, url, api_key)
        loads = [calls.chat(), calls.messages()]
        for call in loads:  # the first use of the key loads it into the cache: one expected lookup
            with Connection(call.host, call.port) as connection:
                time_calls(connection, call.payload(), 20)
        time.sleep(1.0)
        before = counts.read()
        if not before:
            raise RuntimeError("the statement counter saw nothing, not even the key's first load: probe broken")
        started = time.monotonic()
        time.sleep(seconds)
        idle_seconds = time.monotonic() - started
        idle = counts.read()
        started = time.monotonic()
        requests = 0
        for call in loads:
            requests += run_wrk(call, seconds=max(1, round(seconds / len(loads))), connections=64, cpu=client_cpu,
                                watch={"gateway": pid}).requests
        load_seconds = time.monotonic() - started
        after = counts.read()
    idle_delta = idle - before
    load_delta = after - idle
    load_total = sum(load_delta.values())
    per_request = round(load_total / max(requests, 1), 5)
    return {
        "idle_seconds": round(idle_seconds, 2), "idle_statements": sum(idle_delta.values()),
        "load_seconds": round(load_seconds, 2), "load_statements": load_total, "load_requests": requests,
        "per_request": per_request,
        # Fewer than one statement per hundred requests: what remains is the key cache's periodic refresh.
        "per_request_verdict": per_request < 0.01,
        "load_statement_kinds": dict(load_delta.most_common(8)),
        "idle_statement_kinds": dict(idle_delta.most_common(8)),
    }
