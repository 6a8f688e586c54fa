"""Events → training rows (what the dataset builders write)."""

import json

from workbench.data.conversion import RunEvents, preference_rows, rl_prompt_rows, sft_rows, to_messages, trajectory_rows


def _e(kind, step, payload, **extra):
    return {"event_id": f"{kind}-{step}", "kind": kind, "step": step, "payload": json.dumps(payload), "ts": step,
            "reward": extra.get("reward"), "tags": []}


def _run(answer_ok: bool, key: str):
    return [
        _e("metadata", 0, {"event": "run_started", "tools": [{"type": "function", "function": {"name": "calculator"}}]}),
        _e("environment_observation", 0, {"observation": "What is 6*7?", "step_kind": "reset"}),
        _e("agent_action", 1, {"tool": "calculator", "arguments": {"expression": "6*7"}, "text": '{"tool": "calculator"}'}),
        _e("tool_call", 1, {"name": "calculator", "arguments": {"expression": "6*7"}, "id": "c1"}),
        _e("tool_result", 1, {"name": "calculator", "content": "42", "id": "c1"}),
        _e("environment_observation", 1, {"observation": "42", "step_kind": "tool"}),
        _e("agent_action", 2, {"answer": 42 if answer_ok else 41}),
        _e("environment_observation", 2, {"observation": "[run finished: success]", "step_kind": "answer"}),
        _e("reward", 2, {"success": answer_ok}, reward=float(answer_ok)),
    ]


def test_tool_calls_attach_to_the_assistant_turn_and_repeats_are_dropped():
    messages = to_messages(_run(True, "r1"))
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1]["tool_calls"]
    assert len(call) == 1 and json.loads(call[0]["function"]["arguments"]) == {"expression": "6*7"}
    assert messages[1]["content"] == '{"tool": "calculator"}'
    assert messages[2] == {"role": "tool", "content": "42", "name": "calculator", "tool_call_id": "c1", "tool_calls": None}
    assert messages[3]["content"] == "42"


def test_new_information_in_an_observation_stays_a_user_turn():
    events = _run(True, "r1")
    events[5] = _e("environment_observation", 1, {"observation": "page: Thanks, form sent", "step_kind": "tool"})
    assert [m["role"] for m in to_messages(events)] == ["user", "assistant", "tool", "user", "assistant"]


def test_rows_of_every_kind():
    good = RunEvents("r1", _run(True, "r1"), success=True, reward=1.0, meta={"scenario_id": "s", "run_id": "r1"})
    bad = RunEvents("r2", _run(False, "r2"), success=False, reward=0.0, meta={"scenario_id": "s", "run_id": "r2"})
    rows = sft_rows([good, bad])
    assert len(rows) == 2 and json.loads(rows[0]["tools"])[0]["function"]["name"] == "calculator"
    (pair,) = preference_rows([good, bad])
    assert pair["chosen_run_id"] == "r1" and pair["rejected_run_id"] == "r2"
    assert [m["role"] for m in pair["prompt"]] == ["user"] and pair["chosen"][-1]["content"] == "42"
    (prompt,) = rl_prompt_rows([good, bad])
    assert prompt["run_ids"] == ["r1", "r2"]
    traj = trajectory_rows([good])[0]
    assert traj["num_steps"] == 3 and traj["success"] is True and len(traj["steps"]) == 9
