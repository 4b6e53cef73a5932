"""`clearmaas workspaces limits`: showing and setting a workspace's rate limits from the command line."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from clearmaas.cli import main
from clearmaas.store.database import create_engine_for
from clearmaas.store.schema import workspaces
from tests.store.postgres import scratch_postgres


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("CLEARMAAS_"):
            monkeypatch.delenv(name)
    directory = tmp_path / "data"
    monkeypatch.setenv("CLEARMAAS_DATA_DIR", str(directory))
    return directory


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert isinstance(exited.value.code, int)
    assert "Traceback" not in err
    return exited.value.code, out, err


def stored(url: str, name: str) -> tuple[int | None, int | None, datetime | None]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(workspaces.c.rpm_limit, workspaces.c.tpm_limit, workspaces.c.updated_at).where(
                    workspaces.c.name == name
                )
            ).one()
    finally:
        engine.dispose()
    return row[0], row[1], row[2]


def test_set_show_and_remove_limits(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{data_dir / 'clearmaas.db'}"
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0
    code, out, _ = run(["workspaces", "limits", "acme"], capsys)
    assert code == 0 and "unlimited requests/minute, unlimited tokens/minute" in out
    assert stored(url, "acme")[2] is None

    code, out, _ = run(["workspaces", "limits", "acme", "--rpm", "60"], capsys)
    assert code == 0 and "60 requests/minute, unlimited tokens/minute" in out
    rpm, tpm, first_update = stored(url, "acme")
    assert (rpm, tpm) == (60, None) and first_update is not None

    code, out, _ = run(["workspaces", "limits", "acme", "--tpm", "250000"], capsys)
    assert code == 0 and "60 requests/minute, 250000 tokens/minute" in out
    assert stored(url, "acme")[:2] == (60, 250000)

    code, out, _ = run(["workspaces", "list"], capsys)
    row = next(line for line in out.splitlines() if line.startswith("acme"))
    assert row.split()[-2:] == ["60", "250000"]

    code, out, _ = run(["workspaces", "limits", "acme", "--rpm", "none", "--tpm", "NONE"], capsys)
    assert code == 0 and "unlimited requests/minute, unlimited tokens/minute" in out
    rpm, tpm, last_update = stored(url, "acme")
    assert (rpm, tpm) == (None, None)
    assert last_update is not None and last_update >= first_update


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rpm", "0"], "between 1 and"),
        (["--rpm", "-5"], "between 1 and"),
        (["--tpm", "lots"], "expected a whole number or 'none'"),
        (["--rpm", str(2**31)], "between 1 and 2147483647"),
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0
    code, _, err = run(["workspaces", "limits", "acme", *argv], capsys)
    assert code == 2 and message in err


def test_an_unknown_workspace_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["workspaces", "limits", "nobody", "--rpm", "5"], capsys)
    assert code == 2 and "no workspace named 'nobody'" in err
    code, _, err = run(["workspaces", "limits", "nobody"], capsys)
    assert code == 2 and "no workspace named 'nobody'" in err


@pytest.mark.postgres
def test_limits_on_postgres(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with scratch_postgres() as url:
        monkeypatch.setenv("CLEARMAAS_DATABASE_URL", url)
        assert run(["workspaces", "create", "acme"], capsys)[0] == 0
        code, out, _ = run(["workspaces", "limits", "acme", "--rpm", "100", "--tpm", "5000"], capsys)
        assert code == 0 and "100 requests/minute, 5000 tokens/minute" in out
        rpm, tpm, updated = stored(url, "acme")
        assert (rpm, tpm) == (100, 5000) and updated is not None
