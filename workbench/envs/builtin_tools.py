"""General-purpose tools and checkers any scenario can name (``handler: echo``).

Family-specific ones live with their family (``calculator``, ``numeric_answer`` in
:mod:`workbench.envs.families.calculator`, ...).
"""

from __future__ import annotations

from typing import Any

from workbench.envs._registry import checker, tool


@tool("echo")
def echo(ctx: Any, text: str) -> str:
    """Tool: return ``text`` unchanged (the plumbing check of scenarios/hello.yaml)."""
    return text


@tool("state_get")
def state_get(ctx: Any, key: str) -> Any:
    """Tool: the value stored under ``key`` in the run state (null when absent)."""
    return ctx.state.get(key)


@tool("state_set")
def state_set(ctx: Any, key: str, value: Any) -> str:
    """Tool: store ``value`` under ``key`` in the run state."""
    ctx.state[key] = value
    return "ok"


@checker("answer_in_state")
def answer_in_state(ctx: Any, key: str) -> bool:
    """Checker: the answer equals (as text) the state value under ``key``."""
    return str(ctx.answer).strip() == str(ctx.state.get(key)).strip()
