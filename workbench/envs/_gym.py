"""The ``gym`` type: any installed Gymnasium environment, with text observations and a parser
that turns an agent's ``act {"action": ...}`` into a valid action for the action space."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from workbench.envs._checkers import Verdict
from workbench.envs._env import Env, RunStatus, _EndRun, _ToolFailed
from workbench.envs._spec import Scenario, ToolSpec

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_HIGHLIGHT = re.compile(r"\x1b\[4\dm(.*?)\x1b\[0m")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain_text(ansi: str) -> str:
    """ANSI text as plain text: a highlighted (background-coloured) cell becomes ``[X]``."""
    return _ANSI.sub("", _HIGHLIGHT.sub(r"[\1]", ansi))


def _plain(value: Any) -> Any:
    """Observation as JSON data, floats rounded so the text is stable across platforms."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else str(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)


def parse_gym_action(space: Any, value: Any, names: list[str] | None = None) -> Any:
    """A valid action of ``space`` from what an agent wrote; raises ValueError saying why not.

    Discrete: an integer, a numeric string ("2", "action 2") or an action name. Box: a list of
    numbers or a string of numbers (clipped to the bounds). MultiDiscrete / MultiBinary: a list
    of integers.
    """
    import numpy as np
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        choice: int | None = None
        if isinstance(value, bool):
            raise ValueError("expected an action number, not a boolean")
        if isinstance(value, (int, float)) and float(value).is_integer():
            choice = int(value)
        elif isinstance(value, str):
            text = value.strip().lower()
            if names and text in [nm.lower() for nm in names]:
                choice = start + [nm.lower() for nm in names].index(text)
            else:
                found = _NUMBER.findall(text)
                if len(found) == 1 and float(found[0]).is_integer():
                    choice = int(float(found[0]))
        if choice is None:
            named = f" or one of {', '.join(names)}" if names else ""
            raise ValueError(f"expected an integer from {start} to {start + n - 1}{named}, got {value!r}")
        if not start <= choice < start + n:
            raise ValueError(f"action {choice} is out of range {start}..{start + n - 1}")
        return choice
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        if isinstance(value, str):
            numbers = [float(x) for x in _NUMBER.findall(value)]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers = [float(value)]
        elif isinstance(value, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            numbers = [float(x) for x in value]
        else:
            raise ValueError(f"expected a list of numbers, got {value!r}")
        shape = space.shape
        size = int(np.prod(shape)) if shape else 1
        if len(numbers) != size:
            raise ValueError(f"expected {size} number{'s' if size != 1 else ''}, got {len(numbers)}")
        array = np.array(numbers, dtype=np.float64).reshape(shape)
        if isinstance(space, spaces.Box):
            return np.clip(array, space.low, space.high).astype(space.dtype)
        if isinstance(space, spaces.MultiBinary):
            if not np.isin(array, (0, 1)).all():
                raise ValueError("expected only 0 and 1")
            return array.astype(space.dtype)
        if not (array == np.round(array)).all() or (array < 0).any() or (array >= space.nvec).any():
            raise ValueError(f"expected integers below {space.nvec.tolist()}")
        return array.astype(space.dtype)
    raise ValueError(f"action space {space} is not supported by the text action parser")


def _action_schema(space: Any, names: list[str] | None) -> dict[str, Any]:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        meaning = f" ({', '.join(f'{start + i}={nm}' for i, nm in enumerate(names))})" if names else ""
        return {
            "type": ["integer", "string"],
            "minimum": start,
            "maximum": start + n - 1,
            "description": f"Action number {start}..{start + n - 1}{meaning}.",
        }
    size = int(math.prod(space.shape)) if space.shape else 1
    schema: dict[str, Any] = {
        "type": ["array", "string"],
        "items": {"type": "number"},
        "minItems": size,
        "maxItems": size,
        "description": f"{size} numbers.",
    }
    if isinstance(space, spaces.Box):
        low, high = float(space.low.min()), float(space.high.max())
        if math.isfinite(low) and math.isfinite(high):
            schema["items"] = {"type": "number", "minimum": low, "maximum": high}
            schema["description"] = f"{size} numbers between {low:g} and {high:g}."
    return schema


class GymEnv(Env):
    """A Gymnasium environment behind the text API: one tool, ``act {"action": ...}``.

    The run state (what checkers see) holds ``total_reward``, ``episode_steps``, ``terminated``,
    ``truncated`` and the last ``observation``. Without a checker, success is a total reward of at
    least ``gym.success_reward`` (default the env's reward_threshold, else more than 0).
    """

    def __init__(self, scenario: Scenario, **kwargs: Any) -> None:
        self._gym: Any = None
        self._ansi = False
        self._names = scenario.gym.action_names if scenario.gym else None
        self._last_reward = 0.0
        super().__init__(scenario, **kwargs)

    def _make(self) -> Any:
        import gymnasium

        config = self.scenario.gym
        assert config is not None
        try:
            probe = gymnasium.make(config.id, **config.kwargs)
        except Exception as exc:  # noqa: BLE001 - unknown ids, bad kwargs: say which
            raise _EndRun(RunStatus.ERROR, f"gymnasium.make({config.id!r}) failed: {exc}") from None
        modes = probe.metadata.get("render_modes") or []
        if "ansi" in modes:
            probe.close()
            self._ansi = True
            return gymnasium.make(config.id, render_mode="ansi", **config.kwargs)
        return probe

    def _tool_specs(self) -> list[ToolSpec]:
        if self._gym is None:
            try:
                self._gym = self._make()
            except _EndRun:
                return []
        return [
            ToolSpec(
                name="act",
                description="Take one action in the environment.",
                parameters={
                    "type": "object",
                    "properties": {"action": _action_schema(self._gym.action_space, self._names)},
                    "required": ["action"],
                },
            )
        ]

    def _render(self, observation: Any) -> str:
        lines = [f"observation: {json.dumps(_plain(observation))}"]
        if self._ansi:
            text = self._gym.render()
            if isinstance(text, str) and text.strip():
                lines.append(plain_text(text).rstrip())
        state = self._state
        lines.append(
            f"step: {state['episode_steps']}  reward: {_plain(self._last_reward)}  total reward: {_plain(state['total_reward'])}"
        )
        return "\n".join(lines)

    def _begin(self, options: dict[str, Any]) -> str:
        if self._gym is None:
            self._gym = self._make()
        observation, _ = self._gym.reset(seed=self.seed)
        self._last_reward = 0.0
        self._state = {
            "total_reward": 0.0,
            "episode_steps": 0,
            "terminated": False,
            "truncated": False,
            "observation": _plain(observation),
        }
        space = self._gym.action_space
        names = f" ({', '.join(self._names)})" if self._names else ""
        return f"action space: {space}{names}\n" + self._render(observation)

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            action = parse_gym_action(self._gym.action_space, arguments.get("action"), self._names)
        except ValueError as exc:
            raise _ToolFailed(f"invalid action: {exc}") from None
        observation, reward, terminated, truncated, _ = self._gym.step(action)
        self._last_reward = float(reward)
        state = self._state
        state["total_reward"] = round(state["total_reward"] + float(reward), 6)
        state["episode_steps"] += 1
        state["terminated"] = bool(terminated)
        state["truncated"] = bool(truncated)
        state["observation"] = _plain(observation)
        return self._render(observation)

    def _step_reward(self) -> float:
        return self._last_reward

    def _env_reward_is_per_step(self) -> bool:
        return True

    def _env_finished(self) -> bool:
        return bool(self._state.get("terminated") or self._state.get("truncated"))

    def _default_verdict(self) -> Verdict:
        config = self.scenario.gym
        threshold = config.success_reward if config else None
        if threshold is None and self._gym is not None and self._gym.spec is not None:
            threshold = self._gym.spec.reward_threshold
        total = float(self._state.get("total_reward", 0.0))
        ok = total >= threshold if threshold is not None else total > 0
        bar = f">= {threshold:g}" if threshold is not None else "> 0"
        return Verdict(ok, 1.0 if ok else 0.0, f"total reward {total:g} ({'meets' if ok else 'misses'} {bar})")

    def _close_env(self) -> None:
        if self._gym is not None:
            self._gym.close()
            self._gym = None
