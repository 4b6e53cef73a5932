"""Session fixtures of the end-to-end suite: one fake upstream and one real gateway (`python -m clearmaas serve`)
for the whole session, the official SDK clients pointed at it, and a handle on what the upstream received.

Every test under tests/e2e is marked `e2e`; deselect them with `-m "not e2e"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

from tests.e2e.cases import MAX_BODY_BYTES
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess, fake_upstream, gateway, gateway_config

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstreamProcess]:
    """The fake upstream subprocess; `fake.requests()` lists what it received since the test began."""
    with fake_upstream() as server:
        yield server


@pytest.fixture(scope="session")
def gw(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway subprocess, every provider pointed at the fake."""
    config = gateway_config(fake.url, max_body_bytes=MAX_BODY_BYTES, log_level="warning")
    with gateway(config, tmp_path_factory.mktemp("gateway")) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_upstream_log(request: pytest.FixtureRequest) -> None:
    # Only tests that use the servers pay for the round-trip.
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").clear()


@pytest.fixture(scope="session")
def oai(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.api_key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def ant(gw: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=gw.api_key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def http(gw: GatewayProcess) -> Iterator[httpx2.Client]:
    """A raw HTTP client for what the SDKs will not send (bad JSON, wrong headers, unknown routes)."""
    with httpx2.Client(base_url=gw.url, timeout=20) as client:
        yield client
