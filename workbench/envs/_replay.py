"""Deterministic replay: re-execute a recorded run and compare every observation."""

from __future__ import annotations

import difflib
import json
from typing import Any

from workbench.envs._env import make
from workbench.envs._spec import ScenarioInvalid, parse_scenario


def _diff(expected: str, actual: str, limit: int = 4000) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), fromfile="recorded", tofile="replayed", lineterm="", n=2
    )
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _divergence(step: int, expected: Any, actual: Any, what: str = "observation") -> dict[str, Any]:
    if isinstance(expected, str) and isinstance(actual, str):
        diff = _diff(expected, actual)
    else:
        diff = f"{what}: recorded {json.dumps(expected, default=str)} != replayed {json.dumps(actual, default=str)}"
    return {"step": step, "field": what, "expected": expected, "actual": actual, "diff": diff}


def _action_of(record: dict[str, Any]) -> Any:
    """The action to send again: what the agent sent (raw text for invalid actions)."""
    action = record.get("action") or {}
    if set(action) == {"text"}:
        return action["text"]
    return action


def replay(recorded_run: dict[str, Any], *, browser: Any = None) -> dict[str, Any]:
    """Re-execute ``recorded_run`` (a trace from ``env.trace()``) from its seed and spec.

    Returns ``{"identical": bool, "first_divergence": {step, field, expected, actual, diff} | None,
    "steps_compared": int, "status": replayed status}``. Outside responses recorded in the trace
    (browser network) are served from the recording; the environment's own code runs again.
    """
    try:
        scenario = parse_scenario(recorded_run["scenario"], base_dir=recorded_run.get("base_dir"))
    except (KeyError, ScenarioInvalid) as exc:
        raise ValueError(f"not a recorded run: {exc}") from None
    steps = recorded_run.get("steps") or []
    if not steps:
        raise ValueError("not a recorded run: it has no steps")
    recorded_version = recorded_run.get("scenario_version")
    if recorded_version and recorded_version != scenario.version:
        return {
            "identical": False,
            "first_divergence": _divergence(0, recorded_version, scenario.version, "scenario_version"),
            "steps_compared": 0,
            "status": None,
        }
    env = make(
        scenario,
        seed=int(recorded_run.get("seed", 0)),
        sink=None,
        browser=browser,
        recorded=recorded_run.get("recorded") or {},
    )
    compared = 0
    try:
        observation, _ = env.reset()
        compared = 1
        if observation != steps[0]["observation"]:
            return _result(False, _divergence(0, steps[0]["observation"], observation), compared, env)
        for record in steps[1:]:
            step = record["step"]
            if env.done:
                return _result(False, _divergence(step, "running", env.status, "status"), compared, env)
            observation, reward, terminated, truncated, _ = env.step(_action_of(record))
            compared += 1
            if observation != record["observation"]:
                return _result(False, _divergence(step, record["observation"], observation), compared, env)
            for field, actual in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
                if record.get(field) != actual:
                    return _result(False, _divergence(step, record.get(field), actual, field), compared, env)
        if env.status != recorded_run.get("status"):
            return _result(False, _divergence(steps[-1]["step"], recorded_run.get("status"), env.status, "status"), compared, env)
        # what the scenario's own handlers answered the page must match too
        expected = (recorded_run.get("recorded") or {}).get("responses") or []
        actual = env.trace()["recorded"].get("responses") or []
        for index in range(max(len(expected), len(actual))):
            want = expected[index] if index < len(expected) else None
            got = actual[index] if index < len(actual) else None
            if want != got:
                step = (want or got or {}).get("step", steps[-1]["step"])
                return _result(False, _divergence(step, want, got, f"recorded.responses.{index}"), compared, env)
        return _result(True, None, compared, env)
    finally:
        env.close()


def _result(identical: bool, divergence: dict[str, Any] | None, compared: int, env: Any) -> dict[str, Any]:
    return {"identical": identical, "first_divergence": divergence, "steps_compared": compared, "status": env.status}
