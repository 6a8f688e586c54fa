"""Turn ordered events of one run (or session) into training rows.

SFT rows are chat ``messages`` that TRL's SFTTrainer takes as they are; preference rows are
``{prompt, chosen, rejected}`` in TRL's conversational format; rl_prompts rows hold a
``prompt`` for online RL; trajectory rows hold one run's ordered steps. Tool-call
``arguments`` are JSON strings so that every row has the same Arrow type.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

_TOOL_CALL = pa.struct(
    [("id", pa.string()), ("type", pa.string()), ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))]
)
MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("name", pa.string()),
        ("tool_call_id", pa.string()),
        ("tool_calls", pa.list_(_TOOL_CALL)),
    ]
)
MESSAGES = pa.list_(MESSAGE_TYPE)
STEP_TYPE = pa.struct(
    [
        ("event_id", pa.string()),
        ("step", pa.int64()),
        ("kind", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("payload", pa.string()),
        ("reward", pa.float64()),
        ("tags", pa.list_(pa.string())),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "sft": pa.schema(
        [("messages", MESSAGES), ("tools", pa.string()), ("run_id", pa.string()), ("scenario_id", pa.string()),
         ("agent_version", pa.string()), ("success", pa.bool_()), ("reward", pa.float64())]
    ),
    "preference": pa.schema(
        [("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES), ("tools", pa.string()), ("scenario_id", pa.string()),
         ("chosen_run_id", pa.string()), ("rejected_run_id", pa.string()),
         ("chosen_reward", pa.float64()), ("rejected_reward", pa.float64())]
    ),
    "rl_prompts": pa.schema(
        [("prompt", MESSAGES), ("tools", pa.string()), ("scenario_id", pa.string()), ("env_id", pa.string()),
         ("run_ids", pa.list_(pa.string()))]
    ),
    "trajectories": pa.schema(
        [("run_id", pa.string()), ("session_id", pa.string()), ("scenario_id", pa.string()), ("env_id", pa.string()),
         ("agent_version", pa.string()), ("success", pa.bool_()), ("total_reward", pa.float64()),
         ("num_steps", pa.int64()), ("steps", pa.list_(STEP_TYPE))]
    ),
}


@dataclass
class RunEvents:
    """The ordered events of one run or session, and its outcome."""

    key: str
    events: list[dict[str, Any]]
    success: bool | None = None
    reward: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _message(role: str, content: str = "", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "name": None, "tool_call_id": None, "tool_calls": None} | extra


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _tool_call(name: str, arguments: Any, call_id: str | None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False, sort_keys=True)
    return {"id": call_id, "type": "function", "function": {"name": str(name), "arguments": args}}


def to_messages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages from ordered events (see workbench.data.schema for payload conventions)."""
    messages: list[dict[str, Any]] = []
    last_assistant_step: dict[Any, dict[str, Any]] = {}
    for event in events:
        payload = json.loads(event["payload"]) if isinstance(event["payload"], str) else event["payload"]
        kind, step = event["kind"], event.get("step")
        if kind == "message":
            role = payload.get("role", "user")
            msg = _message(role, _text(payload.get("content", "")))
            if payload.get("tool_calls"):
                msg["tool_calls"] = [
                    _tool_call(c.get("function", c).get("name", ""), c.get("function", c).get("arguments"), c.get("id"))
                    for c in payload["tool_calls"]
                ]
            if role == "tool":
                msg["name"] = payload.get("name")
                msg["tool_call_id"] = payload.get("tool_call_id")
            messages.append(msg)
            if role == "assistant":
                last_assistant_step[step] = msg
        elif kind == "environment_observation":
            observation = _text(payload.get("observation", payload.get("text", payload)))
            if payload.get("step_kind") == "answer":
                continue  # the environment's verdict after the final answer is not a turn to learn from
            if messages and messages[-1]["role"] == "tool" and observation.startswith(messages[-1]["content"]):
                continue  # environments repeat the tool result as the observation: one turn is enough
            messages.append(_message("user", observation))
        elif kind == "agent_action":
            msg = _message("assistant", _text(payload["text"]) if "text" in payload else "")
            if "tool" in payload:
                msg["tool_calls"] = [_tool_call(payload["tool"], payload.get("arguments"), payload.get("id"))]
            elif "answer" in payload and "text" not in payload:
                msg["content"] = _text(payload["answer"])
            messages.append(msg)
            last_assistant_step[step] = msg
        elif kind == "tool_call":
            call = _tool_call(payload.get("name", payload.get("tool", "")), payload.get("arguments"), payload.get("id"))
            owner = last_assistant_step.get(step)
            if owner is None:
                owner = _message("assistant")
                messages.append(owner)
                last_assistant_step[step] = owner
            existing = owner["tool_calls"] or []
            if not any(c["function"] == call["function"] for c in existing):
                owner["tool_calls"] = existing + [call]
        elif kind == "tool_result":
            content = payload.get("content", payload.get("result", payload.get("output", "")))
            messages.append(
                _message("tool", _text(content), name=payload.get("name", payload.get("tool")), tool_call_id=payload.get("id"))
            )
    return messages


