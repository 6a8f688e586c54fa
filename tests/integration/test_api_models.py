"""Model registry over real HTTP: checkpoints, the promotion gate (409), admin override, rollback."""

from __future__ import annotations

import uuid

import pytest

from tests.api_fixtures import seed_models

pytestmark = pytest.mark.integration


def test_promotion_gate_override_and_rollback(live_server):
    tenant = live_server.tenant(f"models-{uuid.uuid4().hex[:6]}")
    model_id, v1, v2 = seed_models(live_server.home, tenant["tenant_id"])
    researcher = live_server.key(tenant["tenant_id"], "researcher")
    viewer = live_server.key(tenant["tenant_id"], "viewer")
    with live_server.client(researcher) as res, live_server.client(tenant["api_key"]) as admin, live_server.client(viewer) as view:
        assert [c["version"] for c in view.get(f"/models/{model_id}/checkpoints").json()] == [2, 1]
        assert view.post(f"/models/{model_id}/promote", json={"checkpoint_id": v1, "stage": "production"}).status_code == 403
        assert res.post(f"/models/{model_id}/promote", json={"checkpoint_id": v1, "stage": "production"}).status_code == 200
        worse = res.post(f"/models/{model_id}/promote", json={"checkpoint_id": v2, "stage": "production"})
        assert worse.status_code == 409 and "below production" in worse.json()["detail"]
        forced = res.post(f"/models/{model_id}/promote", json={"checkpoint_id": v2, "stage": "production", "override": True})
        assert forced.status_code == 409 and "only admins" in forced.json()["detail"]
        ok = admin.post(f"/models/{model_id}/promote",
                        json={"checkpoint_id": v2, "stage": "production", "override": True, "reason": "hotfix"})
        assert ok.status_code == 200 and ok.json()["previous_production"] == v1
        assert admin.get(f"/models/{model_id}").json()["production_checkpoint_id"] == v2
        assert res.post(f"/models/{model_id}/rollback").json()["checkpoint_id"] == v1
        audit = admin.get("/audit", params={"action": "POST /models/{model_id}/promote"}).json()
        assert {r["outcome"] for r in audit} >= {"ok", "conflict", "forbidden"}
        assert any(r["detail"].get("override") for r in audit if r["outcome"] == "ok")
