from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import Engine

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.export import EXPORT_FIELDS, ExportFilter, export_usage, parse_moment
from clearmaas.billing.usage_log import UsageItem, write_batch
from tests.billing.support import funded_key, usage_item

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def record(key: KeyRecord, request_id: str, *, hours: int, model: str, cost: int, **fields: object) -> UsageItem:
    values: dict[str, object] = {
        "request_id": request_id,
        "created_at": DAY + timedelta(hours=hours),
        "endpoint": "openai_chat",
        "status": 200,
        "workspace_id": key.workspace_id,
        "key_id": key.id,
        "requested_model": model,
        "served_model": model,
        "input_tokens": 1_000,
        "cache_read_tokens": 200,
        "cache_write_tokens": 30,
        "output_tokens": 400,
        "reasoning_tokens": 100,
        "cost_micros": cost,
    }
    values.update(fields)
    return usage_item(**values)  # type: ignore[arg-type]


@pytest.fixture
def keys(engine: Engine) -> tuple[KeyRecord, KeyRecord, KeyRecord]:
    first = funded_key(engine, balance_micros=100_000_000)
    second = funded_key(engine)
    stranger = funded_key(engine, workspace="other", balance_micros=100_000_000)
    write_batch(
        engine,
        [
            record(first, "r1", hours=1, model="openai/gpt-4o", cost=1),
            record(
                first,
                "r2",
                hours=2,
                model="anthropic/claude-sonnet-4.6",
                cost=1_234_567,
                server_tool_calls={"web_search": 2},
            ),
            record(second, "r3", hours=3, model="openai/gpt-4o", cost=100, stream=True, client_disconnected=True),
            record(
                first, "r4", hours=4, model="openai/gpt-4o", cost=0, status=403, error_code="insufficient_user_quota"
            ),
            record(stranger, "r5", hours=2, model="openai/gpt-4o", cost=5),
        ],
    )
    return first, second, stranger


def jsonl(engine: Engine, where: ExportFilter) -> list[dict[str, object]]:
    out = io.StringIO()
    count = export_usage(engine, out, format="jsonl", where=where)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(lines)
    return lines


def test_jsonl_has_every_field_and_exact_costs(engine: Engine, keys: tuple[KeyRecord, ...]) -> None:
    rows = jsonl(engine, ExportFilter(workspace="acme"))
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3", "r4"]
    assert all(tuple(r) == EXPORT_FIELDS for r in rows)
    second = rows[1]
    assert second["model"] == "anthropic/claude-sonnet-4.6" and second["workspace"] == "acme"
    assert (second["cost_micros"], second["cost_usd"]) == (1_234_567, "1.234567")
    assert Decimal(str(second["cost_usd"])) * 1_000_000 == second["cost_micros"]
    assert second["server_tool_calls"] == {"web_search": 2}
    assert (second["input_tokens"], second["cache_read_tokens"], second["cache_write_tokens"]) == (1_000, 200, 30)
    assert (second["output_tokens"], second["reasoning_tokens"]) == (400, 100)
    assert second["created_at"] == "2026-11-20T02:00:00Z"
    assert rows[0]["cost_usd"] == "0.000001"
    assert (rows[2]["stream"], rows[2]["client_disconnected"]) == (True, True)
    assert (rows[3]["status"], rows[3]["error_code"]) == (403, "insufficient_user_quota")


def test_filters_narrow_the_export(engine: Engine, keys: tuple[KeyRecord, ...]) -> None:
    _first, second, _stranger = keys

    def ids(where: ExportFilter) -> list[object]:
        return [r["request_id"] for r in jsonl(engine, where)]

    assert ids(ExportFilter(workspace="other")) == ["r5"]
    assert ids(ExportFilter(workspace="acme", key_id=second.id)) == ["r3"]
    assert ids(ExportFilter(workspace="acme", model="openai/gpt-4o")) == ["r1", "r3", "r4"]
    assert ids(ExportFilter(workspace="acme", since=DAY + timedelta(hours=2), until=DAY + timedelta(hours=4))) == [
        "r2",
        "r3",
    ]
    assert ids(ExportFilter(workspace="acme", since=parse_moment("2026-11-21"))) == []
    assert ids(ExportFilter()) == ["r1", "r2", "r5", "r3", "r4"]
    with pytest.raises(WorkspaceNotFound):
        jsonl(engine, ExportFilter(workspace="ghost"))


def test_csv_has_a_header_and_the_same_values(engine: Engine, keys: tuple[KeyRecord, ...]) -> None:
    out = io.StringIO()
    assert (
        export_usage(
            engine, out, format="csv", where=ExportFilter(workspace="acme", model="anthropic/claude-sonnet-4.6")
        )
        == 1
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(EXPORT_FIELDS)
    assert (rows[0]["request_id"], rows[0]["cost_usd"], rows[0]["cost_micros"]) == ("r2", "1.234567", "1234567")
    assert orjson.loads(rows[0]["server_tool_calls"]) == {"web_search": 2}


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:30:00Z", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),
        ("2026-11-01T14:30:00+02:00", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, moment: datetime) -> None:
    assert parse_moment(text) == moment


def test_parse_moment_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_moment("last tuesday")
