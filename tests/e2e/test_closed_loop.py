"""The acceptance criteria, end to end, through the REST API of a running server.

A scenario is created; an agent executes it and produces a trajectory; its events are in the Data
Factory; a training job runs and produces a checkpoint; eval gives a success rate; the model is
promoted and deployed, and a user calls the agent through a session.
"""

from __future__ import annotations

import time

import pytest

import workbench.envs as envs
from tests.conftest import LiveServer

pytestmark = pytest.mark.integration

EXAMPLES = {"calculator": [
    {"question": "What is 2 plus 3?", "arguments": {"expression": "2 + 3"}, "result": "5", "answer": "5"},
    {"question": "What is 7 times 6?", "arguments": {"expression": "7 * 6"}, "result": "42", "answer": "42"},
]}


def _poll(client, path: str, done, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(1)


def test_the_closed_loop_over_rest(tmp_path, models_dir):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for model in models_dir.iterdir():  # reuse the session's converted base model
        (home / "models" / model.name).symlink_to(model.resolve())
    server = LiveServer(home, {"WORKBENCH_SERVING_ENGINE": "transformers"}).start()
    try:
        tenant = server.tenant("e2e")
        with server.client(tenant["api_key"]) as api:
            # 1. a scenario is created
            spec = envs.find_scenario("calculator-test-0002").spec()
            scenario = api.post("/scenarios", json=spec | {"name": "e2e-multiply"})
            assert scenario.status_code == 201, scenario.text
            scenario_id = scenario.json()["id"]

            # 2. an agent executes it and produces a trajectory
            agent = api.post("/agents", json={"name": "e2e-agent", "tool_examples": EXAMPLES,
                                              "generation": {"max_new_tokens": 48, "max_steps": 3}}).json()
            started = api.post("/eval/run", json={"agent": agent["id"], "scenarios": {"scenario": scenario_id},
                                                  "attempts": 2, "max_new_tokens": 48, "max_steps": 3,
                                                  "tool_examples": EXAMPLES})
            assert started.status_code == 202, started.text
            before = _poll(api, f"/eval/{started.json()['id']}/results", lambda r: r["status"] != "running")
            assert before["status"] == "done" and len(before["results"]) == 2
            assert all(r["run_id"] for r in before["results"])

            # 3. its events are in the Data Factory
            trajectories = api.post("/datasets/create", json={
                "name": "e2e-trajectories", "kind": "trajectories", "filters": {"agent_version": agent["id"]}})
            assert trajectories.status_code == 201, trajectories.text
            assert trajectories.json()["rows"] == 2
            sft = api.post("/datasets/create", json={"name": "e2e-sft", "kind": "sft",
                                                     "filters": {"agent_version": agent["id"]}}).json()

            # 4. a training job runs and produces a checkpoint
            job = api.post("/train/jobs", json={"algorithm": "sft", "dataset_ref": sft["id"], "model_name": "e2e-policy",
                                                "hyperparams": {"max_steps": 2, "num_threads": 1}}).json()
            job = _poll(api, f"/train/jobs/{job['id']}", lambda j: j["status"] in ("succeeded", "failed"))
            assert job["status"] == "succeeded", job
            checkpoint = job["result"]["checkpoint_id"]
            assert [c["id"] for c in api.get("/models/e2e-policy/checkpoints").json()] == [checkpoint]

            # 5. eval gives a success rate
            run = api.post("/eval/run", json={"model": {"ref": "e2e-policy", "checkpoint": checkpoint},
                                              "scenarios": {"scenario": scenario_id}, "max_new_tokens": 48,
                                              "max_steps": 3}).json()
            after = _poll(api, f"/eval/{run['id']}/results", lambda r: r["status"] != "running")
            assert after["status"] == "done" and 0.0 <= after["summary"]["success_rate"] <= 1.0
            assert after["summary"]["ci_low"] <= after["summary"]["success_rate"] <= after["summary"]["ci_high"]

            # 6. the model is promoted and deployed, and a user calls the agent
            promoted = api.post("/models/e2e-policy/promote", json={"checkpoint_id": checkpoint, "stage": "production"})
            assert promoted.status_code == 200, promoted.text
            deployment = api.post("/deployments", json={"model": "e2e-policy", "wait": True}).json()
            assert deployment["status"] == "ready", deployment
            served = api.post("/agents", json={"name": "e2e-agent", "model": {"ref": "e2e-policy"},
                                               "generation": {"max_new_tokens": 32, "max_steps": 2}}).json()
            assert served["version"] == 2
            session = api.post(f"/agents/{served['id']}/sessions").json()
            reply = api.post(f"/agents/{served['id']}/sessions/{session['session_id']}/step",
                             json={"message": "What is 3 times 4?"})
            assert reply.status_code == 200, reply.text
            assert reply.json()["reply"].strip() and reply.json()["latency_ms"] > 0
    finally:
        server.stop()
