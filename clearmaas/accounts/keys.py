"""API keys: generating and hashing them, the `KeyRecord` the gateway authenticates with, and the
repository functions that store and find keys. Only a SHA-256 hash and a display prefix are stored.

No caching here (`key_cache.py`) and no HTTP: the auth layer turns a missing or unusable key into
`AuthenticationFailed`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, select, update

from clearmaas.accounts.errors import InvalidName, KeyNotFound, WorkspaceNotFound
from clearmaas.store.schema import api_keys, new_id, utc_now, workspaces

__all__ = [
    "DISPLAY_PREFIX_LENGTH",
    "KEY_PREFIX",
    "KeyRecord",
    "allows_model",
    "changed_since",
    "create_key",
    "display_prefix",
    "find_by_hash",
    "generate_key",
    "get_key",
    "hash_key",
    "insert_key",
    "is_usable",
    "list_keys",
    "looks_like_key",
    "revoke_key",
    "verify_key",
]

KEY_PREFIX = "sk-clearmaas-"
_ALPHABET = string.ascii_letters + string.digits
# 40 characters of base62 are about 238 bits: far beyond guessing, and no '-' or '_' to break a double-click.
_RANDOM_LENGTH = 40
# The fixed prefix plus 7 random characters (about 41 bits): enough to tell keys apart in a listing while
# leaving about 196 unknown bits.
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 7
# Anything longer cannot be one of our keys; refusing it early keeps a hostile header from being hashed.
_MAX_KEY_LENGTH = 256
# Keys have always had at least 32 random characters; anything shorter is not worth a database lookup.
_MIN_KEY_LENGTH = len(KEY_PREFIX) + 32
_MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the gateway knows about a key; `last_used_at` is as of when the record was loaded."""

    id: str
    workspace_id: str
    workspace_name: str
    name: str | None
    prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None
    credit_limit_micros: int | None
    # Model-name globs (`fnmatch`, case-sensitive); empty means every model.
    model_allowlist: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))


def hash_key(raw: str) -> str:
    """SHA-256 hex of the key. The key is already 238 random bits, so a fast unsalted hash is enough:
    there is nothing to brute-force, and the gateway can look the hash up by index."""
    return hashlib.sha256(raw.encode()).hexdigest()


def verify_key(raw: str, key_hash: str) -> bool:
    """Whether `raw` hashes to `key_hash`, compared in constant time."""
    return hmac.compare_digest(hash_key(raw), key_hash)


def display_prefix(raw: str) -> str:
    return raw[:DISPLAY_PREFIX_LENGTH]


def looks_like_key(raw: str) -> bool:
    """Cheap shape check done before any hashing or lookup."""
    return raw.startswith(KEY_PREFIX) and _MIN_KEY_LENGTH <= len(raw) <= _MAX_KEY_LENGTH


def is_usable(record: KeyRecord, now: datetime) -> bool:
    """Not revoked and not expired at `now` (aware)."""
    if record.revoked_at is not None:
        return False
    return record.expires_at is None or record.expires_at > now


def allows_model(record: KeyRecord, model: str) -> bool:
    return not record.model_allowlist or any(fnmatchcase(model, glob) for glob in record.model_allowlist)


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not name.strip() or len(name) > _MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidName(f"a key name must be 1 to {_MAX_NAME_LENGTH} printable characters")
    return name


def _encode_allowlist(globs: Iterable[str]) -> str | None:
    listed = list(globs)
    if any(not isinstance(g, str) or not g for g in listed):
        raise ValueError("model allowlist entries must be non-empty strings")
    return orjson.dumps(listed).decode() if listed else None


def _decode_allowlist(stored: str | None) -> tuple[str, ...]:
    return tuple(orjson.loads(stored)) if stored else ()


_RECORD_COLUMNS = (
    api_keys.c.id,
    api_keys.c.workspace_id,
    workspaces.c.name.label("workspace_name"),
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.credit_limit_micros,
    api_keys.c.model_allowlist,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.key_hash,
)
_RECORDS = select(*_RECORD_COLUMNS).join_from(api_keys, workspaces, api_keys.c.workspace_id == workspaces.c.id)


