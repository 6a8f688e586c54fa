"""Rollouts in real sandboxed environments, driven by the scripted engine, and through the runtime
into the Data Factory."""

from __future__ import annotations

import json

import pytest

from workbench.agents import ChatRequest, ScriptedEngine
from workbench.agents.rollouts import load_tasks, run_rollouts

pytestmark = pytest.mark.integration


def oracle_engine(tasks, wrong: set[str] = frozenset()) -> ScriptedEngine:
    """Replies what each task's oracle does (a wrong answer for tasks named in ``wrong``)."""
    by_problem = {t.instructions: t for t in tasks}

    def reply(request: ChatRequest) -> str:
        user = next(m["content"] for m in request.messages if m["role"] == "user")
        task = by_problem[user]
        call, answer = (a.to_dict() for a in task.oracle.actions)
        if not any(m["role"] == "assistant" for m in request.messages):
            return f"Let me compute.\n{json.dumps(call)}"
        return json.dumps({"answer": "-1" if task.name in wrong else answer["answer"]})

    return ScriptedEngine(reply_fn=reply)


def test_batched_rollout_judges_answers_and_tags_every_event() -> None:
    tasks = load_tasks("calculator", "train", limit=3)
    events: list[dict] = []
    batches = []
    report = run_rollouts(
        oracle_engine(tasks, wrong={tasks[1].name}), tasks, attempts=2, agent_version="calc@v3",
        tags=["rollout", "calculator", "train"], sink=events.extend, system_prompt="Be exact.", batch_size=4,
        progress=lambda done, total: batches.append((done, total)),
    )
    assert len(report.episodes) == 6 and report.successes == 4 and report.success_rate == pytest.approx(4 / 6, abs=1e-3)
    assert batches == [(4, 6), (6, 6)]
    assert report.steps == 12 and report.end_reasons == {"answer": 6} and report.steps_per_s > 0
    assert {e.status for e in report.episodes if e.task == tasks[1].name} == {"failure"}
    assert report.events == len(events)
    runs = {e["run_id"] for e in events}
    assert runs == {e.run_id for e in report.episodes}
    for event in events:
        assert event["agent_version"] == "calc@v3"
        assert {"rollout", "calculator", "train"} <= set(event["tags"])
    actions = [e for e in events if e["kind"] == "agent_action"]
    assert len(actions) == 12
    # The model's raw text is kept next to the parsed action, for training rows.
    calls = [a for a in actions if "tool" in a["payload"]]
    assert all(a["payload"]["text"].startswith("Let me compute.") for a in calls)
    assert sum(1 for e in events if e["kind"] == "reward") == 6


def test_sequential_and_batched_rollouts_agree() -> None:
    tasks = load_tasks("calculator", "test", limit=2)
    one = run_rollouts(oracle_engine(tasks), tasks, batch_size=1)
    many = run_rollouts(oracle_engine(tasks), tasks, batch_size=8)
    assert [e.success for e in one.episodes] == [e.success for e in many.episodes] == [True, True]


def test_an_episode_without_an_answer_leaves_its_run_unfinished() -> None:
    tasks = load_tasks("calculator", "train", limit=1)
    engine = ScriptedEngine.from_replies('{"tool": "calculator", "arguments": {"expression": "1+1"}}', cycle=True)
    report = run_rollouts(engine, tasks, max_steps=2)
    episode = report.episodes[0]
    assert (episode.end_reason, episode.success, episode.tool_calls) == ("max_steps", False, 2)


def test_rollout_of_a_registered_agent_lands_in_the_lake(services) -> None:
    from workbench.runtime import agents, serving
    from workbench.runtime._rollouts import rollout_agent
    from workbench.security.tenants import create_tenant

    tenant, _ = create_tenant(services.control, "rollouts")
    tasks = load_tasks("calculator", "train", limit=2)
    replies = []
    for task in tasks:
        call, answer = (a.to_dict() for a in task.oracle.actions)
        replies += [json.dumps(call), json.dumps(answer)]
    agent = agents.create_agent(services, tenant.id, {"name": "calc", "engine": {"kind": "scripted", "replies": replies}})
    try:
        report, ingested = rollout_agent(services, tenant.id, "calc", "calculator", "train", limit=2, batch_size=1)
    finally:
        serving.close()
    assert report.agent_version == agent.agent_version == "calc@v1"
    assert report.success_rate == 1.0 and ingested["accepted"] == report.events
    rows = services.lake.query_events(
        f"tenant_id = '{tenant.id}' AND agent_version = 'calc@v1'", ["kind", "tags", "run_id"]
    ).to_pylist()
    assert len(rows) == report.events
    assert all({"rollout", "calculator", "train"} <= set(r["tags"]) for r in rows)
