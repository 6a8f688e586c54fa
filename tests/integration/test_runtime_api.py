"""Agents and sessions over the real HTTP server, with scripted-engine agents and the shipped MCP
toolbox as their plugin: versioning, a step with tool calls, history, denied calls, events in the
Data Factory with PII redacted, metrics, roles and tenant isolation."""

from __future__ import annotations

import io
import json
import sys
import time
import uuid

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

CALL_CALC = json.dumps({"tool": "calculator", "arguments": {"expression": "6*7"}})
CALL_KV_SET = json.dumps({"tool": "kv_set", "arguments": {"key": "plan", "value": "secret"}})
TOOLBOX_PIN = {"name": "toolbox", "version": "1.0.0", "scopes": ["read"]}


def register_toolbox(home, tenant_id: str) -> None:
    """Register the shipped MCP toolbox (stdio) as plugin toolbox 1.0.0 in the server's home."""
    from workbench.config import Settings
    from workbench.runtime.plugins import register_plugin
    from workbench.services import Services

    services = Services(Settings(home=home))
    try:
        register_plugin(services, tenant_id, {
            "name": "toolbox", "version": "1.0.0",
            "transport": {"command": [sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox",
                                      "--store", str(home / f"kv-{tenant_id}.json")]},
            "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
        })
    finally:
        services.close()


@pytest.fixture(scope="module")
def tenant(live_server):
    created = live_server.tenant(f"runtime-{uuid.uuid4().hex[:8]}")
    register_toolbox(live_server.home, created["tenant_id"])
    return created


@pytest.fixture
def admin(live_server, tenant):
    with live_server.client(tenant["api_key"]) as client:
        yield client


