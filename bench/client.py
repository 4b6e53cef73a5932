"""A minimal blocking HTTP/1.1 keep-alive client on a raw socket, so that the client's own cost is small and
identical for the gateway and the direct calls it is compared with, and every response byte is timed."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Call", "Connection", "StreamTiming", "WaitProbe", "content_deltas", "time_calls", "time_stream"]

_RECV = 65536


@dataclass(frozen=True, slots=True)
class Call:
    """One prepared POST: where it goes and the exact request bytes."""

    name: str
    host: str
    port: int
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        raw = orjson.dumps(self.body)
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Content-Type: application/json", f"Content-Length: {len(raw)}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


@dataclass(slots=True)
class StreamTiming:
    """Nanoseconds after the request was sent: the first response byte, each body piece, the end; and how
    long the probed threads were kept off a CPU before the first body piece."""

    first_byte: int
    pieces: list[tuple[int, bytes]]
    end: int
    waited_before_first_piece: int = 0


class WaitProbe:
    """Run-queue waits (ns runnable but not running, /proc/<pid>/task/<tid>/schedstat) of the threads on a
    call's critical path, to tell how long other processes on the machine held a request up.

    At concurrency 1 the client, the gateway and the fake run one after another, so a wait of any of them while
    a request is in flight adds to its latency. A thread alone on its core (the gateway) only ever waits for
    foreign processes: all its wait counts. Threads that share a core (the client and the fake) also wait for
    each other on a quiet machine; for them only a wait longer than their floor, about a foreign process's
    time slice, counts.
    """

    def __init__(self, tids: dict[int, int], *, own_threads: int | None = None) -> None:
        """`tids` maps each thread id to its floor in ns (0: every wait counts). `own_threads`: a process id in
        `tids` whose other threads share its core; their CPU time is not a foreign process's, so it is taken
        off that thread's wait (the gateway's usage-log writer and its other worker threads)."""
        self._fds = [os.open(f"/proc/{tid}/task/{tid}/schedstat", os.O_RDONLY) for tid in tids]
        self._floors = list(tids.values())
        self._own = list(tids).index(own_threads) if own_threads is not None else -1
        siblings = [] if own_threads is None else [t for t in os.listdir(f"/proc/{own_threads}/task")
                                                   if int(t) != own_threads]
        self._sibling_fds = [os.open(f"/proc/{own_threads}/task/{t}/schedstat", os.O_RDONLY) for t in siblings]

    def __call__(self) -> list[int]:
        waits = [int(os.pread(fd, 128, 0).split()[1]) for fd in self._fds]
        # Last: the CPU time of the own process's other threads (0 without `own_threads`).
        waits.append(sum(_run_ns(fd) for fd in self._sibling_fds))
        return waits

    def foreign(self, before: list[int], after: list[int]) -> int:
        """The wait between two snapshots that other processes caused."""
        total = 0
        siblings_ran = after[-1] - before[-1]
        for i, (start, end, floor) in enumerate(zip(before[:-1], after[:-1], self._floors, strict=True)):
            waited = end - start
            if i == self._own:
                waited = max(waited - siblings_ran, 0)
            if waited > floor:
                total += waited
        return total

    def close(self) -> None:
        for fd in [*self._fds, *self._sibling_fds]:
            os.close(fd)


def _run_ns(fd: int) -> int:
    try:
        return int(os.pread(fd, 128, 0).split()[0])
    except OSError:  # the thread has ended
        return 0


class Connection:
    """One keep-alive connection; `exchange` sends a request and reads the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._sock = self._connect()
        self._buf = b""
        self._recv_at = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def ensure_open(self) -> None:
        """Reconnect if the server closed the idle connection (uvicorn's keep-alive timeout is 5 s, and
        interleaved paths leave each connection idle for a while); called outside any timed span."""
        try:
            data = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return  # open, nothing pending: the normal case
        except OSError:
            data = b""
        if data:
            raise RuntimeError("unexpected bytes on an idle connection")
        self._sock.close()
        self._sock = self._connect()
        self._buf = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self) -> bytes:
        data = self._sock.recv(_RECV)
        self._recv_at = time.perf_counter_ns()
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def exchange(self, payload: bytes, on_body: Callable[[bytes, int], None] | None = None) -> tuple[int, int]:
        """Send `payload`, read the response; returns (status, ns of the first response byte's arrival).

        `on_body` gets each body piece with the arrival time (perf_counter_ns) of the read that completed it.
        """
        self._sock.sendall(payload)
        buf = self._buf
        first = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            buf += self._recv()
            first = first or self._recv_at
        head, buf = buf[:end], buf[end + 4:]
        status = int(head[9:12])
        length, chunked = -1, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self._buf = self._read_chunked(buf, on_body)
        elif length >= 0:
            while len(buf) < length:
                buf += self._recv()
            if on_body is not None:
                on_body(buf[:length], self._recv_at)
            self._buf = buf[length:]
        else:
            raise ValueError("response without Content-Length or chunked encoding")
        return status, first

    def _read_chunked(self, buf: bytes, on_body: Callable[[bytes, int], None] | None) -> bytes:
        while True:
            line_end = buf.find(b"\r\n")
            while line_end < 0:
                buf += self._recv()
                line_end = buf.find(b"\r\n")
            size = int(buf[:line_end].split(b";")[0], 16)
            if size == 0:
                # No trailers are sent: the last-chunk line is followed by one empty line.
                while len(buf) < line_end + 4:
                    buf += self._recv()
                return buf[line_end + 4:]
            stop = line_end + 2 + size
            while len(buf) < stop + 2:
                buf += self._recv()
            if on_body is not None:
                on_body(buf[line_end + 2:stop], self._recv_at)
            buf = buf[stop + 2:]


