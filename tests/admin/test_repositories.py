"""The admin API's own repository functions on SQLite and PostgreSQL: members and roles, key changes and
revocation (each bumping `updated_at`), and the ledger's pages."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from clearmaas.accounts.errors import KeyNotFound, WorkspaceNotFound
from clearmaas.accounts.keys import changed_since, create_key
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.admin.credits import ledger_page
from clearmaas.admin.errors import Conflict, ResourceNotFound
from clearmaas.admin.keys import get_key_item, list_key_items, revoke, update_key
from clearmaas.admin.members import add_member, list_members, remove_member, set_role
from clearmaas.billing.ledger import add_credit


def test_members(engine: Engine) -> None:
    create_workspace(engine, "one")
    create_workspace(engine, "two")
    ann = add_member(engine, "one", "ann@example.com", "owner", name="Ann")
    assert add_member(engine, "two", "ann@example.com", "member")["user_id"] == ann["user_id"]
    add_member(engine, "one", "bob@example.com", "member")
    with pytest.raises(Conflict):
        add_member(engine, "one", "bob@example.com", "admin")
    with pytest.raises(Conflict, match="last owner"):
        set_role(engine, "one", ann["user_id"], "admin")
    assert set_role(engine, "one", "bob@example.com", "owner")["role"] == "owner"
    assert set_role(engine, "one", "ann@example.com", "member")["role"] == "member"
    remove_member(engine, "one", "ann@example.com")
    assert [(m["email"], m["role"]) for m in list_members(engine, "one")] == [("bob@example.com", "owner")]
    assert [(m["email"], m["role"]) for m in list_members(engine, "two")] == [("ann@example.com", "member")]
    with pytest.raises(ResourceNotFound):
        remove_member(engine, "one", "ann@example.com")
    with pytest.raises(WorkspaceNotFound):
        list_members(engine, "three")


def test_key_changes_reach_the_key_cache_query(engine: Engine) -> None:
    create_workspace(engine, "keys")
    record, _raw = create_key(engine, "keys", name="a")
    since = datetime.now(UTC)
    time.sleep(0.01)
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    changed = update_key(
        engine, record.id, credit_limit_micros=1_500_000, model_allowlist=["openai/*"], expires_at=expires
    )
    assert (changed["credit_limit_usd"], changed["models"], changed["name"]) == ("1.500000", ["openai/*"], "a")
    seen = {r.id: r for _hash, r in changed_since(engine, since)}
    assert seen[record.id].credit_limit_micros == 1_500_000 and seen[record.id].model_allowlist == ("openai/*",)
    assert seen[record.id].expires_at == expires
    cleared = update_key(engine, record.id, name=None, credit_limit_micros=None, model_allowlist=None, expires_at=None)
    assert (cleared["name"], cleared["credit_limit_usd"], cleared["expires_at"]) == (None, None, None)
    assert cleared["models"] == []
    revoked = revoke(engine, record.id)
    assert revoked["status"] == "revoked" and revoke(engine, record.id)["revoked_at"] == revoked["revoked_at"]
    with pytest.raises(Conflict):
        update_key(engine, record.id, name="again")
    with pytest.raises(KeyNotFound):
        get_key_item(engine, "key_missing")
    assert [k["status"] for k in list_key_items(engine, "keys")] == ["revoked"]


def test_ledger_pages(engine: Engine) -> None:
    create_workspace(engine, "money")
    for amount in (1, 2, 3, 4, 5):
        add_credit(engine, "money", amount * 1_000_000)
    first = ledger_page(engine, "money", kind=None, limit=2, before=None)
    assert [e["amount_usd"] for e in first["data"]] == ["5.000000", "4.000000"] and first["has_more"]
    assert first["next_cursor"] is not None
    rest = ledger_page(engine, "money", kind="credit", limit=10, before=int(first["next_cursor"]))
    assert [e["amount_usd"] for e in rest["data"]] == ["3.000000", "2.000000", "1.000000"]
    assert not rest["has_more"] and rest["next_cursor"] is None
    assert ledger_page(engine, "money", kind="charge", limit=10, before=None)["data"] == []