def scripted_agent(client, replies: list[str], *, name: str | None = None, plugins=(), **extra) -> dict:
    spec = {"name": name or f"bot-{uuid.uuid4().hex[:6]}", "system_prompt": "You are a careful assistant.",
            "plugins": list(plugins), "engine": {"kind": "scripted", "replies": replies}, **extra}
    response = client.post("/agents", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def step(client, agent: dict, session_id: str, message: str) -> dict:
    response = client.post(f"/agents/{agent['id']}/sessions/{session_id}/step", json={"message": message})
    assert response.status_code == 200, response.text
    return response.json()


def new_session(client, agent: dict) -> str:
    response = client.post(f"/agents/{agent['id']}/sessions")
    assert response.status_code == 201, response.text
    assert response.json()["agent_version"] == agent["agent_version"]
    return response.json()["session_id"]


def test_agents_are_versioned_by_name(admin):
    name = f"helper-{uuid.uuid4().hex[:6]}"
    first = scripted_agent(admin, ['{"answer": "v1"}'], name=name)
    second = scripted_agent(admin, ['{"answer": "v2"}'], name=name, generation={"temperature": 0.5})
    assert (first["version"], second["version"]) == (1, 2)
    assert second["agent_version"] == f"{name}@v2" and first["id"] != second["id"]
    listed = admin.get("/agents", params={"name": name}).json()
    assert [a["version"] for a in listed] == [2, 1]
    shown = admin.get(f"/agents/{first['id']}").json()
    assert shown["spec"]["engine"]["replies"] == ['{"answer": "v1"}']
    assert shown["spec"]["generation"]["temperature"] == 0.0
    assert admin.get(f"/agents/{second['id']}").json()["spec"]["generation"]["temperature"] == 0.5


def test_invalid_agents_are_422_naming_the_field(admin):
    bad_name = admin.post("/agents", json={"name": "no spaces please"})
    assert bad_name.status_code == 422 and bad_name.json()["field"] == "name"
    bad_pin = admin.post("/agents", json={"name": "pinned", "plugins": [{**TOOLBOX_PIN, "version": "9.9.9"}],
                                          "engine": {"kind": "scripted", "replies": ["x"]}})
    assert bad_pin.status_code == 422 and bad_pin.json()["field"] == "plugins[0].version"
    assert "1.0.0" in bad_pin.json()["detail"]
    bad_scope = admin.post("/agents", json={"name": "pinned", "plugins": [{**TOOLBOX_PIN, "scopes": ["admin"]}],
                                            "engine": {"kind": "scripted", "replies": ["x"]}})
    assert bad_scope.status_code == 422 and bad_scope.json()["field"] == "plugins[0].scopes"
    bad_model = admin.post("/agents", json={"name": "m", "model": {"ref": "no-such-model"}})
    assert bad_model.status_code == 422 and bad_model.json()["field"] == "model.ref"
    bad_engine = admin.post("/agents", json={"name": "e", "engine": {"kind": "warp-drive"}})
    assert bad_engine.status_code == 422 and "warp-drive" in bad_engine.json()["detail"]


def test_a_step_calls_a_plugin_tool_and_is_kept_in_history(admin):
    agent = scripted_agent(admin, [CALL_CALC, '{"answer": "42"}'], plugins=[TOOLBOX_PIN])
    session_id = new_session(admin, agent)
    result = step(admin, agent, session_id, "What is 6 times 7?")
    assert result["reply"] == "42" and result["end_reason"] == "answer" and result["turn"] == 0
    assert result["latency_ms"] > 0 and result["steps"] == 2
    [call] = result["tool_calls"]
    assert call["name"] == "calculator" and call["arguments"] == {"expression": "6*7"}
    assert call["ok"] is True and call["content"] == "42" and call["plugin"] == "toolbox" and not call["denied"]

    history = admin.get(f"/agents/{agent['id']}/sessions/{session_id}/history").json()
    assert history["agent_version"] == agent["agent_version"]
    [turn] = history["turns"]
    assert turn["message"] == "What is 6 times 7?" and turn["reply"] == "42"
    assert turn["tool_calls"][0]["content"] == "42"
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert history["messages"][3]["content"] == "42"
    sessions = admin.get(f"/agents/{agent['id']}/sessions").json()
    assert [(s["session_id"], s["turns"]) for s in sessions] == [(session_id, 1)]


def test_denied_calls_are_tool_errors_and_safety_violations(admin, live_server):
    agent = scripted_agent(
        admin, [CALL_CALC, '{"answer": "42"}', CALL_KV_SET, '{"answer": "I may not store that."}'],
        plugins=[TOOLBOX_PIN],
    )
    session_id = new_session(admin, agent)
    step(admin, agent, session_id, "What is 6 times 7?")
    result = step(admin, agent, session_id, "Remember my plan.")
    assert result["turn"] == 1 and result["reply"] == "I may not store that."
    [call] = result["tool_calls"]
    assert call["denied"] is True and call["ok"] is False and "scope" in call["error"]

    metrics = admin.get(f"/agents/{agent['id']}/metrics").json()
    assert metrics["turns"] == 2 and metrics["sessions"] == 1
    assert metrics["latency_ms"]["p50"] > 0 and metrics["latency_ms"]["p95"] >= metrics["latency_ms"]["p50"]
    assert metrics["error_rate"] == 0.0 and metrics["end_reasons"] == {"answer": 2}
    assert metrics["tool_calls"] == 2 and metrics["tool_success_rate"] == 0.5
    assert metrics["tool_calls_per_plugin"] == {"toolbox": {"calls": 2, "ok": 1, "error": 0, "denied": 1}}
    assert metrics["safety_violations"] == 1
    assert metrics["completion_tokens"] > 0 and metrics["rss_bytes"] > 10_000_000

    exposition = admin.get("/metrics").text
    label = f'agent_id="{agent["id"]}"'
    assert f"workbench_agent_step_seconds_count{{{label}}} 2.0" in exposition
    assert f'workbench_agent_safety_violations_total{{{label},plugin="toolbox"}} 1.0' in exposition
    assert f'workbench_agent_tool_calls_total{{{label},outcome="ok",plugin="toolbox"}} 1.0' in exposition
    assert "process_resident_memory_bytes" in exposition


def test_turn_events_reach_the_data_factory_redacted(admin):
    agent = scripted_agent(admin, ['{"answer": "Noted. I will write to jane.roe@example.com today."}'])
    session_id = new_session(admin, agent)
    message = "Hi, I am Jane Roe. Reach me at jane.roe@example.com or +1 212-555-0188."
    step(admin, agent, session_id, message)
    # The conversation itself stays whole in the session (the model needs it) ...
    history = admin.get(f"/agents/{agent['id']}/sessions/{session_id}/history").json()
    assert history["turns"][0]["message"] == message
    # ... while the events are redacted before they are stored.
    spec = {"name": f"sessions-{uuid.uuid4().hex[:6]}", "kind": "sft",
            "filters": {"agent_version": agent["agent_version"]}, "output_format": "jsonl"}
    deadline = time.monotonic() + 60
    while (created := admin.post("/datasets/create", json=spec)).status_code == 422 and time.monotonic() < deadline:
        time.sleep(0.5)  # events are committed shortly after the reply
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["lineage"]["sessions"] == [session_id]
    assert dataset["lineage"]["agent_versions"] == [agent["agent_version"]]
    body = admin.get(f"/datasets/{dataset['id']}/download").text
    assert "jane.roe@example.com" not in body and "555-0188" not in body
    [row] = pd.read_json(io.StringIO(body), lines=True).to_dict("records")
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert "<EMAIL_ADDRESS>" in row["messages"][1]["content"] and "<PHONE_NUMBER>" in row["messages"][1]["content"]
    assert "<EMAIL_ADDRESS>" in row["messages"][2]["content"]


def test_another_tenants_agents_and_sessions_are_404(admin, live_server):
    agent = scripted_agent(admin, ['{"answer": "mine"}'])
    session_id = new_session(admin, agent)
    other = live_server.tenant(f"other-{uuid.uuid4().hex[:6]}")
    with live_server.client(other["api_key"]) as intruder:
        base = f"/agents/{agent['id']}"
        for method, path, body in [
            ("GET", base, None),
            ("GET", f"{base}/metrics", None),
            ("GET", f"{base}/sessions", None),
            ("POST", f"{base}/sessions", None),
            ("POST", f"{base}/sessions/{session_id}/step", {"message": "hello"}),
            ("POST", f"{base}/sessions/{session_id}/step", {"consumer": "probe"}),  # 404 whatever the body
            ("GET", f"{base}/sessions/{session_id}/history", None),
            ("GET", "/deployments/dep_not-theirs", None),
        ]:
            response = intruder.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.status_code)
            assert "mine" not in response.text
        assert all(a["id"] != agent["id"] for a in intruder.get("/agents").json())
    # A session is reached only through its own agent.
    sibling = scripted_agent(admin, ['{"answer": "x"}'])
    assert admin.get(f"/agents/{sibling['id']}/sessions/{session_id}/history").status_code == 404


