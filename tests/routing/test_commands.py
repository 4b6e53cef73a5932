from __future__ import annotations

import os
from pathlib import Path

import pytest

from clearmaas.cli import main


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


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_router_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0

    code, out, _ = run(["routers", "list", "acme"], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == ["ROUTER", "STRATEGY", "MODELS", "DEFAULT", "MODEL", "ENABLED"]
    assert rows(out)["clearmaas/auto"].split() == ["clearmaas/auto", "cheapest", "*", "-", "yes", "(built-in)"]

    code, out, _ = run(
        ["routers", "create", "acme", "prod", "--models", "openai/*,anthropic/claude-haiku-*"]
        + ["--default-model", "gpt-4o-mini"],
        capsys,
    )
    assert code == 0 and "Created router clearmaas/prod: balanced" in out
    code, out, _ = run(["routers", "list", "acme"], capsys)
    assert "openai/*, anthropic/claude-haiku-*" in rows(out)["clearmaas/prod"]
    assert "gpt-4o-mini" in rows(out)["clearmaas/prod"]

    argv = ["routers", "update", "acme", "prod", "--strategy", "quality", "--disabled", "--default-model", ""]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "quality" in out and "disabled" in out and "default model none" in out
    code, out, _ = run(["routers", "list", "acme"], capsys)
    assert rows(out)["clearmaas/prod"].split()[-1] == "no"

    code, out, _ = run(["routers", "update", "acme", "prod", "--enabled", "--models", ""], capsys)
    assert code == 0 and "models every model" in out and "enabled" in out

    code, out, _ = run(["routers", "create", "acme", "spare", "--strategy", "cheapest", "--disabled"], capsys)
    assert code == 0 and "cheapest" in out and "disabled" in out

    assert run(["routers", "delete", "acme", "prod"], capsys)[0] == 0
    assert run(["routers", "delete", "acme", "auto"], capsys)[0] == 0
    code, out, _ = run(["routers", "list", "acme"], capsys)
    assert set(rows(out)) == {"clearmaas/spare"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["routers", "create", "acme", "Bad"], "invalid router name 'Bad'"),
        (["routers", "create", "acme", "clearmaas"], "reserved"),
        (["routers", "create", "acme", "auto"], "already has a router named 'auto'"),
        (["routers", "create", "acme", "r", "--default-model", "nope/never"], "default model 'nope/never'"),
        (["routers", "create", "acme", "r", "--default-model", "clearmaas/auto"], "not another router"),
        (["routers", "create", "ghost", "r"], "no workspace named 'ghost'"),
        (["routers", "update", "acme", "ghost", "--strategy", "quality"], "no router named 'ghost'"),
        (["routers", "delete", "acme", "ghost"], "no router named 'ghost'"),
        (["routers", "list", "ghost"], "no workspace named 'ghost'"),
    ],
)
def test_router_command_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workspaces", "create", "acme"], capsys)[0] == 0
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("clearmaas: error: ") and message in err


def test_bad_strategy_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["routers", "create", "acme", "r", "--strategy", "fastest"], capsys)
    assert code == 2 and "invalid choice: 'fastest'" in err
