from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, select

from clearmaas.accounts import keys
from clearmaas.accounts.errors import InvalidName, KeyNotFound, WorkspaceNotFound
from clearmaas.accounts.keys import (
    KEY_PREFIX,
    KeyRecord,
    allows_model,
    changed_since,
    create_key,
    display_prefix,
    find_by_hash,
    generate_key,
    get_key,
    hash_key,
    is_usable,
    list_keys,
    revoke_key,
    verify_key,
)
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.store.database import normalize_url, sqlite_file
from clearmaas.store.schema import api_keys, metadata

_KEY = re.compile(r"sk-clearmaas-[A-Za-z0-9]{40}")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _record(**changes: object) -> KeyRecord:
    base = KeyRecord(
        id="key_x",
        workspace_id="ws_x",
        workspace_name="acme",
        name=None,
        prefix="sk-clearmaas-abcdefg",
        expires_at=None,
        revoked_at=None,
        credit_limit_micros=None,
        model_allowlist=(),
        created_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_generated_keys_have_the_documented_shape_and_do_not_repeat() -> None:
    generated = [generate_key() for _ in range(2000)]
    assert all(_KEY.fullmatch(k) for k in generated)
    assert len(set(generated)) == len(generated)
    # 80,000 random characters over 62 symbols: each appears ~1,290 times; a skewed or partial
    # alphabet (hex, lowercase only) would fail this.
    counts = Counter("".join(k[len(KEY_PREFIX) :] for k in generated))
    assert len(counts) == 62
    assert min(counts.values()) > 900 and max(counts.values()) < 1700


def test_key_generation_draws_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def choice(seq: str) -> str:
        calls.append(seq)
        return seq[0]

    monkeypatch.setattr("clearmaas.accounts.keys.secrets.choice", choice)
    assert generate_key() == KEY_PREFIX + "a" * 40
    assert len(calls) == 40


def test_hash_and_prefix() -> None:
    raw = generate_key()
    assert hash_key(raw) == hashlib.sha256(raw.encode()).hexdigest()
    assert len(hash_key(raw)) == 64
    assert display_prefix(raw) == raw[:20] and display_prefix(raw).startswith(KEY_PREFIX)
    assert verify_key(raw, hash_key(raw))
    assert not verify_key(raw + "x", hash_key(raw))


def test_verification_compares_in_constant_time(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    create_workspace(engine, "acme")
    _, raw = create_key(engine, "acme")
    compared: list[tuple[str, str]] = []

    def compare_digest(a: str, b: str) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(keys, "hmac", SimpleNamespace(compare_digest=compare_digest))
    assert verify_key(raw, hash_key(raw))
    assert find_by_hash(engine, hash_key(raw)) is not None
    assert compared == [(hash_key(raw), hash_key(raw))] * 2


def test_only_the_hash_and_prefix_are_stored(engine: Engine) -> None:
    create_workspace(engine, "acme")
    record, raw = create_key(engine, "acme", name="ci")
    secret_part = raw[len(display_prefix(raw)) :]
    stored: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                stored.extend(str(value) for value in row)
    assert hash_key(raw) in stored and record.prefix in stored
    assert not any(raw in value or secret_part in value for value in stored)
    path = sqlite_file(normalize_url(engine.url))
    if path is not None:  # and not in the SQLite files' bytes either (free pages, the WAL)
        for file in path.parent.glob(path.name + "*"):
            assert secret_part.encode() not in file.read_bytes()


def test_create_key_round_trips_every_field(engine: Engine) -> None:
    workspace = create_workspace(engine, "acme")
    expires = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    record, raw = create_key(
        engine,
        "acme",
        name="batch job",
        expires_at=expires,
        credit_limit_micros=5_000_000,
        model_allowlist=("gpt-4o*", "claude-*"),
    )
    assert record.workspace_id == workspace.id and record.workspace_name == "acme"
    assert record.id.startswith("key_") and record.prefix == display_prefix(raw)
    loaded = find_by_hash(engine, hash_key(raw))
    assert loaded == record
    assert loaded is not None and loaded.expires_at == expires and loaded.expires_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_create_key_refuses_unknown_workspace_and_bad_names(engine: Engine) -> None:
    with pytest.raises(WorkspaceNotFound, match="'ghost'"):
        create_key(engine, "ghost")
    create_workspace(engine, "acme")
    for bad in ("", "   ", "tab\there", "x" * 201):
        with pytest.raises(InvalidName):
            create_key(engine, "acme", name=bad)
    with engine.connect() as connection:
        assert connection.execute(select(api_keys)).first() is None


def test_find_by_hash_misses_cleanly(engine: Engine) -> None:
    assert find_by_hash(engine, hash_key(generate_key())) is None


def test_list_keys_is_per_workspace_and_oldest_first(engine: Engine) -> None:
    create_workspace(engine, "acme")
    create_workspace(engine, "other")
    first, _ = create_key(engine, "acme", name="one")
    second, _ = create_key(engine, "acme", name="two")
    create_key(engine, "other")
    revoke_key(engine, first.id)
    listed = list_keys(engine, "acme")
    assert [k.id for k in listed] == [first.id, second.id]
    assert listed[0].revoked_at is not None and listed[1].revoked_at is None
    assert list_keys(engine, "other")[0].workspace_name == "other"
    with pytest.raises(WorkspaceNotFound):
        list_keys(engine, "ghost")


def test_revoke_is_idempotent_and_keeps_the_first_time(engine: Engine) -> None:
    create_workspace(engine, "acme")
    record, _ = create_key(engine, "acme")
    revoked, changed = revoke_key(engine, record.id)
    assert changed and revoked.revoked_at is not None
    again, changed_again = revoke_key(engine, record.id)
    assert not changed_again and again.revoked_at == revoked.revoked_at
    assert get_key(engine, record.id).revoked_at == revoked.revoked_at
    with pytest.raises(KeyNotFound, match="key_nope"):
        revoke_key(engine, "key_nope")


def test_changed_since_sees_revocations_only_after_the_mark(engine: Engine) -> None:
    create_workspace(engine, "acme")
    record, raw = create_key(engine, "acme")
    other, _ = create_key(engine, "acme")
    mark = datetime.now(UTC)
    assert changed_since(engine, mark) == []
    revoke_key(engine, record.id)
    changed = changed_since(engine, mark)
    assert [(h, r.id) for h, r in changed] == [(hash_key(raw), record.id)]
    assert changed[0][1].revoked_at is not None
    assert {r.id for _, r in changed_since(engine, mark - timedelta(hours=1))} == {record.id, other.id}


def test_is_usable() -> None:
    assert is_usable(_record(), NOW)
    assert not is_usable(_record(revoked_at=NOW - timedelta(seconds=1)), NOW)
    assert not is_usable(_record(expires_at=NOW), NOW)
    assert is_usable(_record(expires_at=NOW + timedelta(seconds=1)), NOW)


def test_allows_model_with_globs() -> None:
    assert allows_model(_record(), "anything")
    limited = _record(model_allowlist=("gpt-4o*", "claude-sonnet-4"))
    assert allows_model(limited, "gpt-4o-mini")
    assert allows_model(limited, "claude-sonnet-4")
    assert not allows_model(limited, "claude-sonnet-4-5")
    assert not allows_model(limited, "GPT-4O")
