"""Streamed timing: the fake upstream in its normal mode sends each SSE frame as its own write, and every text
delta's arrival is timed, directly and through each gateway, the paths interleaved round by round."""

from __future__ import annotations

from typing import Any

from bench.client import Call, Connection, WaitProbe, content_deltas, time_stream
from bench.phases import Calls, probe_for, rotated
from bench.report import summary_ms

__all__ = ["measure_streams"]

_PROMPT = "Say hi."
_DIRECT = "fake direct (openai)"


def measure_streams(fake_url: str, gateways: dict[str, tuple[str, str, int]], *, fake_pid: int, pace_ms: int,
                    rounds: int, per_round: dict[str, int]) -> dict[str, Any]:
    """Streamed requests in two variants interleaved round by round: `back-to-back` frames, and frames `paced`
    `pace_ms` apart. `gateways` maps a name suffix (which gateway) to its (url, api key, pid).

    `first_byte` is the response head, `first_event` the first body byte (the gateway sends its head only
    with the first event, so that an upstream failing before it still gets a real HTTP status), `net` leaves
    out the time other processes kept the gateway, the fake or this client off a CPU before that first event.
    Pacing leaves both cores idle between frames, and code that runs on a core that has just been idle runs
    slower (caches, the hypervisor): the fake's own first byte comes about 0.3 ms later when paced, so the
    paced first-event figures include that effect on the gateway's side too.
    """
    prompts = {"back-to-back": _PROMPT, "paced": f"{_PROMPT} [scenario:slow:{pace_ms}]"}
    calls: dict[tuple[str, str], Call] = {}
    server: dict[tuple[str, str], int | None] = {}
    for variant, prompt in prompts.items():
        direct = Calls(fake_url, fake_url, "", prompt=prompt)
        calls[variant, _DIRECT] = direct.fake_openai(stream=True)
        server[variant, _DIRECT] = None
        for suffix, (url, api_key, pid) in gateways.items():
            built = Calls(fake_url, url, api_key, prompt=prompt, suffix=suffix)
            for call in (built.chat(stream=True, name="chat stream passthrough"),
                         built.messages(stream=True, name="messages stream -> openai")):
                calls[variant, call.name] = call
                server[variant, call.name] = pid
    connections = {key: Connection(call.host, call.port) for key, call in calls.items()}
    payloads = {key: call.payload() for key, call in calls.items()}
    series: dict[tuple[str, str], dict[str, list[int]]] = {
        key: {"first_byte": [], "first_event": [], "first_event_net": [], "gap": [], "total": []} for key in calls
    }
    deltas: dict[tuple[str, str], int] = {}
    probes: dict[tuple[str, str], WaitProbe] = {}
    try:
        for key in calls:
            for _ in range(3):
                time_stream(connections[key], payloads[key])
        by_pid = {pid: probe_for(pid, fake_pid) for pid in set(server.values())}
        probes = {key: by_pid[server[key]] for key in calls}
        for turn in range(rounds):
            for key in rotated(list(calls), turn):
                for _ in range(per_round[key[0]]):
                    timing = time_stream(connections[key], payloads[key], probes[key])
                    times = content_deltas(timing)
                    deltas[key] = len(times)
                    out = series[key]
                    out["first_byte"].append(timing.first_byte)
                    out["first_event"].append(timing.pieces[0][0])
                    out["first_event_net"].append(max(timing.pieces[0][0] - timing.waited_before_first_piece, 0))
                    out["gap"].extend(b - a for a, b in zip(times, times[1:]))
                    out["total"].append(timing.end)
    finally:
        for probe in set(probes.values()):
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
    direct = stats[_DIRECT]
    added = {}
    for name, row in stats.items():
        if name == _DIRECT:
            continue
        added[name] = {f"{key}_{q}": round(row[key][q] - direct[key][q], 4)
                       for key, q in (("first_byte", "p50"), ("first_event", "p50"), ("first_event", "p99"),
                                      ("first_event_net", "p50"), ("first_event_net", "p99"), ("gap", "p50"),
                                      ("gap", "p99"), ("total", "p50"))}
    return added
