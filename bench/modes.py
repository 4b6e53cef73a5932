"""The gateways the bench compares, side by side in one run: the same gateway with `billing: false`, with billing
on over SQLite and the in-process book and limiter (the default), and with billing on over PostgreSQL and Redis
(a scratch database created and dropped here, a claimed Redis database flushed before and after).

Every gateway runs through the counting launcher (bench/dbprobe.py), has the same workspace, credit and key,
and rate limits set high enough never to refuse, so the limiter does all its work on every request.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.dbprobe import ProbeCounts

__all__ = ["MODES", "Backends", "Gateway", "Mode", "Prepared", "backends", "prepare", "serving"]

_ADMIN_URL = os.environ.get("CLEARMAAS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_REDIS = ("127.0.0.1", 6379)
_DB_PREFIX = "clearmaas_bench_"
# Far above anything one process serves (about 4,000 req/s, ~16,400 tokens counted per request: the input
# estimate plus gpt-4o-mini's maximum output), so nothing is ever refused but every request is counted.
_LIMITS = ("--rpm", "10000000", "--tpm", "100000000000")
_CREDIT_USD = "1000000"


@dataclass(frozen=True, slots=True)
class Mode:
    """One gateway configuration under comparison."""

    key: str
    label: str
    billing: bool
    shared: bool  # PostgreSQL + Redis instead of SQLite + in-process book and limiter


MODES = (
    Mode("off", "billing off", billing=False, shared=False),
    Mode("sqlite", "billing on, SQLite + in-process", billing=True, shared=False),
    Mode("pg", "billing on, PostgreSQL + Redis", billing=True, shared=True),
)


@dataclass(slots=True)
class Backends:
    """The scratch PostgreSQL database and the Redis database of this run, and their server-side counters."""

    database_url: str
    database: str
    redis_url: str
    admin: Any  # sqlalchemy Engine on the admin database
    redis: Any  # redis.Redis on the claimed database
    redis_pid: int | None = None

    def pg_stats(self) -> dict[str, int]:
        """The scratch database's cumulative counters (pg_stat_database): transactions and rows."""
        from sqlalchemy import text

        with self.admin.connect() as connection:
            row = connection.execute(
                text("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, tup_returned "
                     "FROM pg_stat_database WHERE datname = :name"), {"name": self.database}).one()
        return dict(row._mapping)

    def pg_backend_pids(self) -> list[int]:
        """The server processes serving connections to the scratch database (their CPU is the database's)."""
        from sqlalchemy import text

        with self.admin.connect() as connection:
            pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                                      {"name": self.database}).scalars()
            return [pid for pid in pids if Path(f"/proc/{pid}").exists()]

    def redis_commandstats(self) -> dict[str, tuple[int, int]]:
        """The whole Redis server's calls and microseconds per command (shared with anything else using it)."""
        stats = self.redis.info("commandstats")
        return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()}


@contextmanager
def backends() -> Iterator[Backends]:
    """A new PostgreSQL database (dropped afterwards, with any a killed bench left behind) and a claimed,
    flushed Redis database (tests/e2e/harness.claim_redis_db). Raises OSError or the driver's error when
    either server is not reachable."""
    import redis
    from sqlalchemy import make_url
    from sqlalchemy.pool import NullPool

    from clearmaas.store.database import create_engine_for
    from tests.e2e.harness import claim_redis_db

    admin = create_engine_for(_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"{_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with ExitStack() as stack:
        stack.callback(admin.dispose)
        with admin.connect() as connection:
            _drop_orphans(connection)
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        stack.callback(drop)
        redis_url = stack.enter_context(claim_redis_db(*_REDIS))
        client = redis.Redis.from_url(redis_url)
        stack.callback(client.close)
        pid = int(client.info("server")["process_id"])
        database_url = make_url(_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        yield Backends(database_url, name, redis_url, admin, client,
                       redis_pid=pid if Path(f"/proc/{pid}").exists() else None)


def _drop_orphans(connection: Any) -> None:
    from sqlalchemy import text

    names = connection.execute(text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
                               {"prefix": _DB_PREFIX}).scalars()
    for name in list(names):
        pid = name.removeprefix(_DB_PREFIX).split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(slots=True)
class Prepared:
    """A mode's configuration, data directory and key, ready to serve (again) against any fake upstream."""

    mode: Mode
    workdir: Path
    settings: dict[str, Any]
    api_key: str
    env: dict[str, str] = field(default_factory=dict)

    def write_config(self, fake_url: str) -> Path:
        from tests.e2e.harness import gateway_config

        path = self.workdir / "clearmaas.yaml"
        path.write_text(yaml.safe_dump(gateway_config(fake_url, **self.settings)))
        return path


def prepare(mode: Mode, workdir: Path, fake_url: str, shared: Backends | None) -> Prepared:
    """Create the mode's workspace with credit, high rate limits and one key, with the CLI."""
    from tests.e2e.harness import clean_env

    workdir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {"billing": mode.billing}
    if mode.shared:
        assert shared is not None
        settings.update(database_url=shared.database_url, redis_url=shared.redis_url)
    prepared = Prepared(mode, workdir, settings, "", clean_env(CLEARMAAS_DATA_DIR=str(workdir / "data")))
    config = prepared.write_config(fake_url)
    _cli(prepared, config, "workspaces", "create", "bench")
    _cli(prepared, config, "credits", "add", "bench", _CREDIT_USD, "--reason", "benchmark")
    _cli(prepared, config, "workspaces", "limits", "bench", *_LIMITS)
    prepared.api_key = _cli(prepared, config, "keys", "create", "--workspace", "bench",
                            "--name", "bench").strip().splitlines()[-1]
    return prepared


def _cli(prepared: Prepared, config: Path, *args: str) -> str:
    from tests.e2e.harness import ROOT

    done = subprocess.run([sys.executable, "-m", "clearmaas", *args, "--config", str(config)], cwd=ROOT,
                          env=prepared.env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"clearmaas {' '.join(args)} ({prepared.mode.key}): {done.stderr}")
    return done.stdout


@dataclass(slots=True)
class Gateway:
    """One running gateway of a mode."""

    mode: Mode
    url: str
    api_key: str
    pid: int
    counts: ProbeCounts


@contextmanager
def serving(prepared: Prepared, fake_url: str, *, cpu: int | None, tag: str) -> Iterator[Gateway]:
    """Run `clearmaas serve` for `prepared` through the counting launcher, its providers at `fake_url`."""
    from tests.e2e.harness import ROOT, free_port, stop, wait_for_health

    config = prepared.write_config(fake_url)
    counts_path = prepared.workdir / f"probe-{tag}.json"
    with contextlib.suppress(FileNotFoundError):
        Path(f"{counts_path}.delay").unlink()
    port = free_port()
    command = [sys.executable, "-m", "bench.dbprobe", str(counts_path), "serve", "--port", str(port),
               "--config", str(config)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    log = (prepared.workdir / f"serve-{tag}.log").open("ab")
    process = subprocess.Popen(command, cwd=ROOT, env=prepared.env, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/health", process)
        yield Gateway(prepared.mode, url, prepared.api_key, process.pid, ProbeCounts(counts_path))
    finally:
        stop(process)
        log.close()
