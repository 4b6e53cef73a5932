"""Workspace rate limits as stored: reading every workspace's limits, reading recent changes, and setting
them (which bumps `workspaces.updated_at` so every gateway process picks the change up).

No counting here (`counters.py`, `redis_counter.py`) and no caching (`cache.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import Engine, Row, or_, select

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.accounts.workspaces import Workspace
from clearmaas.store.schema import utc_now, workspaces

__all__ = [
    "KEEP",
    "MAX_RPM",
    "MAX_TPM",
    "UNLIMITED",
    "Keep",
    "Limits",
    "changed_since",
    "load_all",
    "set_limits",
]

# The column types: `rpm_limit` is INTEGER, `tpm_limit` BIGINT.
MAX_RPM: Final = 2**31 - 1
MAX_TPM: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """A workspace's budget per minute, shared by all its keys; None means no limit."""

    rpm: int | None = None
    tpm: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None


UNLIMITED: Final = Limits()


class Keep(Enum):
    """Marks a limit `set_limits` leaves as it is (None already means "no limit")."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP

_COLUMNS = select(workspaces.c.id, workspaces.c.rpm_limit, workspaces.c.tpm_limit)


def _limits(row: Row[*tuple[Any, ...]]) -> tuple[str, Limits]:
    m = row._mapping
    return m["id"], Limits(rpm=m["rpm_limit"], tpm=m["tpm_limit"])


def load_all(engine: Engine) -> dict[str, Limits]:
    """Workspace id -> limits, for every workspace that has at least one limit (one query)."""
    query = _COLUMNS.where(or_(workspaces.c.rpm_limit.is_not(None), workspaces.c.tpm_limit.is_not(None)))
    with engine.connect() as connection:
        return dict(_limits(row) for row in connection.execute(query))


def changed_since(engine: Engine, since: datetime) -> dict[str, Limits]:
    """Workspace id -> limits for every workspace created or changed after `since`, unlimited ones included
    (so a cache can forget a limit that was removed)."""
    # A workspace created with limits has no `updated_at` yet; its `created_at` is what is new.
    query = _COLUMNS.where(or_(workspaces.c.updated_at > since, workspaces.c.created_at > since))
    with engine.connect() as connection:
        return dict(_limits(row) for row in connection.execute(query))


def _checked(value: int | None | Keep, name: str, maximum: int) -> int | None | Keep:
    if isinstance(value, int) and not 0 < value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum} (or none for unlimited)")
    return value


def set_limits(
    engine: Engine,
    name: str,
    *,
    rpm: int | None | Keep = KEEP,
    tpm: int | None | Keep = KEEP,
) -> Workspace:
    """Set the named workspace's limits (None: unlimited; KEEP: unchanged) and bump its `updated_at`;
    returns the workspace as stored afterwards. Raises `WorkspaceNotFound`, or `ValueError` for a limit
    that is not positive or does not fit its column."""
    values: dict[str, Any] = {"updated_at": utc_now()}
    if (checked := _checked(rpm, "rpm", MAX_RPM)) is not KEEP:
        values["rpm_limit"] = checked
    if (checked := _checked(tpm, "tpm", MAX_TPM)) is not KEEP:
        values["tpm_limit"] = checked
    with engine.begin() as connection:
        updated = connection.execute(workspaces.update().where(workspaces.c.name == name).values(**values))
        if updated.rowcount == 0:
            raise WorkspaceNotFound(f"no workspace named {name!r}")
        row = connection.execute(select(workspaces).where(workspaces.c.name == name)).one()
    m = row._mapping
    return Workspace(
        id=m["id"], name=m["name"], created_at=m["created_at"], rpm_limit=m["rpm_limit"], tpm_limit=m["tpm_limit"]
    )
