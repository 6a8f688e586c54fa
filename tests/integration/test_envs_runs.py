"""Runs of text, api and gym scenarios end to end: steps, limits, events, traces, oracles, replay."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

import workbench.envs as envs

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
EVENT_KEYS = {"event_id", "kind", "ts", "run_id", "env_id", "scenario_id", "agent_version", "step", "payload", "tags"}


@pytest.fixture(scope="module")
def hello() -> envs.Scenario:
    return envs.load_scenario(SCENARIOS / "hello.yaml")


@pytest.fixture(scope="module")
def test_splits() -> dict[str, list[envs.Scenario]]:
    return {name: envs.load_family(SCENARIOS / f"{name}.yaml").generate("test") for name in ("calculator", "inventory")}


def text_scenario(**changes) -> envs.Scenario:
    spec = {
        "name": "counter",
        "type": "api",
        "instructions": "Increment the counter to 2, then answer done.",
        "initial_state": {"counter": 0},
        "tools": [
            {"name": "get", "parameters": {"type": "object", "properties": {"key": {"type": "string"}},
                                           "required": ["key"]}, "handler": "state_get"},
            {"name": "set", "parameters": {"type": "object", "properties": {"key": {"type": "string"}, "value": {}},
                                           "required": ["key", "value"]}, "handler": "state_set"},
        ],
        "checker": {"state": {"path": "counter", "op": "==", "value": 2}},
    }
    spec.update(changes)
    return envs.parse_scenario(spec)


def test_hello_plumbing(hello):
    env = envs.make(hello, seed=1, run_id="run-1", agent_version="v0")
    obs, info = env.reset()
    assert obs == hello.instructions and info["status"] == "running" and info["run_id"] == "run-1"
    obs, reward, terminated, truncated, info = env.step({"tool": "echo", "arguments": {"text": "hello"}})
    assert (obs, reward, terminated, truncated) == ("hello", 0.0, False, False)
    obs, reward, terminated, truncated, info = env.step({"answer": "hello"})
    assert terminated and not truncated and reward == 1.0
    assert info["status"] == "success" and info["success"] is True
    assert env.result.status == "success" and env.result.steps == 2 and env.result.tool_calls == 1
    with pytest.raises(envs.RunFinished):
        env.step({"answer": "again"})
    env.close()


def test_step_before_reset_is_refused(hello):
    with pytest.raises(envs.RunNotStarted):
        envs.make(hello).step({"answer": "x"})


def test_events_reach_a_list_sink_with_the_wire_schema(hello):
    events: list[dict] = []
    batches: list[int] = []

    def sink(batch):
        batches.append(len(batch))
        events.extend(batch)

    env = envs.make(hello, seed=3, sink=sink, run_id="r-events", agent_version="agent-7")
    env.reset()
    env.step({"tool": "echo", "arguments": {"text": "hello"}})
    env.step({"answer": "hello"})
    env.close()
    assert len(batches) == 3  # one batch per reset and per step
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "metadata", "environment_observation",
        "agent_action", "tool_call", "tool_result", "environment_observation",
        "agent_action", "environment_observation", "reward",
    ]
    for event in events:
        assert EVENT_KEYS <= set(event) and set(event) <= EVENT_KEYS | {"reward"}
        uuid.UUID(event["event_id"])
        assert datetime.fromisoformat(event["ts"]).utcoffset().total_seconds() == 0
        assert event["run_id"] == "r-events" and event["scenario_id"] == "hello"
        assert event["agent_version"] == "agent-7" and event["env_id"] == "text/hello"
        assert isinstance(event["payload"], dict) and isinstance(event["step"], int)
        assert "split:test" in event["tags"] and "smoke" in event["tags"]
        assert ("reward" in event) == (event["kind"] == "reward")
    assert events[1]["payload"]["instructions"] == hello.instructions
    assert events[1]["payload"]["observation"].startswith(hello.instructions)
    assert events[2]["payload"] == {"tool": "echo", "arguments": {"text": "hello"}}
    assert events[3]["payload"]["name"] == "echo" and events[3]["payload"]["arguments"] == {"text": "hello"}
    assert events[4]["payload"]["content"] == "hello" and events[4]["payload"]["id"] == events[3]["payload"]["id"]
    assert events[6]["payload"] == {"answer": "hello"}
    outcome = events[-1]
    assert outcome["reward"] == 1.0 and outcome["step"] == 2
    assert outcome["payload"]["success"] is True and outcome["payload"]["status"] == "success"
    assert outcome["payload"]["score"] == 1.0 and outcome["payload"]["reason"]
    # the Data Factory's schema accepts every event as is
    schema = pytest.importorskip("workbench.data.schema")
    for index, event in enumerate(events):
        assert isinstance(schema.parse_event(index, event), schema.EventIn)


def test_failing_sink_keeps_events_for_the_next_step(hello):
    calls = {"n": 0}
    received: list[dict] = []

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("ingest down")
        received.extend(batch)

    env = envs.make(hello, sink=flaky)
    _, info = env.reset()
    assert info["events_pending"] == 2
    env.step({"answer": "hello"})
    assert env.pending_events == 0
    assert [e["kind"] for e in received][:2] == ["metadata", "environment_observation"]
    env.close()


def test_no_sink_emits_nothing(hello):
    env = envs.make(hello, sink=None)
    env.reset()
    env.step({"answer": "hello"})
    assert env.pending_events == 0
    env.close()


def test_trace_has_ordered_steps_with_timings(hello):
    env = envs.make(hello, seed=5)
    env.reset()
    env.step({"tool": "echo", "arguments": {"text": "hello"}})
    env.step({"answer": "nope"})
    trace = env.trace()
    env.close()
    assert trace["status"] == "failure" and trace["success"] is False and trace["score"] == 0.0
    assert trace["scenario_version"] == hello.version and trace["seed"] == 5
    assert [s["step"] for s in trace["steps"]] == [0, 1, 2]
    for step in trace["steps"]:
        assert step["duration_ms"] >= 0 and step["t_ms"] >= 0
    assert trace["steps"][1]["tool_calls"][0]["name"] == "echo"
    assert trace["steps"][1]["tool_calls"][0]["content"] == "hello"
    assert trace["steps"][2]["action"] == {"answer": "nope"}
    assert "hello" not in trace["steps"][2]["observation"]  # the final observation does not leak the expected answer
    import json

    json.dumps(trace)  # plain data


def test_bad_actions_become_observations(hello):
    env = envs.make(hello)
    env.reset()
    obs, *_ = env.step("not json")
    assert obs.startswith("error: invalid action")
    obs, *_ = env.step({"tool": "nope", "arguments": {}})
    assert "unknown tool 'nope'" in obs and "echo" in obs
    obs, *_, info = env.step({"tool": "echo", "arguments": {"txt": "x"}})
    assert obs == "error: invalid arguments for echo: text: required" and info["status"] == "running"
    obs, _, _, truncated, info = env.step(42)
    assert obs.startswith("error: invalid action: an action must be an object")
    assert truncated and info["status"] == "failure" and info["reason"] == "max_steps=4 reached without success"
    assert envs.replay(env.trace())["identical"]  # invalid actions replay too
    env.close()


def test_limits_end_runs_with_clear_reasons():
    scenario = text_scenario(limits={"max_steps": 3})
    env = envs.make(scenario)
    env.reset()
    env.step({"tool": "get", "arguments": {"key": "counter"}})
    env.step({"tool": "get", "arguments": {"key": "counter"}})
    _, _, terminated, truncated, info = env.step({"tool": "get", "arguments": {"key": "counter"}})
    assert truncated and not terminated and info["status"] == "failure"
    assert info["reason"] == "max_steps=3 reached without success"
    env.close()

    env = envs.make(text_scenario(limits={"max_tool_calls": 1}))
    env.reset()
    env.step({"tool": "get", "arguments": {"key": "counter"}})
    _, _, _, truncated, info = env.step({"tool": "get", "arguments": {"key": "counter"}})
    assert truncated and info["reason"] == "max_tool_calls=1 reached"
    env.close()

    env = envs.make(text_scenario(limits={"run_timeout_s": 0.2}))
    env.reset()
    time.sleep(0.3)
    _, _, _, truncated, info = env.step({"tool": "get", "arguments": {"key": "counter"}})
    assert truncated and info["status"] == "timeout" and "run_timeout_s=0.2" in info["reason"]
    env.close()


def test_state_persists_across_steps_and_check_on_step_ends_early():
    env = envs.make(text_scenario(check_on="step"))
    env.reset()
    env.step({"tool": "set", "arguments": {"key": "counter", "value": 1}})
    assert not env.done and env.state["counter"] == 1
    obs, reward, terminated, _, info = env.step({"tool": "set", "arguments": {"key": "counter", "value": 2}})
    assert terminated and reward == 1.0 and info["status"] == "success"
    assert obs.endswith("[run finished: success]")
    env.close()


def test_tool_exceptions_are_shown_and_the_run_goes_on():
    spec = text_scenario().spec()
    spec["tools"][0]["handler"] = "inventory.get_item"
    spec["tools"][0]["parameters"] = {"type": "object", "properties": {"sku": {"type": "string"}}}
    env = envs.make(spec)
    env.reset()
    obs, *_, info = env.step({"tool": "get", "arguments": {"sku": "nope"}})
    assert obs.startswith("error: InventoryError: unknown sku 'nope'") and info["status"] == "running"
    env.close()


def test_sandbox_worker_is_reused_across_steps():
    env = envs.make(text_scenario())
    env.reset()
    env.step({"tool": "get", "arguments": {"key": "counter"}})
    pid = env._sandbox.pid
    for _ in range(3):
        env.step({"tool": "get", "arguments": {"key": "counter"}})
    assert env._sandbox.pid == pid and env._sandbox.calls == 4
    env.close()


def test_reset_starts_a_new_run(hello):
    env = envs.make(hello, seed=10, run_id="first")
    env.reset()
    env.step({"answer": "hello"})
    _, info = env.reset()
    assert info["run_id"] != "first" and env.seed == 11 and not env.done
    env.close()


def test_unknown_handler_fails_at_make():
    from workbench.errors import ValidationFailed

    spec = text_scenario().spec()
    spec["tools"][0]["handler"] = "nowhere"
    with pytest.raises(ValidationFailed) as info:
        envs.make(spec)
    assert info.value.field == "tools.0.handler"


@pytest.mark.parametrize("family", ["calculator", "inventory"])
def test_oracle_solves_every_test_task(family, test_splits):
    failures = [
        (task.name, trace["reason"])
        for task in test_splits[family]
        for trace in [envs.run_episode(task, "oracle")]
        if not trace["success"]
    ]
    assert failures == []


@pytest.mark.parametrize("family", ["calculator", "inventory"])
def test_random_policy_scores_low_and_replays_identically(family, test_splits):
    traces = [envs.run_episode(task, "random", seed=i) for i, task in enumerate(test_splits[family][:20])]
    assert sum(t["success"] for t in traces) / len(traces) <= 0.15
    assert sum(len(t["steps"]) for t in traces) > len(traces) * 1.5  # they do act, not only answer
    results = [envs.replay(trace) for trace in traces]
    assert all(r["identical"] for r in results), [r["first_divergence"] for r in results if not r["identical"]]


def test_replay_reports_the_first_divergence(test_splits):
    trace = envs.run_episode(test_splits["inventory"][0], "oracle")
    tampered = {**trace, "steps": [dict(s) for s in trace["steps"]]}
    tampered["steps"][1]["observation"] = tampered["steps"][1]["observation"].replace('"stock"', '"stok"')
    result = envs.replay(tampered)
    assert not result["identical"]
    divergence = result["first_divergence"]
    assert divergence["step"] == 1 and divergence["field"] == "observation"
    assert '"stok"' in divergence["expected"] and '"stock"' in divergence["actual"]
    assert divergence["diff"].startswith("--- recorded")
    edited = {**trace, "scenario": {**trace["scenario"], "instructions": "something else"}}
    assert envs.replay(edited)["first_divergence"]["field"] == "scenario_version"


def test_gym_frozenlake_oracle_random_and_replay():
    scenario = envs.load_scenario(SCENARIOS / "frozenlake.yaml")
    trace = envs.run_episode(scenario, "oracle")
    assert trace["success"] and trace["final_state"]["total_reward"] == 1.0
    assert "[S]FFF" in trace["steps"][0]["observation"]  # text map with the position marked
    traces = [envs.run_episode(scenario, "random", seed=i) for i in range(20)]
    assert sum(t["success"] for t in traces) <= 3
    assert all(envs.replay(t)["identical"] for t in traces)


def test_gym_cartpole_with_a_policy_oracle_and_a_rule_checker():
    scenario = envs.load_scenario(SCENARIOS / "cartpole.yaml")
    trace = envs.run_episode(scenario, "oracle", seed=3)
    assert trace["success"] and trace["reason"].startswith("state.total_reward is 100")
    env = envs.make(scenario)
    env.reset()
    obs, reward, *_ = env.step({"tool": "act", "arguments": {"action": "right"}})
    assert reward == 1.0 and "observation: [" in obs
    obs, *_ = env.step({"tool": "act", "arguments": {"action": 7}})
    assert obs == "error: invalid arguments for act: action: must be <= 1"
    obs, *_ = env.step({"tool": "act", "arguments": {"action": "jump"}})
    assert obs.startswith("error: invalid action: expected an integer from 0 to 1 or one of left, right")
    env.close()


def test_gym_continuous_actions():
    scenario = envs.parse_scenario(
        {"name": "pendulum", "type": "gym", "instructions": "Swing up.", "gym": {"id": "Pendulum-v1"},
         "limits": {"max_steps": 6}}
    )
    env = envs.make(scenario, seed=2)
    obs, _ = env.reset()
    assert "action space: Box(-2.0, 2.0, (1,), float32)" in obs
    schema = env.tool_schemas()[0]["function"]["parameters"]["properties"]["action"]
    assert schema["items"] == {"type": "number", "minimum": -2.0, "maximum": 2.0}
    _, reward, *_ = env.step({"tool": "act", "arguments": {"action": [0.5]}})
    assert reward < 0
    obs, *_ = env.step({"tool": "act", "arguments": {"action": "1.5"}})
    assert obs.startswith("observation: [")
    obs, *_ = env.step({"tool": "act", "arguments": {"action": "left"}})
    assert obs.startswith("error: invalid action: expected 1 number, got 0")
    env.close()
    traces = [envs.run_episode(scenario, "random", seed=i) for i in range(5)]
    assert all(envs.replay(t)["identical"] for t in traces)


def test_mcp_server_tools(tmp_path):
    server = tmp_path / "server.py"
    server.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "app = MCPServer('demo')\n"
        "@app.tool()\n"
        "def add(a: int, b: int) -> int:\n"
        "    '''Add two numbers.'''\n"
        "    return a + b\n"
        "app.run()\n"
    )
    scenario = envs.parse_scenario({
        "name": "mcp-add", "type": "api", "instructions": "Add 2 and 3 with the add tool.",
        "tools": [{"mcp": {"name": "demo", "command": [sys.executable, str(server)]}}],
        "checker": {"equals": {"value": 5}},
    })
    env = envs.make(scenario)
    env.reset()
    assert [t["function"]["name"] for t in env.tool_schemas()] == ["add"]
    obs, *_ = env.step({"tool": "add", "arguments": {"a": 2, "b": 3}})
    assert obs == "5"
    env.step({"answer": "5"})
    trace = env.trace()
    env.close()
    assert trace["status"] == "success"
    assert trace["recorded"]["mcp"]["calls"] == [{"name": "add", "content": "5"}]
    assert envs.replay(trace)["identical"]  # answered from the recording, no server started


def test_quota_limits_concurrent_runs_per_tenant():
    quota = envs.RunQuota(default=2, limits={"big": 3})
    quota.acquire("t1", "a")
    quota.acquire("t1", "b")
    quota.acquire("t1", "b")  # same run twice is fine
    with pytest.raises(envs.QuotaExceeded) as info:
        quota.acquire("t1", "c")
    assert info.value.status_code == 429 and "t1" in str(info.value)
    quota.acquire("t2", "c")  # other tenants are unaffected
    quota.release("t1", "a")
    with quota.slot("t1", "c"):
        assert quota.active("t1") == 2
    assert quota.active("t1") == 1
    assert quota.limit("big") == 3


def test_the_readme_example_scenario_runs(tmp_path):
    import re

    readme = (SCENARIOS / "README.md").read_text()
    blocks = re.findall(r"```(yaml|python)\n(.*?)```", readme, re.S)
    spec = next(body for kind, body in blocks if kind == "yaml" and "name: refund-check" in body)
    tools = next(body for kind, body in blocks if kind == "python" and "def refund" in body)
    (tmp_path / "refund.yaml").write_text(spec)
    (tmp_path / "shop_tools.py").write_text(tools)
    assert envs.validate_file(tmp_path / "refund.yaml") == []
    scenario = envs.load_scenario(tmp_path / "refund.yaml")
    trace = envs.run_episode(scenario, "oracle")
    assert trace["success"], trace["reason"]
    env = envs.make(scenario)
    env.reset()
    obs, *_ = env.step({"tool": "refund", "arguments": {"order_id": "B-1"}})
    assert obs == "error: ValueError: no order B-1"
    env.close()
