"""Scale-out through real processes: three `clearmaas serve` replicas sharing one PostgreSQL database and one Redis
enforce one credit, one revocation, one expiry and one rate limit between them; a gateway's first start on an
empty database (SQLite, or PostgreSQL with three replicas racing) migrates it and bootstraps exactly once; and a
second process on a database without Redis is refused, since it could not share the first one's reservations.

Each test gets its own scratch PostgreSQL database and an emptied Redis database no other test run holds.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from sqlalchemy import Engine

from clearmaas.accounts.keys import create_key as insert_key
from clearmaas.billing.money import format_usd, parse_usd
from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import current_revision, head_revision
from clearmaas.store.schema import utc_now
from tests.e2e.books import (
    BURST,
    BURST_BODY,
    COST,
    COVERED,
    CREDIT,
    auth,
    burst,
    chat_body,
    check_books,
    check_burst_replies,
    hang_up_mid_stream,
    read_books,
    spend_the_rest,
    wait_for_usage,
)
from tests.e2e.harness import (
    BOOTSTRAP_MARKER,
    FakeUpstreamProcess,
    ReplicaSet,
    claim_redis_db,
    create_key,
    gateway_config,
    replicas,
    start_serve,
    stop_all,
    wait_all,
    write_config,
)
from tests.store.postgres import scratch_postgres

REPLICAS = 3


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_postgres() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An emptied Redis database of this test's own."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(claim_redis_db())
        except (redis.RedisError, OSError) as exc:
            pytest.skip(f"Redis not reachable: {exc}")
        yield url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine_for(pg_url)
    yield engine
    engine.dispose()


def config(fake: FakeUpstreamProcess) -> dict[str, Any]:
    return gateway_config(fake.url, log_level="warning")


def post(url: str, key: str, body: bytes = BURST_BODY, path: str = "/v1/chat/completions") -> httpx2.Response:
    with httpx2.Client(base_url=url, timeout=20) as client:
        return client.post(path, content=body, headers=auth(key))


def show(cluster: ReplicaSet) -> dict[str, int]:
    """`workspaces show e2e` as {line label: micro-dollars} for its money lines."""
    done = cluster.cli("workspaces", "show", "e2e")
    assert done.returncode == 0, done.stderr
    found = re.findall(r"^\s+(balance|live|reserved|credited)\s+\$(\S+)", done.stdout, re.MULTILINE)
    return {label: parse_usd(amount, allow_zero=True) for label, amount in found}


# -- money -------------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("binding", ["key-credit-limit", "workspace-balance"])
def test_three_replicas_never_spend_past_one_credit(
    fake: FakeUpstreamProcess, pg_url: str, redis_url: str, engine: Engine, tmp_path: Path, binding: str
) -> None:
    money: dict[str, Any]
    if binding == "key-credit-limit":
        money = {"key_args": ("--credit-limit", format_usd(CREDIT))}
    else:
        money = {"credit_usd": format_usd(CREDIT)}
    with replicas(config(fake), tmp_path, n=REPLICAS, database_url=pg_url, redis_url=redis_url, **money) as rs:
        # 200 at once, round-robin: each replica alone would serve about 18 if it kept its own book.
        replies = burst(rs.urls, rs.api_key, BURST_BODY, count=BURST)
        check_burst_replies(replies)
        replies += spend_the_rest(rs.urls, rs.api_key)
        assert check_books(replies, run_cli=rs.cli, engine=engine, key_id=rs.key_id) == COVERED
        if binding == "workspace-balance":
            # A credit added with the CLI reaches the shared balance at once: every replica serves again.
            done = rs.cli("credits", "add", "e2e", format_usd(REPLICAS * COST), "--reason", "top-up")
            assert done.returncode == 0, done.stderr
            for url in rs.urls:
                assert burst([url], rs.api_key, BURST_BODY, count=1)[0].status == 200
            wait_for_usage(engine, len(replies) + REPLICAS, key_id=rs.key_id)
        # Nothing stays reserved in the shared book, and its live balance is the database's.
        books = read_books(engine)
        assert books.balance == books.credited - sum(books.charges.values()) >= 0
        assert show(rs) == {"balance": books.balance, "live": books.balance, "reserved": 0, "credited": books.credited}
        done = rs.cli("billing", "reconcile")
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.postgres
@pytest.mark.redis
def test_streams_that_end_early_on_different_replicas_release_their_reservations(
    fake: FakeUpstreamProcess, pg_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    with replicas(config(fake), tmp_path, n=2, database_url=pg_url, redis_url=redis_url) as rs:
        slow = chat_body("anthropic/claude-haiku-4.5", "[scenario:slow:300] Tell a story", max_tokens=200, stream=True)
        drop = chat_body("openai/gpt-4o-mini", "[fault:drop] Tell a story", max_tokens=200, stream=True)

        def reserved_meanwhile() -> None:
            assert show(rs)["reserved"] > 0

        hang_up_mid_stream(rs.urls[0], rs.api_key, slow, path="/v1/messages", while_open=reserved_meanwhile)
        dropped = post(rs.urls[1], rs.api_key, drop)
        assert dropped.status_code == 200 and b"upstream_error" in dropped.content
        rows = wait_for_usage(engine, 2, key_id=rs.key_id)
        assert sorted((bool(r["client_disconnected"]), r["error_code"]) for r in rows) == [
            (False, "upstream_error"),
            (True, None),
        ]
        books = read_books(engine)
        assert books.key_spent[rs.key_id] == sum(r["cost_micros"] for r in rows) > 0
        money = show(rs)
        assert money["reserved"] == 0
        assert money["live"] == money["balance"] == books.balance == money["credited"] - sum(books.charges.values())
        done = rs.cli("billing", "reconcile")
        assert done.returncode == 0, done.stdout + done.stderr


# -- keys --------------------------------------------------------------------------------------------------


def wait_refused(urls: list[str], key: str, *, timeout: float) -> dict[str, float]:
    """Seconds until each replica answers 401 for `key` (missing: never within `timeout`)."""
    started = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(urls) and time.monotonic() - started < timeout:
        for url in urls:
            if url not in refused and post(url, key).status_code == 401:
                refused[url] = time.monotonic() - started
        time.sleep(0.05)
    return refused


@pytest.mark.postgres
@pytest.mark.redis
def test_revocation_and_expiry_reach_every_replica(
    fake: FakeUpstreamProcess, pg_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    with replicas(config(fake), tmp_path, n=REPLICAS, database_url=pg_url, redis_url=redis_url) as rs:
        victim_id, victim = create_key(rs.config_path, rs.env, "--workspace", "e2e", "--name", "victim")
        # The CLI's shortest lifetime is an hour; the repository takes any moment.
        expires_at = utc_now() + timedelta(seconds=4)
        _record, short = insert_key(engine, "e2e", name="short-lived", expires_at=expires_at)
        # Every replica has both keys cached before anything changes.
        for url in rs.urls:
            for key in (victim, short, rs.api_key):
                assert post(url, key).status_code == 200

        done = rs.cli("keys", "revoke", victim_id)
        assert done.returncode == 0, done.stderr
        refused = wait_refused(rs.urls, victim, timeout=5.0)
        assert set(refused) == set(rs.urls), refused
        assert max(refused.values()) < 2.5, refused  # the key caches re-read changes every second
        answer = post(rs.urls[0], victim)
        assert answer.json()["error"]["code"] == "invalid_api_key"
        assert "revoked" in answer.json()["error"]["message"]

        remaining = (expires_at - utc_now()).total_seconds()
        assert remaining > 0, "the test was too slow to see the short-lived key before it expired"
        for url in rs.urls:
            assert post(url, short).status_code == 200
        time.sleep(remaining + 0.05)
        # Expiry needs no refresh: every replica compares the stored moment with its clock on each request.
        for url in rs.urls:
            assert post(url, short).status_code == 401
        # Nothing else was touched.
        for url in rs.urls:
            assert post(url, rs.api_key).status_code == 200
    done = rs.cli("billing", "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr


# -- rate limits -------------------------------------------------------------------------------------------

RPM = 12


def wait_for_a_fresh_minute(url: str, *, margin: float = 6.0) -> float:
    """Wait, if needed, so at least `margin` seconds of the current rate-limit window (a minute by the Redis
    server's clock) remain; returns the seconds left."""
    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
    finally:
        client.close()
    left = 60 - (seconds % 60 + micros / 1e6)
    if left < margin:
        time.sleep(left + 0.05)
        left = 60.0
    return left


@pytest.mark.postgres
@pytest.mark.redis
def test_a_workspace_rate_limit_is_shared_by_every_replica(
    fake: FakeUpstreamProcess, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    limit = ("workspaces", "limits", "e2e", "--rpm", str(RPM))
    with replicas(config(fake), tmp_path, n=REPLICAS, database_url=pg_url, redis_url=redis_url, prepare=(limit,)) as rs:
        left = wait_for_a_fresh_minute(redis_url)
        replies = burst(rs.urls, rs.api_key, BURST_BODY, count=4 * RPM)
        assert sum(r.status == 200 for r in replies) == RPM
        limited = [r for r in replies if r.status != 200]
        assert {r.status for r in limited} == {429}
        for reply in limited:
            assert reply.headers["retry-after"].isdigit()
            assert 1 <= int(reply.headers["retry-after"]) <= min(60, int(left) + 1)
            assert reply.error["type"] == "clearmaas_api_error"
            assert reply.error["code"] == "rate_limit_exceeded"
        # Every replica refuses once the shared window is full.
        for url in rs.urls:
            assert post(url, rs.api_key).status_code == 429

        # Lifting the limit reaches every replica within about a second.
        done = rs.cli("workspaces", "limits", "e2e", "--rpm", "none")
        assert done.returncode == 0, done.stderr
        started = time.monotonic()
        for url in rs.urls:
            while post(url, rs.api_key).status_code == 429:
                assert time.monotonic() - started < 5.0, "the lifted limit did not reach a replica"
                time.sleep(0.1)


# -- first start -------------------------------------------------------------------------------------------

_KEY = re.compile(r"sk-clearmaas-\S+")


def bootstrap_keys(outputs: list[str]) -> list[str]:
    return [key for output in outputs if BOOTSTRAP_MARKER in output for key in _KEY.findall(output)]


def models_status(url: str, key: str) -> int:
    with httpx2.Client(base_url=url, timeout=20) as client:
        return client.get("/v1/models", headers=auth(key)).status_code


def test_a_first_start_on_an_empty_sqlite_file_migrates_and_bootstraps_once(
    fake: FakeUpstreamProcess, tmp_path: Path
) -> None:
    config_path, env = write_config(config(fake), tmp_path)
    database = tmp_path / "data" / "clearmaas.db"
    assert not database.exists()
    first = start_serve(config_path, env, tmp_path / "first.log")
    try:
        wait_all([first])
        (key,) = bootstrap_keys([first.output()])
        assert models_status(first.url, key) == 200
    finally:
        stop_all([first.process])
    assert current_revision(f"sqlite:///{database}") == head_revision()

    again = start_serve(config_path, env, tmp_path / "again.log")
    try:
        wait_all([again])
        assert BOOTSTRAP_MARKER not in again.output()
        assert _KEY.search(again.output()) is None
        assert models_status(again.url, key) == 200
    finally:
        stop_all([again.process])


@pytest.mark.postgres
@pytest.mark.redis
def test_three_replicas_starting_together_on_an_empty_postgres_database_bootstrap_once(
    fake: FakeUpstreamProcess, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    assert current_revision(pg_url) is None
    config_path, env = write_config({**config(fake), "database_url": pg_url, "redis_url": redis_url}, tmp_path)
    servers = [start_serve(config_path, env, tmp_path / f"replica-{i}.log") for i in range(REPLICAS)]
    try:
        wait_all(servers)
        (key,) = bootstrap_keys([s.output() for s in servers])
        for server in servers:
            assert models_status(server.url, key) == 200
    finally:
        stop_all([s.process for s in servers])
    assert current_revision(pg_url) == head_revision()

    again = start_serve(config_path, env, tmp_path / "again.log")
    try:
        wait_all([again])
        assert BOOTSTRAP_MARKER not in again.output()
        assert models_status(again.url, key) == 200
    finally:
        stop_all([again.process])


# -- a second process without Redis --------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_process_on_one_database_without_redis_is_refused(
    fake: FakeUpstreamProcess, tmp_path: Path, store: str
) -> None:
    settings = config(fake)
    scratch = contextlib.ExitStack()
    if store == "postgres":
        settings["database_url"] = scratch.enter_context(scratch_postgres())
    with scratch:
        config_path, env = write_config(settings, tmp_path)
        first = start_serve(config_path, env, tmp_path / "first.log")
        try:
            wait_all([first])
            (key,) = bootstrap_keys([first.output()])
            second = start_serve(config_path, env, tmp_path / "second.log")
            assert second.process.wait(timeout=60) == 2
            said = second.output()
            assert "clearmaas: error: another gateway process" in said and "redis_url" in said, said
            assert f"pid {first.process.pid}" in said
            assert "Traceback" not in said
            assert models_status(first.url, key) == 200  # the first one serves on
        finally:
            stop_all([first.process])
        # Stopped cleanly, the first one left: the next start serves at once.
        again = start_serve(config_path, env, tmp_path / "again.log")
        try:
            wait_all([again])
            assert models_status(again.url, key) == 200
        finally:
            stop_all([again.process])
