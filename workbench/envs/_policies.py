"""Scripted policies (the scenario's oracle, a random baseline) and a loop that runs one episode.

Agents proper live in :mod:`workbench.agents`; these exist to test scenarios (the oracle must
solve every task, a random policy should not) and to produce demonstrations.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import re
from collections.abc import Callable
from typing import Any

from workbench.envs._env import make
from workbench.envs._events import Sink
from workbench.envs._registry import resolve_reference
from workbench.envs._spec import Scenario, parse_scenario

Policy = Callable[[str, dict[str, Any]], Any]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]*")
_ELEMENT_ID = re.compile(r"\[(\d+)\]")


def _load_function(reference: str) -> Callable[..., Any]:
    target, _, qualname = reference.rpartition(":")
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"_wb_policy_{abs(hash(target))}", target)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn: Any = module
    for part in qualname.split("."):
        fn = getattr(fn, part)
    return fn


class OraclePolicy:
    """Plays the scenario's oracle: its fixed action list, or its policy function."""

    def __init__(self, scenario: Scenario) -> None:
        if scenario.oracle is None:
            raise ValueError(f"scenario {scenario.name} has no oracle")
        self._actions = [a.to_dict() for a in scenario.oracle.actions or []]
        self._fn: Policy | None = None
        if scenario.oracle.policy:
            ref = resolve_reference(scenario.oracle.policy, kind="tool", base_dir=scenario.base_dir)
            self._fn = _load_function(ref)
        self._next = 0

    def __call__(self, observation: str, info: dict[str, Any]) -> Any:
        if self._fn is not None:
            return self._fn(observation, info)
        if self._next >= len(self._actions):
            return {"answer": ""}
        action = self._actions[self._next]
        self._next += 1
        return action


class RandomPolicy:
    """A seeded random baseline: random tools with arguments drawn from their JSON schemas and
    from words and element ids seen in observations; sometimes a random answer."""

    def __init__(self, tools: list[dict[str, Any]], *, seed: int = 0, answer_prob: float = 0.15) -> None:
        self.tools = [t["function"] for t in tools]
        self.rng = random.Random(seed)
        self.answer_prob = answer_prob
        self.words: list[str] = []
        self.ids: list[int] = []

    def _value(self, schema: dict[str, Any], name: str) -> Any:
        rng = self.rng
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = rng.choice(kind)
        if kind == "integer":
            if name == "id" and self.ids:
                return rng.choice(self.ids)
            lo, hi = int(schema.get("minimum", 0)), int(schema.get("maximum", 10))
            return rng.randint(lo, hi)
        if kind == "number":
            lo, hi = float(schema.get("minimum", -1.0)), float(schema.get("maximum", 1.0))
            return rng.uniform(lo, hi)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "array":
            items = schema.get("items", {"type": "number"})
            length = int(schema.get("minItems", rng.randint(1, 3)))
            return [self._value(items, name) for _ in range(length)]
        if kind == "object":
            return {}
        if self.words and rng.random() < 0.7:
            return rng.choice(self.words)
        return rng.choice(["a", "test", "1", "x@y.z", "Enter"])

    def __call__(self, observation: str, info: dict[str, Any]) -> Any:
        self.words = _WORD.findall(observation)[-200:] or self.words
        self.ids = [int(i) for i in _ELEMENT_ID.findall(observation)] or self.ids
        if not self.tools or self.rng.random() < self.answer_prob:
            return {"answer": self.rng.choice(self.words) if self.words else str(self.rng.randint(0, 100))}
        tool = self.rng.choice(self.tools)
        params = tool.get("parameters", {})
        props = params.get("properties", {})
        required = set(params.get("required", []))
        arguments = {
            name: self._value(schema, name)
            for name, schema in props.items()
            if name in required or self.rng.random() < 0.5
        }
        return {"tool": tool["name"], "arguments": arguments}


def run_episode(
    scenario: Scenario | dict[str, Any],
    policy: Policy | str = "oracle",
    *,
    seed: int = 0,
    sink: Sink | None = None,
    browser: Any = None,
    **make_kwargs: Any,
) -> dict[str, Any]:
    """Run one episode to the end and return its trace.

    ``policy`` is a callable ``(observation, info) -> action``, ``"oracle"`` or ``"random"``
    (seeded with ``seed``).
    """
    scenario = parse_scenario(scenario)
    env = make(scenario, seed=seed, sink=sink, browser=browser, **make_kwargs)
    try:
        if policy == "oracle":
            policy = OraclePolicy(scenario)
        elif policy == "random":
            policy = RandomPolicy(env.tool_schemas(), seed=seed)
        observation, info = env.reset()
        while not env.done:
            observation, _, _, _, info = env.step(policy(observation, info))  # type: ignore[operator]
        return env.trace()
    finally:
        env.close()
