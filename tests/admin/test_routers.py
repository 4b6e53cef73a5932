"""Named routers through the admin API: create, list, show, change, delete, the implicit `auto`, a router the
running gateway serves at once, and the refusals."""

from __future__ import annotations

from tests.admin.conftest import AdminClient, chat, new_key, new_workspace, wait_for
from tests.e2e.harness import GatewayProcess


def test_lifecycle(admin: AdminClient, server: GatewayProcess) -> None:
    ws = new_workspace(admin)
    base = f"/admin/v1/workspaces/{ws}/routers"
    listed = admin.get(base).json()["data"]
    assert [(r["name"], r["builtin"], r["strategy"]) for r in listed] == [("auto", True, "cheapest")]

    created = admin.post(base, json={"name": "minis", "patterns": "openai/gpt-4o-mini, openai/gpt-4.1-mini",
                                     "strategy": "cheapest"})  # fmt: skip
    assert created.status_code == 201
    assert created.json() == {
        "name": "minis", "model": "clearmaas/minis", "patterns": ["openai/gpt-4o-mini", "openai/gpt-4.1-mini"],
        "strategy": "cheapest", "default_model": None, "enabled": True, "builtin": False,
    }  # fmt: skip
    key = new_key(admin, ws)["api_key"]
    served = wait_for(lambda: (r := chat(server, key, model="clearmaas/minis")).status_code == 200 and r)
    assert served.headers["x-clear-router"] == "minis"
    assert served.headers["x-clear-resolved-model"] in ("openai/gpt-4o-mini", "openai/gpt-4.1-mini")

    changed = admin.patch(f"{base}/minis", json={"enabled": False, "default_model": "openai/gpt-4o-mini"})
    assert changed.json()["enabled"] is False and changed.json()["default_model"] == "openai/gpt-4o-mini"
    refused = wait_for(lambda: (r := chat(server, key, model="clearmaas/minis")).status_code == 503 and r)
    assert "disabled" in refused.json()["error"]["message"]
    cleared = admin.patch(f"{base}/minis", json={"default_model": None, "patterns": None, "enabled": True})
    assert cleared.json()["default_model"] is None and cleared.json()["patterns"] == []
    assert admin.get(f"{base}/minis").json() == cleared.json()

    assert admin.delete(f"{base}/minis").status_code == 204
    assert admin.get(f"{base}/minis").status_code == 404
    assert [r["name"] for r in admin.get(base).json()["data"]] == ["auto"]
    again = admin.post(base, json={"name": "minis"})  # a deleted name is free again
    assert again.status_code == 201 and again.json()["strategy"] == "balanced"


def test_auto_can_be_changed_and_deleted(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    base = f"/admin/v1/workspaces/{ws}/routers"
    stored = admin.patch(f"{base}/auto", json={"strategy": "quality"}).json()
    assert stored["strategy"] == "quality" and stored["builtin"] is False
    assert admin.delete(f"{base}/auto").status_code == 204
    assert admin.get(base).json()["data"] == []


def test_refusals(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    base = f"/admin/v1/workspaces/{ws}/routers"
    assert admin.post(base, json={"name": "taken"}).status_code == 201
    cases = [
        ("POST", base, {"name": "taken"}, 409, "router_exists"),
        ("POST", base, {"name": "auto"}, 409, "router_exists"),
        ("POST", base, {"name": "Bad Name"}, 400, "bad_request_body"),
        ("POST", base, {"name": "clearmaas"}, 400, "bad_request_body"),
        ("POST", base, {"name": "x", "strategy": "random"}, 400, "bad_request_body"),
        ("POST", base, {"name": "x", "default_model": "openai/no-such-model"}, 400, "bad_request_body"),
        ("POST", base, {"name": "x", "default_model": "clearmaas/auto"}, 400, "bad_request_body"),
        ("POST", base, {"name": "x", "patterns": [1]}, 400, "bad_request_body"),
        ("POST", base, {"name": "x", "enabled": "yes"}, 400, "bad_request_body"),
        ("POST", base, {}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces/nope-nope/routers", {"name": "x"}, 404, "workspace_not_found"),
        ("GET", f"{base}/ghost", None, 404, "router_not_found"),
        ("PATCH", f"{base}/ghost", {"enabled": False}, 404, "router_not_found"),
        ("PATCH", f"{base}/taken", {"name": "renamed"}, 400, "bad_request_body"),
        ("DELETE", f"{base}/ghost", None, 404, "router_not_found"),
    ]
    for method, path, body, status, code in cases:
        response = admin.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, body)
