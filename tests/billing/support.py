"""Shared pieces of the billing tests: a priced model, a funded workspace with a key, and call records."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from clearmaas.accounts.errors import WorkspaceExists
from clearmaas.accounts.keys import KeyRecord, create_key
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.billing.ledger import add_credit
from clearmaas.billing.usage_log import UsageItem
from clearmaas.canonical.usage import Usage
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry, Prices
from clearmaas.relay.record import CallRecord

__all__ = ["CATALOGUE", "MODEL", "PRICES", "call_record", "funded_key", "usage_item"]

# $3 / $0.30 / $3.75 / $15 per million tokens, as Claude Sonnet.
PRICES = Prices(input=3_000_000, cached_input=300_000, cache_write=3_750_000, output=15_000_000)
MODEL = ModelEntry(
    id="anthropic/test-model",
    provider="anthropic",
    upstream="test-model",
    context_length=200_000,
    max_output_tokens=1_000,
    prices=PRICES,
)
CATALOGUE = Catalogue([MODEL])


def funded_key(
    engine: Engine, *, workspace: str = "acme", balance_micros: int = 0, credit_limit_micros: int | None = None
) -> KeyRecord:
    """A workspace (created if missing) with `balance_micros` credited, and a new key in it."""
    with contextlib.suppress(WorkspaceExists):
        create_workspace(engine, workspace)
    if balance_micros:
        add_credit(engine, workspace, balance_micros, reason="test", actor="tests")
    record, _raw = create_key(engine, workspace, credit_limit_micros=credit_limit_micros)
    return record


def call_record(key: KeyRecord, usage: Usage | None = None, *, status: int = 200, **fields: object) -> CallRecord:
    record = CallRecord(
        request_id=uuid.uuid4().hex,
        endpoint="openai_chat",
        key_id=key.id,
        workspace_id=key.workspace_id,
        requested_model=MODEL.id,
        served_model=MODEL.id,
        provider=MODEL.provider,
        status=status,
        usage=usage or Usage(),
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


_USAGE_FIELDS = frozenset(
    {"input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "server_tool_calls"}
)


def usage_item(
    *,
    request_id: str,
    created_at: datetime,
    endpoint: str,
    status: int,
    workspace_id: str | None = None,
    key_id: str | None = None,
    cost_micros: int = 0,
    book_charged: bool = False,
    latency_ms: int | None = None,
    ttft_ms: int | None = None,
    **fields: Any,
) -> UsageItem:
    """A queued usage record as `Billing` makes one, given the `usage_records` columns a test wants stored:
    token counts go to the call's `Usage`, the other fields to its `CallRecord`."""
    if created_at.tzinfo is None:
        raise ValueError("a usage record's time must carry its time zone")
    usage = Usage(**{name: fields.pop(name) for name in list(fields) if name in _USAGE_FIELDS})
    record = CallRecord(
        request_id=request_id, endpoint=endpoint, status=status, workspace_id=workspace_id, key_id=key_id,
        usage=usage, started=1_000.0, **fields,
    )  # fmt: skip
    # Half a millisecond past the wanted value, so float rounding cannot truncate it to the one below.
    if latency_ms is not None:
        record.finished = record.started + (latency_ms + 0.5) / 1000
    if ttft_ms is not None:
        record.first_byte = record.started + (ttft_ms + 0.5) / 1000
    return UsageItem(record, created_at.timestamp(), workspace_id, key_id, cost_micros, book_charged)
