"""Admin endpoints for a workspace's members: list, add a user by email (creating the user on first sight),
change a role, remove. Roles are `owner`, `admin` and `member`; a workspace that has an owner always keeps at
least one, so nobody can lock the owners out by accident.

A member is named in paths by user id (`usr_...`) or email address.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypedDict, get_args

from sqlalchemy import Connection, Engine, Row, Select, and_, delete, func, select, update

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.admin.endpoint import AdminCall, Endpoint
from clearmaas.admin.errors import Conflict, ResourceNotFound
from clearmaas.admin.fields import iso
from clearmaas.store.schema import new_id, users, utc_now, workspace_members, workspaces

__all__ = ["ENDPOINTS", "ROLES", "Member", "add_member", "list_members", "remove_member", "set_role"]

Role = Literal["owner", "admin", "member"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
_COLUMNS = (users.c.id, users.c.email, users.c.name, workspace_members.c.role, workspace_members.c.created_at)


class Member(TypedDict):
    user_id: str
    email: str
    name: str | None
    role: str
    added_at: str | None


def _member(row: Row[Any]) -> Member:
    m = row._mapping
    return Member(user_id=m["id"], email=m["email"], name=m["name"], role=m["role"], added_at=iso(m["created_at"]))


def _workspace_id(connection: Connection, workspace: str) -> str:
    found = connection.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).scalar()
    if found is None:
        raise WorkspaceNotFound(f"no workspace named {workspace!r}")
    return str(found)


def _members_query(workspace_id: str) -> Select[Any]:
    return (
        select(*_COLUMNS)
        .join_from(workspace_members, users, workspace_members.c.user_id == users.c.id)
        .where(workspace_members.c.workspace_id == workspace_id)
    )


def _find(connection: Connection, workspace: str, workspace_id: str, user: str) -> Member:
    match = users.c.email == user.strip().lower() if "@" in user else users.c.id == user
    row = connection.execute(_members_query(workspace_id).where(match)).first()
    if row is None:
        raise ResourceNotFound(f"workspace {workspace!r} has no member {user!r}", code="member_not_found")
    return _member(row)


def _owners(connection: Connection, workspace_id: str) -> int:
    query = select(func.count()).where(
        and_(workspace_members.c.workspace_id == workspace_id, workspace_members.c.role == "owner")
    )
    return int(connection.execute(query).scalar_one())


def list_members(engine: Engine, workspace: str) -> list[Member]:
    with engine.connect() as connection:
        workspace_id = _workspace_id(connection, workspace)
        rows = connection.execute(_members_query(workspace_id).order_by(users.c.email)).all()
    return [_member(row) for row in rows]


def add_member(engine: Engine, workspace: str, email: str, role: Role, *, name: str | None = None) -> Member:
    """Add the user with this (lower-case) email, creating the user if new. Raises Conflict when already a member."""
    now = utc_now()
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        user_id = connection.execute(select(users.c.id).where(users.c.email == email)).scalar()
        if user_id is None:
            user_id = new_id("usr")
            connection.execute(users.insert().values(id=user_id, email=email, name=name, created_at=now))
        elif name is not None:
            connection.execute(update(users).where(users.c.id == user_id).values(name=name))
        taken = connection.execute(
            select(workspace_members.c.role).where(
                workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id
            )
        ).scalar()
        if taken is not None:
            raise Conflict(f"{email} is already a member of workspace {workspace!r} ({taken})", code="member_exists")
        connection.execute(
            workspace_members.insert().values(workspace_id=workspace_id, user_id=user_id, role=role, created_at=now)
        )
        return _find(connection, workspace, workspace_id, user_id)


def set_role(engine: Engine, workspace: str, user: str, role: Role) -> Member:
    """Raises ResourceNotFound, or Conflict when this would demote the workspace's last owner."""
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        member = _find(connection, workspace, workspace_id, user)
        if member["role"] == "owner" and role != "owner" and _owners(connection, workspace_id) == 1:
            raise Conflict(f"{member['email']} is the last owner of workspace {workspace!r}", code="last_owner")
        connection.execute(
            update(workspace_members)
            .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == member["user_id"])
            .values(role=role)
        )
        return _find(connection, workspace, workspace_id, member["user_id"])


def remove_member(engine: Engine, workspace: str, user: str) -> None:
    """Raises ResourceNotFound, or Conflict when this would remove the workspace's last owner. The user row
    stays (other workspaces may know it)."""
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        member = _find(connection, workspace, workspace_id, user)
        if member["role"] == "owner" and _owners(connection, workspace_id) == 1:
            raise Conflict(f"{member['email']} is the last owner of workspace {workspace!r}", code="last_owner")
        connection.execute(
            delete(workspace_members).where(
                workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == member["user_id"]
            )
        )


def _role(value: str | None) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise AssertionError(f"unchecked role {value!r}")


async def list_members_(call: AdminCall) -> dict[str, list[Member]]:
    return {"data": await call.run(list_members, call.engine, call.path("workspace"))}


async def add_member_(call: AdminCall) -> Member:
    body = await call.body(allowed=("email", "role", "name"))
    email = body.email("email")
    role = _role(body.choice("role", ROLES) or "member")
    name = body.text("name")
    return await call.run(add_member, call.engine, call.path("workspace"), email, role, name=name)


async def update_member(call: AdminCall) -> Member:
    body = await call.body(allowed=("role",))
    role = _role(body.choice("role", ROLES, required=True))
    return await call.run(set_role, call.engine, call.path("workspace"), call.path("user"), role)


async def remove_member_(call: AdminCall) -> None:
    await call.run(remove_member, call.engine, call.path("workspace"), call.path("user"))


_TAG = "Members"
_BASE = "/admin/v1/workspaces/{workspace}/members"
_ONE = f"{_BASE}/{{user}}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _BASE, list_members_, "List a workspace's members", _TAG, response="MemberList", errors=(404,)),
    Endpoint(
        "POST",
        _BASE,
        add_member_,
        "Add a user to a workspace by email (the user is created if new)",
        _TAG,
        request="MemberCreate",
        response="Member",
        status=201,
        errors=(400, 404, 409),
    ),
    Endpoint(
        "PATCH",
        _ONE,
        update_member,
        "Change a member's role",
        _TAG,
        request="MemberUpdate",
        response="Member",
        errors=(400, 404, 409),
        description="Refused with 409 `last_owner` when it would leave a workspace that has owners without one.",
    ),
    Endpoint(
        "DELETE",
        _ONE,
        remove_member_,
        "Remove a member from a workspace",
        _TAG,
        status=204,
        errors=(404, 409),
        description="Refused with 409 `last_owner` for the workspace's last owner. The user itself is kept.",
    ),
)
