"""Workspaces through the admin API of the real server: list, create, show, change limits, and the refusals."""

from __future__ import annotations

import httpx2

from tests.admin.conftest import AdminClient, chat, new_key, new_workspace, unique, wait_for
from tests.e2e.harness import GatewayProcess


def test_create_show_and_list(admin: AdminClient) -> None:
    name = unique("acme")
    created = admin.post("/admin/v1/workspaces", json={"name": name, "rpm_limit": 120, "tpm_limit": 50_000})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == name and body["id"].startswith("ws_")
    assert (body["rpm_limit"], body["tpm_limit"]) == (120, 50_000)
    assert body["balance_usd"] == body["spent_usd"] == body["credited_usd"] == "0.000000"
    assert body["requests"] == 0 and body["reserved_usd"] == "0.000000"

    shown = admin.get(f"/admin/v1/workspaces/{name}").json()
    assert shown == body
    listed = admin.get("/admin/v1/workspaces").json()["data"]
    names = [w["name"] for w in listed]
    assert name in names and "e2e" in names and names == sorted(names)
    assert next(w for w in listed if w["name"] == name)["balance_usd"] == "0.000000"


def test_show_reports_money_exactly(admin: AdminClient, server: GatewayProcess) -> None:
    name = new_workspace(admin, credit="12.345678")
    key = new_key(admin, name)
    # The running gateway re-reads balances about every second; until then the new workspace has none.
    wait_for(lambda: chat(server, key["api_key"]).status_code == 200)
    detail = wait_for(lambda: (d := admin.get(f"/admin/v1/workspaces/{name}").json())["spent_usd"] != "0.000000" and d)
    spent = int(detail["spent_usd"].replace(".", ""))
    assert spent > 0 and detail["requests"] >= 1
    assert detail["credited_usd"] == "12.345678"
    assert int(detail["balance_usd"].replace(".", "")) == 12_345_678 - spent


def test_update_limits_and_remove_them(admin: AdminClient) -> None:
    name = new_workspace(admin, credit=None)
    changed = admin.patch(f"/admin/v1/workspaces/{name}", json={"rpm_limit": 5})
    assert changed.status_code == 200
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"]) == (5, None)
    changed = admin.patch(f"/admin/v1/workspaces/{name}", json={"tpm_limit": 1000})
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"]) == (5, 1000)  # absent: unchanged
    changed = admin.patch(f"/admin/v1/workspaces/{name}", json={"rpm_limit": None})
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"]) == (None, 1000)  # null: unlimited


def test_a_new_rpm_limit_reaches_the_running_gateway(admin: AdminClient, server: GatewayProcess) -> None:
    name = new_workspace(admin)
    key = new_key(admin, name)["api_key"]
    wait_for(lambda: chat(server, key).status_code == 200)
    assert admin.patch(f"/admin/v1/workspaces/{name}", json={"rpm_limit": 1}).status_code == 200

    def limited() -> httpx2.Response | None:
        response = chat(server, key)
        return response if response.status_code == 429 else None

    refused = wait_for(limited, timeout=5)
    assert refused.headers["retry-after"]


def test_refusals(admin: AdminClient) -> None:
    name = new_workspace(admin, credit=None)
    cases = [
        ("POST", "/admin/v1/workspaces", {"name": name}, 409, "workspace_exists"),
        ("POST", "/admin/v1/workspaces", {"name": "bad name!"}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces", {}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces", {"name": unique("x"), "rpm_limit": 0}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces", {"name": unique("x"), "rpm_limit": 1.5}, 400, "bad_request_body"),
        ("POST", "/admin/v1/workspaces", {"name": unique("x"), "colour": "red"}, 400, "bad_request_body"),
        ("GET", "/admin/v1/workspaces/nope-nope", None, 404, "workspace_not_found"),
        ("PATCH", "/admin/v1/workspaces/nope-nope", {"rpm_limit": 3}, 404, "workspace_not_found"),
        ("PATCH", f"/admin/v1/workspaces/{name}", {"tpm_limit": "many"}, 400, "bad_request_body"),
        ("PATCH", f"/admin/v1/workspaces/{name}", {"rpm_limit": 2**31}, 400, "bad_request_body"),
    ]
    for method, path, body, status, code in cases:
        response = admin.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, body)
    not_json = admin.post("/admin/v1/workspaces", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    array = admin.post("/admin/v1/workspaces", json=[1])
    assert array.status_code == 400 and "JSON object" in array.json()["error"]["message"]
    unknown = admin.post("/admin/v1/workspaces", json={"name": unique("x"), "colour": "red"})
    assert unknown.json()["error"]["param"] == "colour"
