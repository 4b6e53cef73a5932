from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect

from clearmaas.store import migrate
from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import current_revision, head_revision, upgrade
from clearmaas.store.schema import metadata

_WRITES = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs while the test is active."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def _tables(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_reaches_head_with_the_schema_of_schema_py(db_url: str) -> None:
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision() == "0003"
    assert {"workspaces", "api_keys", "alembic_version"} <= _tables(db_url)
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            indexes = {ix["name"]: ix for ix in inspect(connection).get_indexes("api_keys")}
            assert indexes["ix_api_keys_key_hash"]["unique"]
            assert {"ix_api_keys_workspace_id", "ix_api_keys_updated_at"} <= set(indexes)
    finally:
        engine.dispose()


def test_rerunning_upgrade_writes_nothing(db_url: str, statements: list[str]) -> None:
    upgrade(db_url)
    assert any(_WRITES.match(s) for s in statements)  # the listener does see the first run's DDL
    statements.clear()
    upgrade(db_url)
    upgrade(db_url)
    assert statements, "the second run should at least read the version table"
    assert [s for s in statements if _WRITES.match(s)] == []
    assert current_revision(db_url) == head_revision()


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(db_url: str) -> None:
    # Separate processes, as in real life (replicas, the CLI next to a starting gateway); Alembic keeps
    # its `context` in module globals, so threads would not model this. Each process imports first and
    # then waits for a go line on stdin, so the upgrades really overlap.
    script = (
        "import sys; from clearmaas.store.migrate import upgrade; print('ready', flush=True); "
        "sys.stdin.readline(); upgrade(sys.argv[1])"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        for run in runs:
            assert run.stdout is not None and run.stdout.readline() == "ready\n"
        for run in runs:
            assert run.stdin is not None
            run.stdin.write("go\n")
            run.stdin.flush()
        results = [(run.wait(timeout=60), run.communicate()[1]) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert results == [(0, "")] * len(runs)
    assert current_revision(db_url) == head_revision()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    upgrade(db_url)
    engine = migrate._migration_engine(db_url)
    try:
        with engine.begin() as connection:
            command.downgrade(migrate.alembic_config(connection=connection), "base")
    finally:
        engine.dispose()
    assert not {"workspaces", "api_keys"} & _tables(db_url)
    upgrade(db_url)
    assert {"workspaces", "api_keys"} <= _tables(db_url)


def test_runtime_needs_no_template_and_no_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, shipped, ignore=shutil.ignore_patterns("script.py.mako", "__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", shipped)
    url = f"sqlite:///{tmp_path / 'db' / 'c.db'}"
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_package_data_ships_every_runtime_migration_file() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["clearmaas.store"]
    store_dir = migrate.MIGRATIONS_DIR.parent
    needed = [
        p.relative_to(store_dir).as_posix()
        for p in migrate.MIGRATIONS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "script.py.mako"
    ]
    assert "migrations/env.py" in needed and "migrations/versions/0001_initial.py" in needed
    assert [f for f in needed if not any(fnmatch(f, pattern) for pattern in patterns)] == []
