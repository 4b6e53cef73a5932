"""Prices through the admin API: listing effective prices, setting and removing overrides, and the override
reaching billing, at once in the gateway that took the change and within about 2 seconds in another gateway
process on the same database (no restart)."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import yaml

from tests.admin.conftest import AdminClient, chat, new_key, wait_for
from tests.e2e.harness import ROOT, GatewayProcess, claim_redis_db, free_port, stop, wait_for_health

MODEL = "deepseek/deepseek-chat"
PRICE = f"/admin/v1/prices/{MODEL}"


def _micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int(fraction.ljust(6, "0"))


def _expected_cost(record: dict[str, Any], prices: dict[str, str]) -> int:
    """pricing.py's rule: every bucket at its price per million tokens, one ceiling division."""
    total = (
        record["input_tokens"] * _micros(prices["input"])
        + record["cache_read_tokens"] * _micros(prices["cached_input"])
        + record["cache_write_tokens"] * _micros(prices["cache_write"])
        + record["output_tokens"] * _micros(prices["output"])
    )
    return -(-total // 1_000_000)


@pytest.fixture(scope="module")
def replica(server: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second `clearmaas serve` process on the same database. It shares state through Redis, as a second
    process must: one without `redis_url` is refused beside `server` (store/presence.py)."""
    with contextlib.ExitStack() as stack:
        try:
            redis_url = stack.enter_context(claim_redis_db())
        except (redis.RedisError, OSError) as exc:
            pytest.skip(f"Redis not reachable: {exc}")
        config = yaml.safe_load(server.config_path.read_text())
        config_path = tmp_path_factory.mktemp("replica") / "clearmaas.yaml"
        config_path.write_text(yaml.safe_dump({**config, "redis_url": redis_url}))
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "clearmaas", "serve", "--port", str(port), "--config", str(config_path)],
            cwd=ROOT, env=server.env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(f"{url}/health", process)
            yield url
        finally:
            stop(process)


@pytest.fixture
def clean_override(admin: AdminClient) -> Iterator[None]:
    yield
    admin.delete(PRICE)  # 204 or 404: either way no override outlives the test


def _billed(admin: AdminClient, server: GatewayProcess, key: dict[str, Any]) -> dict[str, Any]:
    """Make one call with `key` on `server` and return its usage record."""
    before = len(admin.get("/admin/v1/usage", params={"key": key["id"], "limit": "1000"}).json()["data"])
    response = chat(server, key["api_key"], model=MODEL)
    assert response.status_code == 200, response.text

    def newest() -> dict[str, Any] | None:
        records = admin.get("/admin/v1/usage", params={"key": key["id"], "limit": "1000"}).json()["data"]
        return records[0] if len(records) > before else None

    return wait_for(newest)


def test_list_and_show(admin: AdminClient) -> None:
    listed = admin.get("/admin/v1/prices").json()["data"]
    assert len(listed) > 30
    mini = next(p for p in listed if p["model"] == "openai/gpt-4o-mini")
    # The catalogue's published price, exactly ($0.15 / $0.60 per million tokens).
    assert mini["prices"]["input"] == "0.150000" and mini["prices"]["output"] == "0.600000"
    assert mini["catalogue_prices"] == mini["prices"] and mini["override"] is None
    only = admin.get("/admin/v1/prices", params={"provider": "anthropic"}).json()["data"]
    assert only and {p["provider"] for p in only} == {"anthropic"}
    assert admin.get("/admin/v1/prices/OpenAI/GPT-4o-mini").json()["model"] == "openai/gpt-4o-mini"


@pytest.mark.redis
def test_override_bills_at_once_here_and_soon_in_a_replica(
    admin: AdminClient, server: GatewayProcess, replica: str, clean_override: None
) -> None:
    catalogue = admin.get(PRICE).json()["catalogue_prices"]
    key = new_key(admin, "e2e")
    replica_gw = dataclasses.replace(server, url=replica)
    first = _billed(admin, replica_gw, key)
    assert _micros(first["cost_usd"]) == _expected_cost(first, catalogue) > 0

    override = {"input": "7", "cached_input": "3", "cache_write": "5", "output": "11"}
    put = admin.put(PRICE, json=override)
    assert put.status_code == 200
    changed_at = time.monotonic()
    body = put.json()
    assert body["prices"] == {k: f"{v}.000000" for k, v in override.items()}
    assert body["catalogue_prices"] == catalogue and body["override"]["updated_at"]
    assert admin.get(PRICE).json()["prices"] == body["prices"]

    here = _billed(admin, server, key)  # the process that took the change applies it before answering
    assert _micros(here["cost_usd"]) == _expected_cost(here, body["prices"])
    assert _expected_cost(here, body["prices"]) != _expected_cost(here, catalogue)

    # The replica refreshes every 2 seconds: by 3 seconds after the change it must bill the new price.
    time.sleep(max(0.0, 3.0 - (time.monotonic() - changed_at)))
    there = _billed(admin, replica_gw, key)
    assert _micros(there["cost_usd"]) == _expected_cost(there, body["prices"])

    assert admin.delete(PRICE).status_code == 204
    removed_at = time.monotonic()
    shown = admin.get(PRICE).json()
    assert shown["override"] is None and shown["prices"] == catalogue
    time.sleep(max(0.0, 3.0 - (time.monotonic() - removed_at)))
    back = _billed(admin, replica_gw, key)
    assert _micros(back["cost_usd"]) == _expected_cost(back, catalogue)


def test_omitted_cache_prices_keep_the_catalogues(admin: AdminClient, clean_override: None) -> None:
    catalogue = admin.get(PRICE).json()["catalogue_prices"]
    body = admin.put(PRICE, json={"input": "0.5", "output": 2}).json()
    assert body["prices"] == {
        "input": "0.500000", "output": "2.000000",
        "cached_input": catalogue["cached_input"], "cache_write": catalogue["cache_write"],
    }  # fmt: skip


def test_refusals(admin: AdminClient) -> None:
    cases = [
        ("PUT", "/admin/v1/prices/openai/no-such-model", {"input": "1", "output": "1"}, 404, "model_not_found"),
        ("GET", "/admin/v1/prices/openai/no-such-model", None, 404, "model_not_found"),
        ("PUT", PRICE, {"input": "1"}, 400, "bad_request_body"),
        ("PUT", PRICE, {"input": 0.1, "output": "1"}, 400, "bad_request_body"),
        ("PUT", PRICE, {"input": "-1", "output": "1"}, 400, "bad_request_body"),
        ("PUT", PRICE, {"input": "0.0000001", "output": "1"}, 400, "bad_request_body"),
        ("PUT", PRICE, {"input": "1", "output": "1", "reasoning": "1"}, 400, "bad_request_body"),
        ("DELETE", PRICE, None, 404, "override_not_found"),
        ("DELETE", "/admin/v1/prices/openai/no-such-model", None, 404, "model_not_found"),
    ]
    for method, path, body, status, code in cases:
        response = admin.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, body)
    assert admin.get(PRICE).json()["override"] is None
