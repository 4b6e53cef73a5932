"""The admin credential: the token check itself, what startup refuses, and the real server's answers to a
missing, wrong or client credential, and with the admin API disabled."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml

from clearmaas.admin.auth import MIN_TOKEN_LENGTH, AdminGuard
from clearmaas.admin.errors import AdminAuthFailed, AdminDisabled
from clearmaas.settings import ConfigError, Settings
from tests.admin.conftest import TOKEN, AdminClient, chat
from tests.e2e.harness import ROOT, FakeUpstreamProcess, GatewayProcess, clean_env, gateway, gateway_config


def _bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


def test_guard_accepts_only_the_exact_token() -> None:
    guard = AdminGuard.from_settings(Settings(admin_token=TOKEN))
    assert guard.enabled
    guard.check(_bearer(TOKEN))
    guard.check({"authorization": f"bearer   {TOKEN}  "})  # scheme case and spacing as HTTP allows
    for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "", "Basic " + TOKEN):
        headers = {"authorization": wrong} if wrong.startswith("Basic") else _bearer(wrong)
        with pytest.raises(AdminAuthFailed):
            guard.check(headers)
    with pytest.raises(AdminAuthFailed, match="Missing admin token"):
        guard.check({})


def test_guard_refuses_client_keys_before_comparing() -> None:
    guard = AdminGuard.from_settings(Settings(admin_token=TOKEN))
    with pytest.raises(AdminAuthFailed, match="Client API keys are not accepted") as caught:
        guard.check(_bearer("sk-clearmaas-" + "a" * 40))
    assert caught.value.status == 401
    assert caught.value.headers == {"www-authenticate": 'Bearer realm="clearmaas-admin"'}


def test_guard_without_token_is_disabled() -> None:
    guard = AdminGuard.from_settings(Settings())
    assert not guard.enabled
    with pytest.raises(AdminDisabled) as caught:
        guard.check(_bearer(TOKEN))
    assert (caught.value.status, caught.value.code) == (404, "admin_api_disabled")


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short", f"at least {MIN_TOKEN_LENGTH}"),
        ("sk-clearmaas-" + "x" * 40, "must not look like a client API key"),
        (" " + "x" * 40, "without surrounding spaces"),
        ("x" * 39 + "\n", "without surrounding spaces"),
    ],
)
def test_startup_refuses_a_weak_or_key_like_token(token: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        AdminGuard.from_settings(Settings(admin_token=token))


def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearmaas.settings import load_settings

    monkeypatch.setenv("CLEARMAAS_ADMIN_TOKEN", TOKEN)
    assert load_settings(None).admin_token == TOKEN


# -- the real server -------------------------------------------------------------------------------------------


def test_missing_and_wrong_tokens_are_401(admin: AdminClient) -> None:
    base = str(admin.http.base_url)
    for token, message in ((None, "Missing admin token"), ("x" * 40, "Invalid admin token")):
        with AdminClient(base, token, admin.spec) as client:
            for method, path in (("GET", "/admin/v1/workspaces"), ("POST", "/admin/v1/workspaces/e2e/credits"),
                                 ("DELETE", "/admin/v1/prices/openai/gpt-4o-mini")):  # fmt: skip
                response = client.request(method, path, json={"amount_usd": "1"})
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == 'Bearer realm="clearmaas-admin"'
                assert response.json()["error"]["code"] == "invalid_admin_token"
                assert message in response.json()["error"]["message"]
    # Nothing was credited by the refused calls.
    ledger = admin.get("/admin/v1/workspaces/e2e/ledger", params={"kind": "credit"}).json()["data"]
    assert all(entry["amount_usd"] != "1.000000" for entry in ledger)


def test_a_working_client_key_is_refused(admin: AdminClient, server: GatewayProcess) -> None:
    assert chat(server, server.api_key).status_code == 200  # the key is good on the public API
    with AdminClient(str(admin.http.base_url), server.api_key, admin.spec) as as_client:
        response = as_client.get("/admin/v1/workspaces")
    assert response.status_code == 401
    assert "Client API keys are not accepted" in response.json()["error"]["message"]


def test_the_admin_token_is_no_client_key(server: GatewayProcess) -> None:
    response = chat(server, TOKEN)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.fixture(scope="module")
def disabled(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = gateway_config(fake.url, log_level="warning")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CLEARMAAS_ADMIN_TOKEN", raising=False)
        with gateway(config, tmp_path_factory.mktemp("no-admin")) as process:
            yield process


def test_without_a_token_the_admin_api_is_disabled(disabled: GatewayProcess, spec: dict[str, object]) -> None:
    with AdminClient(disabled.url, TOKEN, spec) as client:  # type: ignore[arg-type]
        for method, path in (("GET", "/admin/v1/workspaces"), ("GET", "/admin/v1/usage"),
                             ("PUT", "/admin/v1/prices/openai/gpt-4o-mini")):  # fmt: skip
            response = client.request(method, path, json={})
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "admin_api_disabled"
            assert "admin_token" in response.json()["error"]["message"]
    # The public API and the spec are unaffected.
    assert chat(disabled, disabled.api_key).status_code == 200
    assert httpx2.get(f"{disabled.url}/openapi.json", timeout=10).json()["openapi"] == "3.1.0"


def test_serve_refuses_a_client_key_as_admin_token(tmp_path: Path) -> None:
    config = tmp_path / "clearmaas.yaml"
    config.write_text(yaml.safe_dump({"admin_token": "sk-clearmaas-" + "y" * 40}))
    done = subprocess.run(
        [sys.executable, "-m", "clearmaas", "serve", "--port", "1", "--config", str(config)],
        cwd=ROOT, env=clean_env(CLEARMAAS_DATA_DIR=str(tmp_path / "data")), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "admin_token must not look like a client API key" in done.stderr