def tools_of(events: list[dict[str, Any]]) -> str | None:
    """The tools the agent was offered (JSON of OpenAI-format schemas), from the run's metadata event.

    Training renders them into the prompt exactly as the engines do at inference.
    """
    for event in events:
        if event["kind"] == "metadata":
            payload = json.loads(event["payload"]) if isinstance(event["payload"], str) else event["payload"]
            if payload.get("tools"):
                return json.dumps(payload["tools"], sort_keys=True)
    return None


def split_prompt(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt, completion): everything before the first assistant turn, and the rest."""
    for i, msg in enumerate(messages):
        if msg["role"] == "assistant":
            return messages[:i], messages[i:]
    return messages, []


def _prompt_key(scenario_id: str | None, prompt: list[dict[str, Any]]) -> str:
    text = json.dumps([scenario_id, [(m["role"], m["content"]) for m in prompt]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sft_rows(runs: list[RunEvents]) -> list[dict[str, Any]]:
    """One chat per run that has at least one assistant turn."""
    rows = []
    for run in runs:
        messages = to_messages(run.events)
        if any(m["role"] == "assistant" for m in messages):
            rows.append(
                {"messages": messages, "tools": tools_of(run.events), "run_id": run.key,
                 "scenario_id": run.meta.get("scenario_id"),
                 "agent_version": run.meta.get("agent_version"), "success": run.success, "reward": run.reward}
            )
    return rows


def preference_rows(runs: list[RunEvents], max_pairs_per_prompt: int = 4) -> list[dict[str, Any]]:
    """Pairs of runs with the same prompt: a better outcome (success, then reward) is chosen."""
    groups: dict[str, list[tuple[RunEvents, list, list]]] = {}
    for run in runs:
        prompt, completion = split_prompt(to_messages(run.events))
        if prompt and completion and (run.success is not None or run.reward is not None):
            groups.setdefault(_prompt_key(run.meta.get("scenario_id"), prompt), []).append((run, prompt, completion))
    rows = []
    for members in groups.values():
        ranked = sorted(members, key=lambda m: (bool(m[0].success), m[0].reward or 0.0), reverse=True)
        pairs = 0
        for better in ranked:
            for worse in reversed(ranked):
                if pairs >= max_pairs_per_prompt:
                    break
                b, w = better[0], worse[0]
                if (bool(b.success), b.reward or 0.0) > (bool(w.success), w.reward or 0.0):
                    rows.append(
                        {"prompt": better[1], "chosen": better[2], "rejected": worse[2], "tools": tools_of(b.events),
                         "scenario_id": b.meta.get("scenario_id"), "chosen_run_id": b.key, "rejected_run_id": w.key,
                         "chosen_reward": b.reward, "rejected_reward": w.reward}
                    )
                    pairs += 1
    return rows


def rl_prompt_rows(runs: list[RunEvents]) -> list[dict[str, Any]]:
    """Distinct prompts (per scenario), each with the runs it came from."""
    by_key: dict[str, dict[str, Any]] = {}
    for run in runs:
        prompt, _ = split_prompt(to_messages(run.events))
        if not prompt:
            continue
        key = _prompt_key(run.meta.get("scenario_id"), prompt)
        row = by_key.setdefault(
            key, {"prompt": prompt, "tools": tools_of(run.events), "scenario_id": run.meta.get("scenario_id"),
                  "env_id": run.meta.get("env_id"), "run_ids": []}
        )
        row["run_ids"].append(run.key)
    return list(by_key.values())


def trajectory_rows(runs: list[RunEvents]) -> list[dict[str, Any]]:
    """One row per run with its ordered steps."""
    rows = []
    for run in runs:
        steps = [
            {"event_id": e["event_id"], "step": e.get("step"), "kind": e["kind"], "ts": e["ts"], "payload": e["payload"],
             "reward": e.get("reward"), "tags": e.get("tags") or []}
            for e in run.events
        ]
        rewards = [s["reward"] for s in steps if s["reward"] is not None]
        rows.append(
            {"run_id": run.meta.get("run_id"), "session_id": run.meta.get("session_id"),
             "scenario_id": run.meta.get("scenario_id"), "env_id": run.meta.get("env_id"),
             "agent_version": run.meta.get("agent_version"), "success": run.success,
             "total_reward": sum(rewards) if rewards else None,
             "num_steps": len({s["step"] for s in steps if s["step"] is not None}), "steps": steps}
        )
    return rows


ROW_BUILDERS = {"sft": sft_rows, "preference": preference_rows, "rl_prompts": rl_prompt_rows, "trajectories": trajectory_rows}
