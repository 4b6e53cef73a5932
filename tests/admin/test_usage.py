"""Usage through the admin API of the real server: records filtered by workspace, key, model and time, paged,
and the summary by model and by day, whose sums agree with the records."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.admin.conftest import AdminClient, chat, new_key, new_workspace, wait_for
from tests.e2e.harness import GatewayProcess

MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.6")
_BUCKETS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def _micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int(fraction)


@pytest.fixture(scope="module")
def traffic(admin: AdminClient, server: GatewayProcess) -> dict[str, Any]:
    """A workspace with two keys: key a 2 x mini + 1 x sonnet, key b 1 x mini + 1 refused (allowlist). The
    first calls may be refused for want of credit until the gateway re-reads the new balance (a second at
    most); those are records too, so the tests count from the records rather than assume a number."""
    ws = new_workspace(admin)
    a, b = new_key(admin, ws), new_key(admin, ws, models=["openai/*"])
    wait_for(lambda: chat(server, a["api_key"]).status_code == 200)
    assert chat(server, a["api_key"]).status_code == 200
    assert chat(server, a["api_key"], model=MODELS[1]).status_code == 200
    assert chat(server, b["api_key"]).status_code == 200
    assert chat(server, b["api_key"], model=MODELS[1]).status_code == 403  # not in b's allowlist

    def written() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = admin.get("/admin/v1/usage", params={"workspace": ws}).json()["data"]
        # The usage log writes in order: once the last call's record is in, every earlier one is.
        return found if any(r["error_code"] == "model_not_allowed" for r in found) else None

    records = wait_for(written)
    assert sum(r["status"] == 200 for r in records) == 4
    assert {r["error_code"] for r in records if r["status"] != 200} <= {"model_not_allowed", "insufficient_user_quota"}
    return {"workspace": ws, "a": a, "b": b, "records": records}


def test_records_newest_first_with_exact_costs(traffic: dict[str, Any]) -> None:
    records = traffic["records"]
    stamps = [r["created_at"] for r in records]
    assert stamps == sorted(stamps, reverse=True)
    assert {r["workspace"] for r in records} == {traffic["workspace"]}
    refused = [r for r in records if r["status"] != 200]
    assert [r["error_code"] for r in refused].count("model_not_allowed") == 1
    assert all(r["cost_usd"] == "0.000000" for r in refused)
    assert all(_micros(r["cost_usd"]) > 0 and r["input_tokens"] > 0 for r in records if r["status"] == 200)


def test_filters(admin: AdminClient, traffic: dict[str, Any]) -> None:
    ws, a, b = traffic["workspace"], traffic["a"], traffic["b"]

    def ids(**params: str) -> set[str]:
        return {r["request_id"] for r in admin.get("/admin/v1/usage", params=params).json()["data"]}

    records = traffic["records"]
    by_key = {r["request_id"] for r in records if r["key_id"] == a["id"]}
    assert sum(r["status"] == 200 for r in records if r["key_id"] == a["id"]) == 3
    assert ids(key=a["id"]) == by_key
    assert ids(key=b["id"]) == {r["request_id"] for r in records if r["key_id"] == b["id"]}
    assert len(ids(key=b["id"])) == 2
    sonnet = ids(workspace=ws, model=MODELS[1])  # the served model, or the requested one for the refusal
    assert sonnet == {r["request_id"] for r in records if MODELS[1] in (r["requested_model"], r["served_model"])}
    assert len(sonnet) == 2
    assert ids(workspace=ws, key=b["id"], model=MODELS[0]) == {
        r["request_id"] for r in traffic["records"] if r["key_id"] == b["id"] and r["status"] == 200}  # fmt: skip
    newest = datetime.fromisoformat(traffic["records"][0]["created_at"].replace("Z", "+00:00"))
    assert ids(workspace=ws, since=(newest + timedelta(seconds=1)).isoformat()) == set()
    everything = {r["request_id"] for r in records}
    assert ids(workspace=ws, until=(newest + timedelta(seconds=1)).isoformat()) == everything
    assert ids(workspace=ws, until=records[-1]["created_at"]) == set()  # until is exclusive
    assert ids(workspace=ws, since=records[-1]["created_at"]) == everything  # since is inclusive


def test_pagination_visits_every_record_once(admin: AdminClient, traffic: dict[str, Any]) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"workspace": traffic["workspace"], "limit": "2"}
    pages = 0
    while True:
        page = admin.get("/admin/v1/usage", params=params).json()
        pages += 1
        seen.extend(r["request_id"] for r in page["data"])
        if not page["has_more"]:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == (len(traffic["records"]) + 1) // 2
    assert seen == [r["request_id"] for r in traffic["records"]]


def test_summary_agrees_with_the_records(admin: AdminClient, traffic: dict[str, Any]) -> None:
    records = traffic["records"]
    summary = admin.get("/admin/v1/usage/summary", params={"workspace": traffic["workspace"]}).json()
    totals = summary["totals"]
    assert totals["requests"] == len(records) and totals["errors"] == len(records) - 4
    for bucket in _BUCKETS:
        assert totals[bucket] == sum(r[bucket] for r in records)
    assert _micros(totals["cost_usd"]) == sum(_micros(r["cost_usd"]) for r in records)

    per_model = {row["model"]: row for row in summary["by_model"]}
    assert Counter({m: row["requests"] for m, row in per_model.items()}) == Counter(r["model"] for r in records)
    assert sum(_micros(row["cost_usd"]) for row in summary["by_model"]) == _micros(totals["cost_usd"])
    today = datetime.now(UTC).date().isoformat()
    days = {row["date"]: row for row in summary["by_day"]}
    assert set(days) <= {today, (datetime.now(UTC).date() - timedelta(days=1)).isoformat()}
    assert sum(row["requests"] for row in summary["by_day"]) == len(records)

    only_b = admin.get("/admin/v1/usage/summary", params={"key": traffic["b"]["id"]}).json()
    assert only_b["totals"]["requests"] == 2 and only_b["totals"]["errors"] == 1
    empty = admin.get("/admin/v1/usage/summary", params={"workspace": traffic["workspace"], "since": "2999-01-01"})
    assert empty.json() == {"totals": {**{b: 0 for b in _BUCKETS}, "requests": 0, "errors": 0,
                                       "cost_usd": "0.000000"}, "by_model": [], "by_day": []}  # fmt: skip


def test_refusals(admin: AdminClient) -> None:
    cases = [
        ("/admin/v1/usage?workspace=nope-nope", 404),
        ("/admin/v1/usage/summary?workspace=nope-nope", 404),
        ("/admin/v1/usage?since=yesterday", 400),
        ("/admin/v1/usage/summary?until=13/01/2026", 400),
        ("/admin/v1/usage?limit=0", 400),
        ("/admin/v1/usage?limit=abc", 400),
        ("/admin/v1/usage?cursor=not-a-cursor", 400),
        ("/admin/v1/usage?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwieCJd", 400),  # a naive time inside
    ]
    for path, status in cases:
        response = admin.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.json()["error"]["code"] in ("bad_request_body", "workspace_not_found")
