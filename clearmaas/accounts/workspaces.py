"""Workspaces: creating, finding and listing them, and the first-start bootstrap that gives a fresh
install one workspace and one key.

Balances, members and the usage ledger belong to later modules; this one only knows names and limits.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, exists, select
from sqlalchemy.exc import IntegrityError

from clearmaas.accounts.errors import InvalidName, WorkspaceExists, WorkspaceNotFound
from clearmaas.accounts.keys import insert_key
from clearmaas.store.schema import new_id, utc_now, workspaces

__all__ = [
    "BOOTSTRAP_WORKSPACE",
    "Workspace",
    "create_workspace",
    "ensure_bootstrap",
    "get_workspace",
    "list_workspaces",
]

BOOTSTRAP_WORKSPACE = "default"
# Names are typed on command lines and shown in logs: keep them to a shell-safe, unambiguous set.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace as stored; limits are per minute, None meaning unlimited."""

    id: str
    name: str
    created_at: datetime
    rpm_limit: int | None = None
    tpm_limit: int | None = None


def _workspace(row: Row[*tuple[Any, ...]]) -> Workspace:
    m = row._mapping
    return Workspace(
        id=m["id"], name=m["name"], created_at=m["created_at"], rpm_limit=m["rpm_limit"], tpm_limit=m["tpm_limit"]
    )


def _new_row(name: str, rpm_limit: int | None, tpm_limit: int | None) -> Workspace:
    if not _NAME.fullmatch(name):
        raise InvalidName(
            f"invalid workspace name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    for limit in (rpm_limit, tpm_limit):
        if limit is not None and limit <= 0:
            raise ValueError("rate limits must be positive (None means unlimited)")
    return Workspace(id=new_id("ws"), name=name, created_at=utc_now(), rpm_limit=rpm_limit, tpm_limit=tpm_limit)


def create_workspace(
    engine: Engine, name: str, *, rpm_limit: int | None = None, tpm_limit: int | None = None
) -> Workspace:
    """Raises `InvalidName` or `WorkspaceExists`."""
    workspace = _new_row(name, rpm_limit, tpm_limit)
    try:
        with engine.begin() as connection:
            taken = connection.execute(select(exists().where(workspaces.c.name == name))).scalar()
            if taken:
                raise WorkspaceExists(f"a workspace named {name!r} already exists")
            connection.execute(workspaces.insert().values(**asdict(workspace)))
    except IntegrityError as exc:  # another process created it between the check and the insert
        raise WorkspaceExists(f"a workspace named {name!r} already exists") from exc
    return workspace


def get_workspace(engine: Engine, name: str) -> Workspace:
    """Raises `WorkspaceNotFound`."""
    with engine.connect() as connection:
        row = connection.execute(select(workspaces).where(workspaces.c.name == name)).first()
    if row is None:
        raise WorkspaceNotFound(f"no workspace named {name!r}")
    return _workspace(row)


def list_workspaces(engine: Engine) -> list[Workspace]:
    with engine.connect() as connection:
        return [_workspace(row) for row in connection.execute(select(workspaces).order_by(workspaces.c.name))]


def ensure_bootstrap(engine: Engine) -> str | None:
    """On a database without any workspace, create workspace "default" and one key in it, and return
    that raw key (to be shown once). Otherwise, including when another process bootstraps at the same
    moment, return None."""
    with engine.connect() as connection:
        if connection.execute(select(exists().select_from(workspaces))).scalar():
            return None
    workspace = _new_row(BOOTSTRAP_WORKSPACE, None, None)
    try:
        with engine.begin() as connection:
            connection.execute(workspaces.insert().values(**asdict(workspace)))
            _record, raw = insert_key(
                connection, workspace_id=workspace.id, workspace_name=workspace.name, name="bootstrap"
            )
    except IntegrityError:
        return None
    return raw
