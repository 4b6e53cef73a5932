"""API keys through the admin API of the real server: the raw key shown once and usable at once, changes that
the running gateway applies (credit limit, allowlist, expiry), revocation, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.admin.conftest import AdminClient, chat, new_key, new_workspace, wait_for
from tests.e2e.harness import GatewayProcess


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_raw_key_is_shown_once_and_works_at_once(admin: AdminClient, server: GatewayProcess) -> None:
    created = new_key(admin, "e2e", name="ci", credit_limit_usd="5", models=["openai/*"], expires_in="30d")
    raw = created["api_key"]
    assert raw.startswith("sk-clearmaas-") and raw.startswith(created["prefix"])
    assert created["status"] == "active" and created["name"] == "ci"
    assert created["credit_limit_usd"] == "5.000000" and created["spent_usd"] == "0.000000"
    assert created["models"] == ["openai/*"]
    expires = _moment(created["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)

    assert chat(server, raw).status_code == 200  # immediately, no wait for a cache refresh

    shown = admin.get(f"/admin/v1/keys/{created['id']}")
    listed = admin.get("/admin/v1/workspaces/e2e/keys").json()["data"]
    for text in (shown.text, str(listed)):
        assert raw not in text and raw[len(created["prefix"]) :] not in text
    assert created["id"] in [k["id"] for k in listed]
    assert "api_key" not in shown.json()


def test_spend_is_tracked_and_the_credit_limit_enforced(admin: AdminClient, server: GatewayProcess) -> None:
    ws = new_workspace(admin)
    key = new_key(admin, ws, credit_limit_usd="50")
    wait_for(lambda: chat(server, key["api_key"]).status_code == 200)
    spent = wait_for(lambda: (s := admin.get(f"/admin/v1/keys/{key['id']}").json()["spent_usd"]) != "0.000000" and s)
    assert spent.startswith("0.")
    # A limit below what was already spent: the running gateway refuses the key's next call.
    changed = admin.patch(f"/admin/v1/keys/{key['id']}", json={"credit_limit_usd": "0.000001"})
    assert changed.status_code == 200 and changed.json()["credit_limit_usd"] == "0.000001"
    refused = wait_for(lambda: (r := chat(server, key["api_key"])).status_code == 403 and r)
    assert refused.json()["error"]["code"] == "insufficient_user_quota"
    # null removes the limit again.
    unlimited = admin.patch(f"/admin/v1/keys/{key['id']}", json={"credit_limit_usd": None})
    assert unlimited.json()["credit_limit_usd"] is None
    wait_for(lambda: chat(server, key["api_key"]).status_code == 200)


def test_allowlist_and_name_changes_apply(admin: AdminClient, server: GatewayProcess) -> None:
    key = new_key(admin, "e2e", name="before")
    assert chat(server, key["api_key"]).status_code == 200
    first = admin.get(f"/admin/v1/keys/{key['id']}").json()
    changed = admin.patch(f"/admin/v1/keys/{key['id']}", json={"models": ["anthropic/*"], "name": "after"})
    assert changed.json()["models"] == ["anthropic/*"] and changed.json()["name"] == "after"
    assert _moment(changed.json()["updated_at"]) > _moment(first["updated_at"])  # what the key caches watch
    refused = wait_for(lambda: (r := chat(server, key["api_key"])).status_code == 403 and r)
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert chat(server, key["api_key"], model="anthropic/claude-sonnet-4.6").status_code == 200
    cleared = admin.patch(f"/admin/v1/keys/{key['id']}", json={"models": None, "name": None})
    assert cleared.json()["models"] == [] and cleared.json()["name"] is None
    wait_for(lambda: chat(server, key["api_key"]).status_code == 200)


def test_expiry_can_be_set_and_cleared(admin: AdminClient) -> None:
    key = new_key(admin, "e2e")
    assert key["expires_at"] is None
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    at = admin.patch(f"/admin/v1/keys/{key['id']}", json={"expires_at": when.isoformat()}).json()
    assert _moment(at["expires_at"]) == when
    never = admin.patch(f"/admin/v1/keys/{key['id']}", json={"expires_in": "never"}).json()
    assert never["expires_at"] is None


def test_revoke_stops_the_key(admin: AdminClient, server: GatewayProcess) -> None:
    key = new_key(admin, "e2e")
    assert chat(server, key["api_key"]).status_code == 200
    revoked = admin.delete(f"/admin/v1/keys/{key['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"] is not None
    refused = wait_for(lambda: (r := chat(server, key["api_key"])).status_code == 401 and r, timeout=5)
    assert refused.json()["error"]["code"] == "invalid_api_key"
    again = admin.delete(f"/admin/v1/keys/{key['id']}")  # idempotent
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    change = admin.patch(f"/admin/v1/keys/{key['id']}", json={"name": "back"})
    assert (change.status_code, change.json()["error"]["code"]) == (409, "key_revoked")
    listed = {k["id"]: k["status"] for k in admin.get("/admin/v1/workspaces/e2e/keys").json()["data"]}
    assert listed[key["id"]] == "revoked"


def test_refusals(admin: AdminClient) -> None:
    key = new_key(admin, "e2e")
    one = f"/admin/v1/keys/{key['id']}"
    create = "/admin/v1/workspaces/e2e/keys"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases = [
        ("POST", "/admin/v1/workspaces/nope-nope/keys", {}, 404, "workspace_not_found"),
        ("GET", "/admin/v1/workspaces/nope-nope/keys", None, 404, "workspace_not_found"),
        ("POST", create, {"credit_limit_usd": 2.5}, 400, "bad_request_body"),
        ("POST", create, {"credit_limit_usd": "-1"}, 400, "bad_request_body"),
        ("POST", create, {"credit_limit_usd": "0.0000001"}, 400, "bad_request_body"),
        ("POST", create, {"expires_in": "10m"}, 400, "bad_request_body"),
        ("POST", create, {"expires_in": "2y"}, 400, "bad_request_body"),
        ("POST", create, {"expires_in": "1d", "expires_at": past}, 400, "bad_request_body"),
        ("POST", create, {"expires_at": past}, 400, "bad_request_body"),
        ("POST", create, {"models": "openai/*"}, 400, "bad_request_body"),
        ("POST", create, {"models": [""]}, 400, "bad_request_body"),
        ("POST", create, {"name": ""}, 400, "bad_request_body"),
        ("POST", create, {"limit": "5"}, 400, "bad_request_body"),
        ("GET", "/admin/v1/keys/key_missing", None, 404, "key_not_found"),
        ("PATCH", "/admin/v1/keys/key_missing", {"name": "x"}, 404, "key_not_found"),
        ("DELETE", "/admin/v1/keys/key_missing", None, 404, "key_not_found"),
        ("PATCH", one, {"expires_at": "tomorrow"}, 400, "bad_request_body"),
    ]
    for method, path, body, status, code in cases:
        response = admin.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, body)
