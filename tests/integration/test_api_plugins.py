"""POST /plugins over real HTTP: admins register an MCP server, tools are discovered, others see 403/404."""

from __future__ import annotations

import uuid

import pytest

from tests.api_fixtures import toolbox_spec

pytestmark = pytest.mark.integration


def test_register_list_show_and_permissions(live_server, tmp_path):
    tenant = live_server.tenant(f"plug-{uuid.uuid4().hex[:6]}")
    researcher = live_server.key(tenant["tenant_id"], "researcher")
    with live_server.client(tenant["api_key"]) as admin, live_server.client(researcher) as res:
        assert res.post("/plugins", json=toolbox_spec("toolbox", tmp_dir=str(tmp_path))).status_code == 403
        created = admin.post("/plugins", json=toolbox_spec("toolbox", tmp_dir=str(tmp_path)))
        assert created.status_code == 201, created.text
        tools = {t["name"] for t in created.json()["tools"]}
        assert {"calculator", "kv_get", "kv_set", "kv_list"} <= tools
        assert admin.post("/plugins", json=toolbox_spec("toolbox", tmp_dir=str(tmp_path))).status_code == 409
        broken = admin.post("/plugins", json=toolbox_spec("broken") | {"transport": {"command": ["/no/such/binary"]}})
        assert broken.status_code == 422 and broken.json()["field"] == "transport"
        bad_scope = admin.post("/plugins", json=toolbox_spec("scoped", tmp_dir=str(tmp_path)) | {"scopes": {"x": ["nope"]}})
        assert bad_scope.status_code == 422 and bad_scope.json()["field"].startswith("scopes")
        assert [p["name"] for p in res.get("/plugins").json()] == ["toolbox"]
        assert res.get("/plugins/toolbox").json()["version"] == "1.0.0"
    other = live_server.tenant(f"plug-other-{uuid.uuid4().hex[:6]}")
    with live_server.client(other["api_key"]) as intruder:
        assert intruder.get("/plugins/toolbox").status_code == 404
        assert intruder.get("/plugins").json() == []
