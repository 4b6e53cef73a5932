from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import redis
from sqlalchemy import Engine, update

from clearmaas.accounts.keys import KeyRecord, list_keys
from clearmaas.billing.redis_book import DEFAULT_PREFIX
from clearmaas.billing.usage_log import write_batch
from clearmaas.store.database import create_engine_for
from clearmaas.store.schema import utc_now, workspaces
from tests.billing.conftest import REDIS_URL
from tests.store.postgres import scratch_postgres
from tests.billing.support import usage_item


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "clearmaas", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLEARMAAS_")}
    clean["CLEARMAAS_DATA_DIR"] = str(tmp_path / "data")
    if request.param == "postgres":
        url = request.getfixturevalue("cli_pg_url")
        clean["CLEARMAAS_DATABASE_URL"] = url
    return clean


@pytest.fixture
def cli_pg_url() -> Iterator[str]:
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One data directory with workspace acme, for the tests that only read it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARMAAS_")}
    env["CLEARMAAS_DATA_DIR"] = str(tmp_path_factory.mktemp("shared") / "data")
    assert cli("workspaces", "create", "acme", env=env).returncode == 0
    return env


def database(env: dict[str, str]) -> Engine:
    return create_engine_for(env.get("CLEARMAAS_DATABASE_URL") or f"sqlite:///{env['CLEARMAAS_DATA_DIR']}/clearmaas.db")


def served(engine: Engine, key: KeyRecord, request_id: str, cost: int, model: str = "openai/gpt-4o") -> None:
    """A request the gateway served and logged."""
    write_batch(
        engine,
        [
            usage_item(
                request_id=request_id, created_at=utc_now(), endpoint="openai_chat", status=200,
                workspace_id=key.workspace_id, key_id=key.id, requested_model=model, served_model=model,
                input_tokens=10, output_tokens=20, cost_micros=cost,
            )
        ],
    )  # fmt: skip


def test_credits_keys_show_export_and_reconcile_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    assert cli("workspaces", "create", "acme", env=env).returncode == 0
    added = cli("credits", "add", "acme", "25.50", "--reason", "invoice 7", env=env)
    assert added.returncode == 0, added.stderr
    assert "Added $25.500000 to workspace acme" in added.stdout and "Balance: $25.500000." in added.stdout
    assert "Balance: $25.500001." in cli("credits", "add", "acme", "$0.000001", env=env).stdout

    made = cli(
        "keys", "create", "--workspace", "acme", "--name", "bot", "--credit-limit", "5",
        "--expires-in", "30d", "--models", "openai/*, anthropic/claude-*", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1].startswith("sk-clearmaas-")
    engine = database(env)
    try:
        (key,) = list_keys(engine, "acme")
        assert key.credit_limit_micros == 5_000_000
        assert key.model_allowlist == ("openai/*", "anthropic/claude-*")
        assert key.expires_at is not None
        assert abs(key.expires_at - (utc_now() + timedelta(days=30))) < timedelta(minutes=1)
        served(engine, key, "req-one", 1_500_000)
        served(engine, key, "req-two", 250, model="anthropic/claude-sonnet-4.6")

        shown = cli("workspaces", "show", "acme", env=env)
        assert shown.returncode == 0, shown.stderr
        assert "balance     $23.999751" in shown.stdout
        assert "reserved    unknown" in shown.stdout
        assert "spent       $1.500250 over 2 requests" in shown.stdout
        assert f"{key.id}  bot  spent $1.500250  limit $5.000000" in shown.stdout
        assert "unlimited requests/minute" in shown.stdout

        exported = cli("usage", "export", "--workspace", "acme", "--format", "jsonl", env=env)
        assert exported.returncode == 0, exported.stderr
        lines = [orjson.loads(line) for line in exported.stdout.splitlines()]
        assert [(r["request_id"], r["cost_usd"]) for r in lines] == [("req-one", "1.500000"), ("req-two", "0.000250")]
        assert "Exported 2 usage records." in exported.stderr
        only = cli(
            "usage", "export", "--workspace", "acme", "--model", "anthropic/claude-sonnet-4.6", "--key", key.id,
            "--since", "2000-01-01", "--until", "2999-01-01", "--format", "csv", "--output", str(tmp_path / "u.csv"),
            env=env,
        )  # fmt: skip
        assert only.returncode == 0, only.stderr
        rows = list(csv.DictReader(io.StringIO((tmp_path / "u.csv").read_text())))
        assert [(r["request_id"], r["model"], r["cost_micros"]) for r in rows] == [
            ("req-two", "anthropic/claude-sonnet-4.6", "250")
        ]

        clean = cli("billing", "reconcile", env=env)
        assert clean.returncode == 0 and "The books balance" in clean.stdout
        with engine.begin() as c:
            c.execute(update(workspaces).values(balance_micros=workspaces.c.balance_micros + 1))
        tampered = cli("billing", "reconcile", env=env)
        assert tampered.returncode == 1
        assert "workspace acme: balance_micros is 23999752 but its ledger sums to 23999751" in tampered.stdout
        assert "1 differences found" in tampered.stderr
    finally:
        engine.dispose()