def test_roles_gate_agents_and_sessions(admin, live_server, tenant):
    agent = scripted_agent(admin, ['{"answer": "ok"}'], name=f"gated-{uuid.uuid4().hex[:6]}")
    with live_server.client(live_server.key(tenant["tenant_id"], "viewer")) as viewer:
        assert viewer.get(f"/agents/{agent['id']}").status_code == 200
        assert viewer.get(f"/agents/{agent['id']}/metrics").status_code == 200
        assert viewer.post("/agents", json={"name": "nope"}).status_code == 403
        assert viewer.post(f"/agents/{agent['id']}/sessions").status_code == 403
    with live_server.client(live_server.key(tenant["tenant_id"], "operator")) as operator:
        session_id = new_session(operator, agent)
        assert step(operator, agent, session_id, "hi")["reply"] == "ok"


def test_a_failing_engine_is_502_and_counted(admin):
    agent = scripted_agent(admin, ['{"answer": "only one"}'])
    session_id = new_session(admin, agent)
    step(admin, agent, session_id, "first")
    failed = admin.post(f"/agents/{agent['id']}/sessions/{session_id}/step", json={"message": "second"})
    assert failed.status_code == 502 and "ran out of replies" in failed.json()["detail"]
    history = admin.get(f"/agents/{agent['id']}/sessions/{session_id}/history").json()
    assert [t["error"] is not None for t in history["turns"]] == [False, True]
    assert [m["role"] for m in history["messages"]] == ["system", "user", "assistant"]  # the failure is left out
    metrics = admin.get(f"/agents/{agent['id']}/metrics").json()
    assert metrics["errors"] == 1 and metrics["error_rate"] == 0.5
    empty = admin.post(f"/agents/{agent['id']}/sessions/{session_id}/step", json={"message": ""})
    assert empty.status_code == 422 and empty.json()["field"] == "message"
