"""Fixtures of the admin API tests: one fake upstream and one real gateway (`python -m clearmaas serve`) with an
admin token for the session, and an admin client that holds every answer against the served OpenAPI document
(status documented for the operation, body matching its schema).

Tests that use the server are marked `e2e`, like the end-to-end suite.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest

from sqlalchemy import Engine

from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from tests.admin.schema_check import check, resolve
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, fake_upstream, gateway, gateway_config
from tests.store.postgres import scratch_postgres, sqlite_url

TOKEN = "admin-test-token-" + "0123456789abcdef" * 2
CHAT_MODEL = "openai/gpt-4o-mini"
_SERVER_FIXTURES = {"server", "admin", "spec", "fake"}
T = TypeVar("T")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents and _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_for(probe: Callable[[], T | None], *, timeout: float = 5.0, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {timeout}s")
        time.sleep(interval)


class AdminClient:
    """An httpx2 client for the admin API that checks each answer against the OpenAPI document."""

    def __init__(self, base_url: str, token: str | None, spec: dict[str, Any]) -> None:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        self.http = httpx2.Client(base_url=base_url, headers=headers, timeout=20)
        self.spec = spec
        self._routes = [
            (re.compile("^" + re.sub(r"\{(\w+)\}", lambda m: "(.+)" if m[1] == "model_id" else "([^/]+)", path) + "$"),
             path)
            for path in spec["paths"]
        ]  # fmt: skip

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        response = self.http.request(method, path, **kwargs)
        self.conforms(method, path, response)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("DELETE", path, **kwargs)

    def conforms(self, method: str, path: str, response: httpx2.Response) -> None:
        bare = path.split("?", 1)[0]
        matches = [template for pattern, template in self._routes if pattern.match(bare)]
        # The most literal template wins (`/admin/v1/usage/summary` over a parameter that could match it).
        template = min(matches, key=lambda t: t.count("{"), default=None)
        assert template is not None, f"{bare} is not in the OpenAPI document"
        operation = self.spec["paths"][template].get(method.lower())
        assert operation is not None, f"{method} {template} is not in the OpenAPI document"
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{method} {template} answered {response.status_code}, not documented"
        assert response.headers.get("cache-control") == "no-store" or response.status_code == 405
        documented = resolve(self.spec, documented)
        content = documented.get("content", {}).get("application/json")
        if content is None:
            assert not response.content, f"{method} {template} {response.status_code} should have no body"
            return
        check(self.spec, content["schema"], response.json())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database, once on SQLite and once on PostgreSQL, for the repository-level tests."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        created = create_engine_for(url)
        yield created
        created.dispose()
        return
    with scratch_postgres() as url:
        upgrade(url)
        created = create_engine_for(url)
        yield created
        created.dispose()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstreamProcess]:
    with fake_upstream() as server:
        yield server


@pytest.fixture(scope="session")
def server(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway with every provider pointed at the fake, an admin token, workspace `e2e` and its key."""
    config = gateway_config(fake.url, admin_token=TOKEN, log_level="warning")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CLEARMAAS_ADMIN_TOKEN", raising=False)
        with gateway(config, tmp_path_factory.mktemp("admin-gateway")) as process:
            yield process


@pytest.fixture(scope="session")
def spec(server: GatewayProcess) -> dict[str, Any]:
    response = httpx2.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="session")
def admin(server: GatewayProcess, spec: dict[str, Any]) -> Iterator[AdminClient]:
    with AdminClient(server.url, TOKEN, spec) as client:
        yield client


def chat(server: GatewayProcess, key: str, *, model: str = CHAT_MODEL, content: str = "hello") -> httpx2.Response:
    """One non-streaming chat completion through the gateway with the client key `key`."""
    return httpx2.post(
        f"{server.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=20,
    )


def new_workspace(admin: AdminClient, *, credit: str | None = "100") -> str:
    """A fresh workspace (with credit), for tests that must not see each other's records."""
    name = unique("ws")
    assert admin.post("/admin/v1/workspaces", json={"name": name}).status_code == 201
    if credit is not None:
        assert admin.post(f"/admin/v1/workspaces/{name}/credits", json={"amount_usd": credit}).status_code == 201
    return name


def new_key(admin: AdminClient, workspace: str, **fields: Any) -> dict[str, Any]:
    response = admin.post(f"/admin/v1/workspaces/{workspace}/keys", json=fields)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