def test_keys_create_never_expires_and_has_no_limit_by_default(env: dict[str, str]) -> None:
    assert cli("workspaces", "create", "acme", env=env).returncode == 0
    assert cli("keys", "create", "--workspace", "acme", "--expires-in", "never", env=env).returncode == 0
    assert cli("keys", "create", "--workspace", "acme", "--expires-in", "1y", env=env).returncode == 0
    engine = database(env)
    try:
        never, year = list_keys(engine, "acme")
    finally:
        engine.dispose()
    assert (never.expires_at, never.credit_limit_micros, never.model_allowlist) == (None, None, ())
    assert year.expires_at is not None and year.expires_at - utc_now() > timedelta(days=364)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "--workspace", "acme", "--expires-in", "0h"], "between 1 hour and 1 year"),
        (["keys", "create", "--workspace", "acme", "--expires-in", "2y"], "between 1 hour and 1 year"),
        (["keys", "create", "--workspace", "acme", "--expires-in", "soon"], "write a lifetime such as"),
        (["keys", "create", "--workspace", "acme", "--credit-limit", "lots"], "not a dollar amount"),
        (["keys", "create", "--workspace", "acme", "--models", "openai/*,,x"], "write model globs"),
        (["credits", "add", "acme", "0.0000001"], "finer than a micro-dollar"),
        (["credits", "add", "acme", "-3"], "must not be negative"),
        (["credits", "add", "ghost", "5"], "no workspace named 'ghost'"),
        (["workspaces", "show", "ghost"], "no workspace named 'ghost'"),
        (["usage", "export", "--workspace", "ghost"], "no workspace named 'ghost'"),
        (["usage", "export", "--workspace", "acme", "--since", "yesterday"], "not a date"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, shared_env: dict[str, str]) -> None:
    done = cli(*argv, env=shared_env)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.redis
def test_with_redis_a_credit_is_live_at_once_and_show_knows_the_reservations(tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except (redis.ConnectionError, OSError) as exc:
        pytest.skip(f"Redis not reachable: {exc}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARMAAS_")}
    env.update(CLEARMAAS_DATA_DIR=str(tmp_path / "data"), CLEARMAAS_REDIS_URL=REDIS_URL)
    assert cli("workspaces", "create", "acme", env=env).returncode == 0
    engine = database(env)
    workspace_id = "unknown"
    try:
        with engine.connect() as c:
            workspace_id = c.execute(workspaces.select()).one().id
        balance_key = f"{DEFAULT_PREFIX}bal:{workspace_id}"
        # A gateway initialised the workspace's live balance; it is spending 400 in flight.
        client.set(balance_key, 0)
        client.set(f"{DEFAULT_PREFIX}wres:{workspace_id}", 400)
        added = cli("credits", "add", "acme", "2", env=env)
        assert added.returncode == 0, added.stderr
        assert "within about a second" not in added.stdout
        assert int(client.get(balance_key) or 0) == 2_000_000
        shown = cli("workspaces", "show", "acme", env=env)
        assert "live        $2.000000" in shown.stdout and "reserved    $0.000400" in shown.stdout
    finally:
        engine.dispose()
        for name in client.scan_iter(match=f"{DEFAULT_PREFIX}*{workspace_id}"):
            client.delete(name)
        client.close()
