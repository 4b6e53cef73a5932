"""Shared pieces of the billing tests: a priced model, a funded workspace with a key, and call records."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import Engine

from clearmaas.accounts.errors import WorkspaceExists
from clearmaas.accounts.keys import KeyRecord, create_key
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.billing.ledger import add_credit
from clearmaas.canonical.usage import Usage
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.catalogue.entry import ModelEntry, Prices
from clearmaas.relay.record import CallRecord

__all__ = ["CATALOGUE", "MODEL", "PRICES", "call_record", "funded_key"]

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
