"""Proving "no database round-trip per request": the real gateway, started through a launcher that counts
every SQL statement SQLite executes in the process, is idled and then loaded for windows of equal length;
per-request database work would make the loaded window's count grow with the requests served.

Launcher: `python -m bench.dbprobe COUNTS.json serve --port N --config FILE` wraps `sqlite3.connect` so every
connection (SQLAlchemy's included) reports each statement it runs through `set_trace_callback`, then runs the
ordinary `clearmaas` command line; a thread rewrites COUNTS.json every 50 ms.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import yaml

__all__ = ["DbCounts", "probed_gateway", "main"]

_LITERAL = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b")


def _normalise(statement: str) -> str:
    return _LITERAL.sub("?", " ".join(statement.split()))[:90]


def _install(counts_path: Path) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = sqlite3.connect

    def trace(statement: str) -> None:
        with lock:
            counts[_normalise(statement)] += 1

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = original(*args, **kwargs)
        connection.set_trace_callback(trace)
        with lock:
            counts["<connect>"] += 1
        return connection

    # SQLAlchemy's pysqlite dialect calls `sqlite3.dbapi2.connect`; `sqlite3.connect` is the same function.
    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]

    def write_forever() -> None:
        tmp = counts_path.with_suffix(".tmp")
        while True:
            with lock:
                snapshot = dict(counts)
            tmp.write_bytes(orjson.dumps({"at": time.monotonic(), "statements": snapshot}))
            tmp.replace(counts_path)
            time.sleep(0.05)

    threading.Thread(target=write_forever, name="bench-db-counter", daemon=True).start()


class DbCounts:
    """Reads the launcher's statement counts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Counter[str]:
        time.sleep(0.15)  # let the writer thread catch up with everything executed so far
        return Counter(orjson.loads(self.path.read_bytes())["statements"])


@contextmanager
def probed_gateway(
    config: dict[str, Any], workdir: Path, *, cpu: int | None = None
) -> Iterator[tuple[str, str, int, DbCounts]]:
    """Like `tests.e2e.harness.gateway`, through the counting launcher: yields (url, api key, pid, counts)."""
    from tests.e2e.harness import ROOT, clean_env, free_port, stop, wait_for_health

    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "clearmaas.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = clean_env(CLEARMAAS_DATA_DIR=str(workdir / "data"))

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "clearmaas", *args, "--config", str(config_path)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout

    cli("workspaces", "create", "bench")
    cli("credits", "add", "bench", "1000000", "--reason", "benchmark")
    api_key = cli("keys", "create", "--workspace", "bench", "--name", "bench").strip().splitlines()[-1]
    counts_path = workdir / "db-statements.json"
    port = free_port()
    command = [sys.executable, "-m", "bench.dbprobe", str(counts_path), "serve", "--port", str(port),
               "--config", str(config_path)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/health", process)
        yield url, api_key, process.pid, DbCounts(counts_path)
    finally:
        stop(process)


def main(argv: list[str]) -> None:
    _install(Path(argv[0]))
    from clearmaas.cli import main as clearmaas_main

    clearmaas_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
