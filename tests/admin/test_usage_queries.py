"""The usage queries behind the admin API on SQLite and PostgreSQL: keyset pages that never skip or repeat a
record (ties on the timestamp included), and the per-day summary bucketing by the UTC calendar day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from clearmaas.accounts.workspaces import create_workspace
from clearmaas.admin.usage import UsageFilter, decode_cursor, usage_page, usage_summary
from clearmaas.billing.usage_log import UsageItem, write_batch
from clearmaas.errors import InvalidRequest
from tests.billing.support import usage_item

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _item(request_id: str, when: datetime, workspace_id: str, *, model: str = "openai/gpt-4o-mini",
          status: int = 200, cost: int = 1000, key: str = "key_a") -> UsageItem:  # fmt: skip
    return usage_item(
        request_id=request_id, created_at=when, endpoint="openai_chat", status=status, workspace_id=workspace_id,
        key_id=key, requested_model=model, served_model=model if status == 200 else None, input_tokens=10,
        cache_read_tokens=2, output_tokens=7, reasoning_tokens=3, cost_micros=cost if status == 200 else 0,
    )  # fmt: skip


@pytest.fixture
def workspace(engine: Engine) -> str:
    ws = create_workspace(engine, "usage").id
    items = [
        # Three records at the very same instant: only the request id orders them.
        *(_item(f"req-tie-{i}", NOON, ws) for i in range(3)),
        _item("req-late-night", datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC), ws, model="anthropic/x"),
        _item("req-next-day", datetime(2026, 3, 2, 0, 0, tzinfo=UTC), ws, status=503, key="key_b"),
        _item("req-earlier", NOON - timedelta(days=1), ws, cost=5),
    ]
    assert write_batch(engine, items) == len(items)
    return "usage"


def test_pages_cover_everything_once(engine: Engine, workspace: str) -> None:
    where = UsageFilter(workspace=workspace)
    for size in (1, 2, 4, 6, 7):
        seen: list[str] = []
        after = None
        while True:
            page = usage_page(engine, where, limit=size, after=after)
            seen.extend(r["request_id"] for r in page["data"])
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            after = decode_cursor(str(page["next_cursor"]))
        assert seen == ["req-next-day", "req-late-night", "req-tie-2", "req-tie-1", "req-tie-0", "req-earlier"]


def test_filters(engine: Engine, workspace: str) -> None:
    def ids(where: UsageFilter) -> list[str]:
        return [r["request_id"] for r in usage_page(engine, where, limit=100, after=None)["data"]]

    assert ids(UsageFilter(workspace=workspace, key_id="key_b")) == ["req-next-day"]
    assert ids(UsageFilter(workspace=workspace, model="anthropic/x")) == ["req-late-night"]
    tied = UsageFilter(workspace=workspace, since=NOON, until=NOON + timedelta(microseconds=1))
    assert ids(tied) == ["req-tie-2", "req-tie-1", "req-tie-0"]


def test_summary_by_utc_day_and_model(engine: Engine, workspace: str) -> None:
    summary = usage_summary(engine, UsageFilter(workspace=workspace))
    assert summary["totals"] == {
        "requests": 6, "errors": 1, "input_tokens": 60, "cache_read_tokens": 12, "cache_write_tokens": 0,
        "output_tokens": 42, "reasoning_tokens": 18, "cost_usd": "0.004005",
    }  # fmt: skip
    days = {row["date"]: (row["requests"], row["cost_usd"]) for row in summary["by_day"]}
    assert days == {"2026-02-28": (1, "0.000005"), "2026-03-01": (4, "0.004000"), "2026-03-02": (1, "0.000000")}
    models = {row["model"]: (row["requests"], row["errors"]) for row in summary["by_model"]}
    assert models == {"openai/gpt-4o-mini": (5, 1), "anthropic/x": (1, 0)}


def test_bad_cursors_are_refused() -> None:
    for text in ("", "!!!", "bm90IGpzb24", "WzFd", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwieCJd"):
        with pytest.raises(InvalidRequest):
            decode_cursor(text)
