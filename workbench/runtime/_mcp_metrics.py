"""Prometheus counters of the MCP tool gateway, registered on first use (not at import time).

Label values are kept to a bounded set: a tool name the model made up is counted as ``unknown``
(and its plugin as ``none``), so a misbehaving model cannot grow the label space without limit.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_counters: dict[str, Any] = {}

TOOL_CALLS = "workbench_tool_calls_total"
SAFETY_VIOLATIONS = "workbench_tool_safety_violations_total"


def _counter(name: str) -> Any:
    with _lock:
        counter = _counters.get(name)
        if counter is None:
            from prometheus_client import Counter

            if name == TOOL_CALLS:
                counter = Counter(
                    TOOL_CALLS, "Tool calls through the MCP gateway, per outcome",
                    ["plugin", "tool", "outcome"],
                )
            else:
                counter = Counter(
                    SAFETY_VIOLATIONS,
                    "Tool calls refused by the MCP gateway (agent not allowed, scope not granted, unknown tool)",
                    ["plugin", "tool", "reason"],
                )
            _counters[name] = counter
        return counter


def count_call(plugin: str, tool: str, outcome: str) -> None:
    """Count one gateway call (``outcome``: ok, tool_error, timeout, unavailable, bad_arguments, denied)."""
    _counter(TOOL_CALLS).labels(plugin=plugin, tool=tool, outcome=outcome).inc()


def count_violation(plugin: str, tool: str, reason: str) -> None:
    """Count one refused call as a safety violation."""
    _counter(SAFETY_VIOLATIONS).labels(plugin=plugin, tool=tool, reason=reason).inc()
