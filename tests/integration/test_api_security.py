"""Authentication, the role matrix, tenant isolation and the audit log over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api_fixtures import seed_models, toolbox_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_tenants(live_server):
    a = live_server.tenant(f"a-{uuid.uuid4().hex[:6]}")
    b = live_server.tenant(f"b-{uuid.uuid4().hex[:6]}")
    with live_server.client(a["api_key"]) as ca:
        ca.post("/events", json={"kind": "message", "run_id": "iso-run", "step": 0, "tags": ["iso"],
                                 "payload": {"role": "user", "content": "tenant A secret plan"}})
        ca.post("/events", json={"kind": "agent_action", "run_id": "iso-run", "step": 1, "tags": ["iso"],
                                 "payload": {"answer": "ok"}})
        ds = ca.post("/datasets/create", json={"name": "a-only", "kind": "sft", "filters": {"tags": ["iso"]}}).json()
        run = ca.post("/runs", json={"scenario_id": "hello"}).json()
        plugin = ca.post("/plugins", json=toolbox_spec(f"iso-{uuid.uuid4().hex[:6]}")).json()
        agent = ca.post("/agents", json={"name": "iso-agent", "engine": {"kind": "scripted", "replies": ["hi"]}}).json()
        session = ca.post(f"/agents/{agent['id']}/sessions").json()
    a["agent_id"], a["session_id"] = agent["id"], session["session_id"]
    a["run_id"], a["scenario_id"], a["plugin"] = run["run_id"], run["scenario_id"], plugin["name"]
    a["model_id"] = seed_models(live_server.home, a["tenant_id"])[0]
    return a, b, ds["id"]


def test_missing_and_bad_keys_are_401(live_server):
    assert httpx.get(f"{live_server.url}/datasets").status_code == 401
    bad = httpx.get(f"{live_server.url}/datasets", headers={"Authorization": "Bearer wb_not-a-real-key"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{live_server.url}/events", json={"kind": "message"}).status_code == 401


def test_other_tenants_objects_are_404_without_data(live_server, two_tenants):
    a, b, dataset_id = two_tenants
    with live_server.client(b["api_key"]) as cb:
        for path in (f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/download", f"/lineage/dataset/{dataset_id}"):
            response = cb.get(path)
            assert response.status_code == 404, path
            assert "secret plan" not in response.text
        assert cb.post(f"/datasets/{dataset_id}/uses", json={"consumer": "x"}).status_code == 404
        assert all(d["id"] != dataset_id for d in cb.get("/datasets").json())
        empty = cb.post("/datasets/create", json={"name": "steal", "kind": "sft", "filters": {"tags": ["iso"]}})
        assert empty.status_code == 422
        assert all(r["tenant_id"] == b["tenant_id"] for r in cb.get("/audit").json())


def test_event_ids_do_not_leak_across_tenants(live_server, two_tenants):
    a, b, _ = two_tenants
    event = {"event_id": str(uuid.uuid4()), "kind": "metadata", "payload": {"n": 1}}
    with live_server.client(a["api_key"]) as ca, live_server.client(b["api_key"]) as cb:
        assert ca.post("/events", json=event).json()["results"][0]["status"] == "accepted"
        # B is not told that A holds this id: its own copy is accepted.
        assert cb.post("/events", json=event).json()["results"][0]["status"] == "accepted"
        assert cb.post("/events", json=event).json()["results"][0]["status"] == "duplicate"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("admin", {"events", "datasets_create", "datasets_read", "audit", "keys"}),
        ("researcher", {"events", "datasets_create", "datasets_read"}),
        ("operator", {"events", "datasets_read"}),
        ("labeler", {"datasets_read"}),
        ("viewer", {"datasets_read"}),
    ],
)
def test_role_matrix(live_server, two_tenants, role, allowed):
    a, _, dataset_id = two_tenants
    key = a["api_key"] if role == "admin" else live_server.key(a["tenant_id"], role)
    calls = {
        "events": lambda c: c.post("/events", json={"kind": "metadata", "payload": {"role": role}}),
        "datasets_create": lambda c: c.post("/datasets/create", json={"name": f"m-{role}", "kind": "sft", "filters": {"tags": ["iso"]}}),
        "datasets_read": lambda c: c.get(f"/datasets/{dataset_id}"),
        "audit": lambda c: c.get("/audit"),
        "keys": lambda c: c.post("/keys", json={"role": "viewer"}),
    }
    with live_server.client(key) as client:
        assert client.get("/whoami").json()["role"] == role
        for name, call in calls.items():
            status = call(client).status_code
            if name in allowed:
                assert status in (200, 201), (role, name, status)
            else:
                assert status == 403, (role, name, status)


def test_mutations_are_audited(live_server):
    tenant = live_server.tenant(f"audit-{uuid.uuid4().hex[:6]}")
    with live_server.client(tenant["api_key"]) as admin:
        admin.post("/events", json={"kind": "metadata", "payload": {"x": 1}})
        created = admin.post("/keys", json={"role": "viewer", "name": "dash"}).json()
        with live_server.client(created["api_key"]) as viewer:
            assert viewer.post("/events", json={"kind": "metadata", "payload": {}}).status_code == 403
        assert admin.delete(f"/keys/{created['key_id']}").status_code == 204
        with live_server.client(created["api_key"]) as revoked:
            assert revoked.get("/whoami").status_code == 401
        records = admin.get("/audit").json()
    by_action = {}
    for r in records:
        by_action.setdefault(r["action"], []).append(r)
    assert by_action["POST /events"][-1]["outcome"] == "ok"
    assert {r["outcome"] for r in by_action["POST /events"]} >= {"ok", "forbidden"}
    assert by_action["POST /keys"][0]["target"] == f"key:{created['key_id']}"
    assert by_action["DELETE /keys/{key_id}"][0]["target"] == f"key_id={created['key_id']}"
    assert "tenants create" in by_action
    for r in records:
        assert {"actor", "tenant_id", "action", "target", "outcome", "ts"} <= set(r)


def test_every_endpoint_with_an_id_hides_other_tenants_objects(live_server, two_tenants):
    """Walk the OpenAPI document: any path that takes an object id answers 404 for another tenant's."""
    a, b, dataset_id = two_tenants
    with live_server.client(a["api_key"]) as ca:
        key_id = ca.post("/keys", json={"role": "viewer"}).json()["key_id"]
    ids = {"dataset_id": dataset_id, "key_id": key_id, "run_id": a["run_id"], "scenario_id": a["scenario_id"],
           "name": a["plugin"], "model_id": a["model_id"], "agent_id": a["agent_id"], "session_id": a["session_id"],
           "deployment_id": "dep_probe", "report_id": "eval_probe", "job_id": "job_probe",
           "allocation_id": "alloc_probe"}
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    probed = 0
    with live_server.client(b["api_key"]) as cb:
        for path, methods in spec["paths"].items():
            params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
            if not params:
                continue
            assert set(params) <= set(ids), f"add an object of kind {params} to this test"
            url = path.format(**ids)
            for method in methods:
                body = {"consumer": "probe", "action": {"answer": "x"}, "checkpoint_id": "x", "stage": "staging",
                        "message": "hi"} if method == "post" else None
                response = cb.request(method.upper(), url, json=body)
                assert response.status_code == 404, (method, path, response.status_code)
                probed += 1
    assert probed >= 5
    with live_server.client(a["api_key"]) as ca:
        assert ca.get("/whoami").status_code == 200  # A's key survived B's DELETE attempt
