"""The Environment Factory over real HTTP: scenarios, runs, steps, traces, replay, events, isolation."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration

ECHO_SCENARIO = {
    "name": "echo-check",
    "type": "text",
    "description": "Echo a word back.",
    "instructions": "Call echo with 'ping', then answer with what it returned.",
    "tools": [{"name": "echo", "description": "Echo.", "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                                                                      "required": ["text"]}, "handler": "echo"}],
    "checker": {"equals": {"value": "ping"}},
    "limits": {"max_steps": 4},
    "split": "test",
}


@pytest.fixture(scope="module")
def tenant(live_server):
    return live_server.tenant(f"env-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def client(live_server, tenant):
    with live_server.client(tenant["api_key"]) as c:
        yield c


def test_scenario_validation_and_versioning(client):
    bad = client.post("/scenarios", json=ECHO_SCENARIO | {"limits": {"max_steps": 0}})
    assert bad.status_code == 422 and bad.json()["field"] == "limits.max_steps"
    bad_type = client.post("/scenarios", json=ECHO_SCENARIO | {"type": "telepathy"})
    assert bad_type.status_code == 422 and bad_type.json()["field"] == "type"
    first = client.post("/scenarios", json=ECHO_SCENARIO).json()
    again = client.post("/scenarios", json=ECHO_SCENARIO).json()
    edited = client.post("/scenarios", json=ECHO_SCENARIO | {"description": "Echo a word back, edited."}).json()
    assert first["id"] == again["id"] and edited["id"] != first["id"] and edited["version"] != first["version"]
    assert client.get(f"/scenarios/{first['id']}").json()["version"] == first["version"]
    assert client.get("/scenarios/echo-check").json()["id"] == edited["id"]  # a name means its newest version
    assert {s["id"] for s in client.get("/scenarios").json()} >= {first["id"], edited["id"]}


def test_run_step_trace_replay_and_events(client):
    started = client.post("/runs", json={"scenario_id": "hello", "seed": 3, "agent_version": "tester@1"})
    assert started.status_code == 201, started.text
    run = started.json()
    assert "echo" in run["observation"] or run["tools"][0]["function"]["name"] == "echo"
    step = client.post(f"/runs/{run['run_id']}/step", json={"action": {"tool": "echo", "arguments": {"text": "hello"}}}).json()
    assert step["done"] is False and "hello" in step["observation"]
    bad = client.post(f"/runs/{run['run_id']}/step", json={"action": {"tool": "nope", "arguments": {}}}).json()
    assert bad["done"] is False
    final = client.post(f"/runs/{run['run_id']}/step", json={"action": {"answer": "hello"}}).json()
    assert final["done"] is True and final["reward"] == 1.0
    assert client.post(f"/runs/{run['run_id']}/step", json={"action": {"answer": "x"}}).status_code == 409

    info = client.get(f"/runs/{run['run_id']}").json()
    assert info["status"] == "success" and info["steps"] == 3 and info["scenario_id"] == run["scenario_id"]
    trace = client.get(f"/runs/{run['run_id']}/trace").json()
    assert [s["step"] for s in trace["steps"]] == sorted(s["step"] for s in trace["steps"])
    assert all("duration_ms" in s for s in trace["steps"])
    assert client.post(f"/runs/{run['run_id']}/replay").json()["identical"] is True

    deadline = time.monotonic() + 20
    while True:
        made = client.post("/datasets/create", json={"name": f"run-{run['run_id']}", "kind": "trajectories",
                                                     "filters": {"scenario_id": run["scenario_id"], "success": True}})
        if made.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert made.status_code == 201, made.text
    assert run["run_id"] in made.json()["lineage"]["runs"]
    assert made.json()["lineage"]["agent_versions"] == ["tester@1"]


def test_hostile_checker_ends_the_run_with_error_and_server_stays_healthy(client, live_server, tmp_path):
    hostile = tmp_path / "hostile_checker.py"
    hostile.write_text("def loop(ctx):\n    while True:\n        pass\n")
    spec = ECHO_SCENARIO | {"name": f"hostile-{uuid.uuid4().hex[:4]}", "checker": {"python": f"{hostile}:loop"},
                            "limits": {"max_steps": 3, "cpu_s": 1, "step_timeout_s": 3}}
    scenario = client.post("/scenarios", json=spec).json()
    run = client.post("/runs", json={"scenario_id": scenario["id"]}).json()
    final = client.post(f"/runs/{run['run_id']}/step", json={"action": {"answer": "ping"}}).json()
    assert final["done"] is True
    info = client.get(f"/runs/{run['run_id']}").json()
    assert info["status"] == "error" and info["reason"]
    assert httpx.get(f"{live_server.url}/healthz").json()["status"] == "ok"
    ok = client.post("/runs", json={"scenario_id": "hello"}).json()
    assert client.post(f"/runs/{ok['run_id']}/step", json={"action": {"answer": "hello"}}).status_code == 200


def test_runs_are_isolated_and_quota_limited(live_server, client):
    other = live_server.tenant(f"env-other-{uuid.uuid4().hex[:6]}")
    run = client.post("/runs", json={"scenario_id": "hello"}).json()
    with live_server.client(other["api_key"]) as intruder:
        for method, path in (("GET", f"/runs/{run['run_id']}"), ("GET", f"/runs/{run['run_id']}/trace"),
                             ("POST", f"/runs/{run['run_id']}/replay"), ("GET", f"/scenarios/{run['scenario_id']}")):
            assert intruder.request(method, path).status_code == 404, path
        assert intruder.post(f"/runs/{run['run_id']}/step", json={"action": {"answer": "x"}}).status_code == 404
        opened = [intruder.post("/runs", json={"scenario_id": "hello"}) for _ in range(5)]
        assert [r.status_code for r in opened[:4]] == [201] * 4
        assert opened[4].status_code == 429 and "concurrent runs" in opened[4].json()["detail"]