def _record(row: Row[*tuple[Any, ...]]) -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        id=m["id"],
        workspace_id=m["workspace_id"],
        workspace_name=m["workspace_name"],
        name=m["name"],
        prefix=m["prefix"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        credit_limit_micros=m["credit_limit_micros"],
        model_allowlist=_decode_allowlist(m["model_allowlist"]),
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
    )


def insert_key(
    connection: Connection,
    *,
    workspace_id: str,
    workspace_name: str,
    name: str | None = None,
    expires_at: datetime | None = None,
    credit_limit_micros: int | None = None,
    model_allowlist: Sequence[str] = (),
) -> tuple[KeyRecord, str]:
    """Insert a new key inside the caller's transaction; returns the record and the raw key (the only
    time it exists outside the client's hands)."""
    if credit_limit_micros is not None and credit_limit_micros < 0:
        raise ValueError("credit_limit_micros must not be negative")
    raw = generate_key()
    now = utc_now()
    record = KeyRecord(
        id=new_id("key"),
        workspace_id=workspace_id,
        workspace_name=workspace_name,
        name=_check_name(name),
        prefix=display_prefix(raw),
        expires_at=expires_at,
        revoked_at=None,
        credit_limit_micros=credit_limit_micros,
        model_allowlist=tuple(model_allowlist),
        created_at=now,
    )
    connection.execute(
        api_keys.insert().values(
            id=record.id,
            workspace_id=workspace_id,
            name=record.name,
            prefix=record.prefix,
            key_hash=hash_key(raw),
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
            credit_limit_micros=credit_limit_micros,
            model_allowlist=_encode_allowlist(record.model_allowlist),
        )
    )
    return record, raw


def _workspace_id(connection: Connection, workspace: str) -> str:
    found = connection.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).scalar()
    if found is None:
        raise WorkspaceNotFound(f"no workspace named {workspace!r}")
    return str(found)


def create_key(
    engine: Engine,
    workspace: str,
    *,
    name: str | None = None,
    expires_at: datetime | None = None,
    credit_limit_micros: int | None = None,
    model_allowlist: Sequence[str] = (),
) -> tuple[KeyRecord, str]:
    """A new key in the workspace named `workspace`; raises `WorkspaceNotFound`."""
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        return insert_key(
            connection,
            workspace_id=workspace_id,
            workspace_name=workspace,
            name=name,
            expires_at=expires_at,
            credit_limit_micros=credit_limit_micros,
            model_allowlist=model_allowlist,
        )


def list_keys(engine: Engine, workspace: str) -> list[KeyRecord]:
    """Every key of the workspace (revoked ones included), oldest first; raises `WorkspaceNotFound`."""
    with engine.connect() as connection:
        _workspace_id(connection, workspace)
        rows = connection.execute(
            _RECORDS.where(workspaces.c.name == workspace).order_by(api_keys.c.created_at, api_keys.c.id)
        )
        return [_record(row) for row in rows]


def get_key(engine: Engine, key_id: str) -> KeyRecord:
    with engine.connect() as connection:
        row = connection.execute(_RECORDS.where(api_keys.c.id == key_id)).first()
    if row is None:
        raise KeyNotFound(f"no key with id {key_id!r}")
    return _record(row)


def revoke_key(engine: Engine, key_id: str) -> tuple[KeyRecord, bool]:
    """Revoke the key; returns its record and whether this call revoked it (False: it already was).
    Raises `KeyNotFound`."""
    now = utc_now()
    with engine.begin() as connection:
        changed = connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        ).rowcount
    return get_key(engine, key_id), changed == 1


def find_by_hash(engine: Engine, key_hash: str) -> KeyRecord | None:
    with engine.connect() as connection:
        row = connection.execute(_RECORDS.where(api_keys.c.key_hash == key_hash)).first()
    # The index lookup compares hashes, which leak nothing useful; this check guards against a database
    # whose collation would match a hash that differs in case.
    if row is None or not hmac.compare_digest(row._mapping["key_hash"], key_hash):
        return None
    return _record(row)


def changed_since(engine: Engine, since: datetime) -> list[tuple[str, KeyRecord]]:
    """(hash, record) of every key whose `updated_at` is after `since`."""
    with engine.connect() as connection:
        rows = connection.execute(_RECORDS.where(api_keys.c.updated_at > since))
        return [(row._mapping["key_hash"], _record(row)) for row in rows]