def time_calls(conn: Connection, payload: bytes, count: int,
               probe: WaitProbe | None = None) -> tuple[list[int], list[int]]:
    """Latencies in ns of `count` sequential requests (concurrency 1) on one connection, and the run-queue
    wait other processes caused during each (zeros without a probe); the probe is read outside the timed span."""
    clock = time.perf_counter_ns
    latencies, waits = [], []
    for _ in range(count):
        conn.ensure_open()
        before = probe() if probe is not None else []
        started = clock()
        status, _ = conn.exchange(payload)
        latencies.append(clock() - started)
        waits.append(probe.foreign(before, probe()) if probe is not None else 0)
        if status != 200:
            raise RuntimeError(f"unexpected HTTP {status}")
    return latencies, waits


def time_stream(conn: Connection, payload: bytes, probe: WaitProbe | None = None) -> StreamTiming:
    """One streamed request, with the arrival time of every body piece (parsed only afterwards)."""
    pieces: list[tuple[int, bytes]] = []
    waited = [0]

    def on_body(data: bytes, at: int) -> None:
        if not pieces and probe is not None:
            waited[0] = probe.foreign(before, probe())
        pieces.append((at - started, data))

    conn.ensure_open()
    before = probe() if probe is not None else []
    started = time.perf_counter_ns()
    status, first = conn.exchange(payload, on_body)
    end = time.perf_counter_ns() - started
    if status != 200:
        raise RuntimeError(f"unexpected HTTP {status}")
    return StreamTiming(first - started, pieces, end, waited[0])


def content_deltas(timing: StreamTiming) -> list[int]:
    """Arrival times of the non-empty text deltas, in OpenAI Chat or Anthropic Messages SSE."""
    times: list[int] = []
    pending = b""
    for at, data in timing.pieces:
        pending += data
        *events, pending = pending.split(b"\n\n")
        for event in events:
            for line in event.split(b"\n"):
                if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                    continue
                payload = orjson.loads(line[5:])
                if _has_text(payload):
                    times.append(at)
    return times


def _has_text(payload: dict[str, Any]) -> bool:
    if payload.get("type") == "content_block_delta":
        return bool(payload["delta"].get("text"))
    choices = payload.get("choices")
    return bool(choices) and bool(choices[0].get("delta", {}).get("content"))
