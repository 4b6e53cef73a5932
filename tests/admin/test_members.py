"""Workspace members through the admin API: adding users by email, roles, removal, and the last-owner rule."""

from __future__ import annotations

from tests.admin.conftest import AdminClient, new_workspace


def _members(admin: AdminClient, workspace: str) -> dict[str, str]:
    response = admin.get(f"/admin/v1/workspaces/{workspace}/members")
    assert response.status_code == 200
    return {m["email"]: m["role"] for m in response.json()["data"]}


def test_add_change_and_remove(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    base = f"/admin/v1/workspaces/{ws}/members"
    ann = admin.post(base, json={"email": "  Ann@Example.COM ", "role": "owner", "name": "Ann"})
    assert ann.status_code == 201
    assert ann.json()["email"] == "ann@example.com" and ann.json()["role"] == "owner"
    assert ann.json()["name"] == "Ann" and ann.json()["user_id"].startswith("usr_")
    bob = admin.post(base, json={"email": "bob@example.com"})
    assert bob.json()["role"] == "member"  # the default
    assert _members(admin, ws) == {"ann@example.com": "owner", "bob@example.com": "member"}

    promoted = admin.patch(f"{base}/{bob.json()['user_id']}", json={"role": "admin"})  # by user id
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    demoted = admin.patch(f"{base}/BOB@example.com", json={"role": "member"})  # by email, any case
    assert demoted.json()["role"] == "member"

    assert admin.delete(f"{base}/bob@example.com").status_code == 204
    assert _members(admin, ws) == {"ann@example.com": "owner"}
    again = admin.delete(f"{base}/bob@example.com")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "member_not_found")


def test_one_user_in_two_workspaces(admin: AdminClient) -> None:
    first, second = new_workspace(admin, credit=None), new_workspace(admin, credit=None)
    a = admin.post(f"/admin/v1/workspaces/{first}/members", json={"email": "carol@example.com", "role": "admin"})
    b = admin.post(f"/admin/v1/workspaces/{second}/members", json={"email": "carol@example.com", "role": "member"})
    assert a.json()["user_id"] == b.json()["user_id"]  # one user row
    assert _members(admin, first) == {"carol@example.com": "admin"}
    assert _members(admin, second) == {"carol@example.com": "member"}
    # Removing her from one workspace leaves the other membership alone.
    assert admin.delete(f"/admin/v1/workspaces/{first}/members/carol@example.com").status_code == 204
    assert _members(admin, second) == {"carol@example.com": "member"}


def test_the_last_owner_stays(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    base = f"/admin/v1/workspaces/{ws}/members"
    admin.post(base, json={"email": "owner1@example.com", "role": "owner"})
    for response in (
        admin.patch(f"{base}/owner1@example.com", json={"role": "admin"}),
        admin.delete(f"{base}/owner1@example.com"),
    ):
        assert (response.status_code, response.json()["error"]["code"]) == (409, "last_owner")
    admin.post(base, json={"email": "owner2@example.com", "role": "owner"})
    assert admin.patch(f"{base}/owner1@example.com", json={"role": "member"}).status_code == 200
    assert admin.delete(f"{base}/owner1@example.com").status_code == 204
    assert _members(admin, ws) == {"owner2@example.com": "owner"}


def test_refusals(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    base = f"/admin/v1/workspaces/{ws}/members"
    assert admin.post(base, json={"email": "dup@example.com"}).status_code == 201
    cases = [
        ("POST", base, {"email": "DUP@example.com"}, 409, "member_exists"),
        ("POST", base, {"email": "not-an-email"}, 400, "bad_request_body"),
        ("POST", base, {"email": "x@example.com", "role": "king"}, 400, "bad_request_body"),
        ("POST", base, {"role": "owner"}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces/nope-nope/members", {"email": "a@b.co"}, 404, "workspace_not_found"),
        ("GET", "/admin/v1/workspaces/nope-nope/members", None, 404, "workspace_not_found"),
        ("PATCH", f"{base}/dup@example.com", {}, 400, "bad_request_body"),
        ("PATCH", f"{base}/usr_missing", {"role": "admin"}, 404, "member_not_found"),
        ("DELETE", f"{base}/ghost@example.com", None, 404, "member_not_found"),
    ]
    for method, path, body, status, code in cases:
        response = admin.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, body)
