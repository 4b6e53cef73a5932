from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine, func, select

from clearmaas.accounts.errors import InvalidName, WorkspaceExists, WorkspaceNotFound
from clearmaas.accounts.keys import find_by_hash, hash_key, list_keys
from clearmaas.accounts.workspaces import (
    BOOTSTRAP_WORKSPACE,
    create_workspace,
    ensure_bootstrap,
    get_workspace,
    list_workspaces,
)
from clearmaas.store.schema import api_keys, workspaces


def test_create_get_and_list(engine: Engine) -> None:
    created = create_workspace(engine, "zeta", rpm_limit=60, tpm_limit=100_000)
    create_workspace(engine, "alpha")
    assert created.id.startswith("ws_")
    assert get_workspace(engine, "zeta") == created
    assert [w.name for w in list_workspaces(engine)] == ["alpha", "zeta"]
    assert get_workspace(engine, "alpha").rpm_limit is None


def test_duplicate_and_unknown_names(engine: Engine) -> None:
    create_workspace(engine, "acme")
    with pytest.raises(WorkspaceExists, match="'acme'"):
        create_workspace(engine, "acme")
    with pytest.raises(WorkspaceNotFound, match="'ghost'"):
        get_workspace(engine, "ghost")
    assert len(list_workspaces(engine)) == 1


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a" * 65, "semi;colon", "ünïcode"])
def test_invalid_names_are_refused(engine: Engine, name: str) -> None:
    with pytest.raises(InvalidName):
        create_workspace(engine, name)
    assert list_workspaces(engine) == []


def test_bootstrap_only_on_an_empty_database(engine: Engine) -> None:
    raw = ensure_bootstrap(engine)
    assert raw is not None and raw.startswith("sk-clearmaas-")
    record = find_by_hash(engine, hash_key(raw))
    assert record is not None and record.workspace_name == BOOTSTRAP_WORKSPACE
    assert ensure_bootstrap(engine) is None
    assert ensure_bootstrap(engine) is None
    assert len(list_keys(engine, BOOTSTRAP_WORKSPACE)) == 1


def test_no_bootstrap_when_a_workspace_exists(engine: Engine) -> None:
    create_workspace(engine, "acme")
    assert ensure_bootstrap(engine) is None
    assert [w.name for w in list_workspaces(engine)] == ["acme"]


def test_concurrent_bootstraps_make_one_workspace_and_one_key(engine: Engine, db_url: str) -> None:
    script = (
        "import sys; from clearmaas.store.database import create_engine_for; "
        "from clearmaas.accounts.workspaces import ensure_bootstrap; "
        "print('ready', flush=True); sys.stdin.readline(); "
        "print(ensure_bootstrap(create_engine_for(sys.argv[1])))"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for run in runs:
            assert run.stdout is not None and run.stdout.readline() == "ready\n"
        outputs = [run.communicate("go\n", timeout=60) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [err for _, err in outputs] == [""] * 4
    printed = [out.strip() for out, _ in outputs]
    assert sorted(p.startswith("sk-clearmaas-") for p in printed) == [False, False, False, True]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(workspaces)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(api_keys)).scalar() == 1
