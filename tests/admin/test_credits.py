"""Credits and the ledger through the admin API: exact amounts, the balance the running gateway spends from,
paging and filtering the ledger, and the refusals."""

from __future__ import annotations

from tests.admin.conftest import AdminClient, chat, new_key, new_workspace, wait_for
from tests.e2e.harness import GatewayProcess


def test_credit_is_exact_and_recorded(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    added = admin.post(
        f"/admin/v1/workspaces/{ws}/credits", json={"amount_usd": "10.000001", "reason": "invoice 42", "actor": "ann"}
    )
    assert added.status_code == 201
    body = added.json()
    assert body["balance_usd"] == "10.000001"
    entry = body["entry"]
    assert (entry["kind"], entry["amount_usd"], entry["reason"], entry["actor"]) == (
        "credit", "10.000001", "invoice 42", "ann")  # fmt: skip
    second = admin.post(f"/admin/v1/workspaces/{ws}/credits", json={"amount_usd": 5}).json()
    assert second["balance_usd"] == "15.000001" and second["entry"]["actor"] == "admin-api"
    detail = admin.get(f"/admin/v1/workspaces/{ws}").json()
    assert detail["balance_usd"] == detail["credited_usd"] == "15.000001"


def test_a_credit_unblocks_a_workspace(admin: AdminClient, server: GatewayProcess) -> None:
    ws = new_workspace(admin, credit=None)
    key = new_key(admin, ws)["api_key"]
    refused = chat(server, key)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_user_quota"
    assert admin.post(f"/admin/v1/workspaces/{ws}/credits", json={"amount_usd": "1"}).status_code == 201
    wait_for(lambda: chat(server, key).status_code == 200, timeout=5)


def test_ledger_pages_newest_first_and_filters(admin: AdminClient, server: GatewayProcess) -> None:
    ws = new_workspace(admin, credit="3")
    for amount in ("1", "2"):
        admin.post(f"/admin/v1/workspaces/{ws}/credits", json={"amount_usd": amount})
    key = new_key(admin, ws)
    wait_for(lambda: chat(server, key["api_key"]).status_code == 200)
    charges = wait_for(
        lambda: admin.get(f"/admin/v1/workspaces/{ws}/ledger", params={"kind": "charge"}).json()["data"]
    )
    assert len(charges) == 1 and charges[0]["amount_usd"].startswith("-0.")
    assert charges[0]["key_id"] == key["id"] and charges[0]["request_id"]

    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = admin.get(f"/admin/v1/workspaces/{ws}/ledger", params=params).json()
        seen.extend(page["data"])
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert [e["kind"] for e in seen] == ["charge", "credit", "credit", "credit"]
    assert [e["amount_usd"] for e in seen[1:]] == ["2.000000", "1.000000", "3.000000"]
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True)


def test_refusals(admin: AdminClient) -> None:
    ws = new_workspace(admin, credit=None)
    credits = f"/admin/v1/workspaces/{ws}/credits"
    cases = [
        ("POST", credits, {}, 400),
        ("POST", credits, {"amount_usd": "0"}, 400),
        ("POST", credits, {"amount_usd": "-5"}, 400),
        ("POST", credits, {"amount_usd": 1.5}, 400),
        ("POST", credits, {"amount_usd": "1.0000001"}, 400),
        ("POST", credits, {"amount_usd": "ten"}, 400),
        ("POST", credits, {"amount_usd": "1", "kind": "refund"}, 400),
        ("POST", "/admin/v1/workspaces/nope-nope/credits", {"amount_usd": "1"}, 404),
        ("GET", f"/admin/v1/workspaces/{ws}/ledger?kind=gift", None, 400),
        ("GET", f"/admin/v1/workspaces/{ws}/ledger?limit=0", None, 400),
        ("GET", f"/admin/v1/workspaces/{ws}/ledger?limit=1001", None, 400),
        ("GET", f"/admin/v1/workspaces/{ws}/ledger?cursor=abc", None, 400),
        ("GET", "/admin/v1/workspaces/nope-nope/ledger", None, 404),
    ]
    for method, path, body, status in cases:
        response = admin.request(method, path, json=body)
        assert response.status_code == status, (method, path, body, response.text)
    assert admin.get(f"/admin/v1/workspaces/{ws}").json()["balance_usd"] == "0.000000"  # nothing got through
