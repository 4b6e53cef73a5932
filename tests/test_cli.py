from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from clearmaas import __version__
from clearmaas.accounts.keys import find_by_hash, hash_key, list_keys
from clearmaas.cli import main
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from tests.store.postgres import scratch_postgres


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment whose only configuration is a temporary data directory."""
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
    code = exited.value.code
    assert isinstance(code, int)
    assert "Traceback" not in err
    return code, out, err


def test_workspace_and_key_lifecycle(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0
    assert (data_dir / "clearmaas.db").is_file()

    code, out, _ = run(["keys", "create", "--workspace", "acme", "--name", "ci bot"], capsys)
    assert code == 0
    raw = out.splitlines()[-1]
    assert raw.startswith("sk-clearmaas-") and raw == raw.strip() and len(raw) >= 13 + 32
    engine = create_engine_for(f"sqlite:///{data_dir / 'clearmaas.db'}")
    try:
        record = find_by_hash(engine, hash_key(raw))
    finally:
        engine.dispose()
    assert record is not None and record.name == "ci bot" and record.workspace_name == "acme"

    code, out, _ = run(["keys", "list", "--workspace", "acme"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if record.id in line)
    assert record.prefix in line and "ci bot" in line and line.endswith("active")
    assert raw not in out

    code, out, _ = run(["keys", "revoke", record.id], capsys)
    assert code == 0 and "Revoked" in out
    code, out, _ = run(["keys", "revoke", record.id], capsys)
    assert code == 0 and "already revoked" in out
    code, out, _ = run(["keys", "list", "--workspace", "acme"], capsys)
    assert next(line for line in out.splitlines() if record.id in line).endswith("revoked")

    code, out, _ = run(["workspaces", "list"], capsys)
    assert code == 0 and any(line.startswith("acme ") for line in out.splitlines())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "--workspace", "ghost"], "no workspace named 'ghost'"),
        (["keys", "list", "--workspace", "ghost"], "no workspace named 'ghost'"),
        (["keys", "revoke", "key_nope"], "no key with id 'key_nope'"),
        (["workspaces", "create", "two words"], "invalid workspace name"),
        (["--config", "/nonexistent/clearmaas.yaml", "workspaces", "list"], "cannot read config file"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("clearmaas: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_duplicate_workspace(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0
    code, _, err = run(["workspaces", "create", "acme"], capsys)
    assert code == 2 and "already exists" in err


def test_usage_errors_version_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "create"], capsys)[0] == 2  # --workspace is required
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"clearmaas {__version__}"
    code, _, err = run([], capsys)
    assert code == 2 and "serve" in err


def test_config_file_is_honoured_before_or_after_the_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLEARMAAS_DATA_DIR")
    elsewhere = tmp_path / "from-yaml"
    config = tmp_path / "clearmaas.yaml"
    config.write_text(f"data_dir: {elsewhere}\n")
    assert run(["--config", str(config), "workspaces", "create", "acme"], capsys)[0] == 0
    assert (elsewhere / "clearmaas.db").is_file()
    code, out, _ = run(["workspaces", "list", "--config", str(config)], capsys)
    assert code == 0 and "acme" in out


def test_an_unreachable_database_is_a_clean_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLEARMAAS_DATABASE_URL", "postgresql://gw:s3cret@127.0.0.1:1/none")
    code, _, err = run(["workspaces", "list"], capsys)
    assert code == 1
    assert "cannot open the database" in err and "s3cret" not in err


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Stands in for clearmaas.web.server so `serve` returns instead of listening."""
    started: list[Settings] = []
    module = types.ModuleType("clearmaas.web.server")
    module.run = started.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clearmaas.web.server", module)
    return started


def test_serve_bootstraps_once_and_passes_overrides(
    data_dir: Path, fake_server: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert not data_dir.exists()
    code, out, err = run(["serve", "--host", "0.0.0.0", "--port", "9123"], capsys)
    assert code == 0
    assert data_dir.is_dir()
    assert [(s.host, s.port) for s in fake_server] == [("0.0.0.0", 9123)]
    printed = [line.strip() for line in err.splitlines() if line.strip().startswith("sk-clearmaas-")]
    assert len(printed) == 1 and printed[0] not in out
    engine = create_engine_for(fake_server[0].resolved_database_url)
    try:
        record = find_by_hash(engine, hash_key(printed[0]))
        assert record is not None and record.workspace_name == "default"
        code, out, err = run(["serve"], capsys)
        assert code == 0 and "sk-clearmaas-" not in err + out
        assert len(list_keys(engine, "default")) == 1
    finally:
        engine.dispose()
    assert [(s.host, s.port) for s in fake_server][1] == ("127.0.0.1", 8080)


def test_serve_reports_a_bad_config_cleanly(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLEARMAAS_LOG_LEVEL", "loud")
    code, _, err = run(["serve"], capsys)
    assert code == 2 and "invalid configuration" in err and fake_server == []


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearmaas", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARMAAS_")}
    env.update(extra)
    return env


def _lifecycle_in_subprocesses(env: dict[str, str]) -> None:
    created = _cli("workspaces", "create", "acme", env=env)
    assert created.returncode == 0, created.stderr
    made = _cli("keys", "create", "--workspace", "acme", "--name", "robot", env=env)
    assert made.returncode == 0, made.stderr
    raw = made.stdout.splitlines()[-1]
    assert raw.startswith("sk-clearmaas-") and len(raw) >= 45
    listed = _cli("keys", "list", "--workspace", "acme", env=env)
    assert listed.returncode == 0 and raw[:20] in listed.stdout and raw not in listed.stdout
    key_id = next(word for word in listed.stdout.split() if word.startswith("key_"))
    revoked = _cli("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0 and key_id in revoked.stdout
    assert _cli("keys", "list", "--workspace", "acme", env=env).stdout.rstrip().endswith("revoked")
    refused = (
        ("keys", "revoke", "key_missing"),
        ("workspaces", "create", "acme"),
        ("keys", "list", "--workspace", "x"),
    )
    for args in refused:
        failed = _cli(*args, env=env)
        assert failed.returncode == 2
        assert failed.stderr.startswith("clearmaas: error: ") and "Traceback" not in failed.stderr
    assert _cli("--version", env=env).stdout.strip() == f"clearmaas {__version__}"


def test_python_dash_m_clearmaas_on_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "subprocess-data"
    _lifecycle_in_subprocesses(_clean_env(CLEARMAAS_DATA_DIR=str(data)))
    assert (data / "clearmaas.db").is_file()


@pytest.mark.postgres
def test_python_dash_m_clearmaas_on_postgres(tmp_path: Path) -> None:
    with scratch_postgres() as url:
        _lifecycle_in_subprocesses(_clean_env(CLEARMAAS_DATABASE_URL=url, CLEARMAAS_DATA_DIR=str(tmp_path / "unused")))
    assert not (tmp_path / "unused").exists()
