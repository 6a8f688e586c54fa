"""Monitoring of agents: Prometheus metrics per agent and a JSON summary for dashboards.

Live metrics (registered on first use, labelled by agent id, exposed at ``/metrics``):

* ``workbench_agent_step_seconds`` — histogram of session step latency;
* ``workbench_agent_steps_total{outcome}`` — steps by how they ended (answer, max_steps, timeout, error);
* ``workbench_agent_errors_total{kind}`` — failed steps (engine_error, timeout, ...);
* ``workbench_agent_tool_calls_total{plugin,outcome}`` — tool calls per plugin (ok, error, denied);
* ``workbench_agent_safety_violations_total{plugin}`` — tool calls the gateway refused;
* ``workbench_agent_completion_tokens_total`` and ``workbench_agent_generation_seconds_total``
  (their rates give tokens/s), and ``workbench_agent_tokens_per_second`` (the last step's);
* process memory comes from prometheus_client's default process collector
  (``process_resident_memory_bytes``).

:func:`agent_metrics` computes the dashboard summary from the persisted session turns, so it is
the same in every API process and survives restarts.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from workbench.store.models import SessionRecord, SessionTurnRecord

if TYPE_CHECKING:
    from workbench.services import Services

__all__ = ["AgentMetrics", "LatencySummary", "agent_metrics", "process_rss_bytes", "record_step"]

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _registry() -> dict[str, Any]:
    # Registered lazily: importing the runtime must not touch the Prometheus registry.
    with _lock:
        if not _metrics:
            from prometheus_client import Counter as PCounter
            from prometheus_client import Gauge, Histogram

            _metrics.update(
                latency=Histogram(
                    "workbench_agent_step_seconds", "Session step latency per agent", ["agent_id"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
                ),
                steps=PCounter("workbench_agent_steps_total", "Session steps per agent and outcome",
                               ["agent_id", "outcome"]),
                errors=PCounter("workbench_agent_errors_total", "Failed session steps per agent", ["agent_id", "kind"]),
                tool_calls=PCounter("workbench_agent_tool_calls_total", "Tool calls per agent, plugin and outcome",
                                    ["agent_id", "plugin", "outcome"]),
                violations=PCounter("workbench_agent_safety_violations_total",
                                    "Tool calls refused by the gateway (denied), per agent and plugin",
                                    ["agent_id", "plugin"]),
                tokens=PCounter("workbench_agent_completion_tokens_total", "Tokens generated per agent", ["agent_id"]),
                gen_seconds=PCounter("workbench_agent_generation_seconds_total",
                                     "Seconds spent generating per agent", ["agent_id"]),
                tokens_per_s=Gauge("workbench_agent_tokens_per_second", "Generation speed of the last step",
                                   ["agent_id"]),
            )
        return _metrics


def _tool_outcome(call: dict[str, Any]) -> str:
    if call.get("denied"):
        return "denied"
    return "ok" if call.get("ok") else "error"


def record_step(
    agent_id: str, *, latency_s: float, outcome: str, error_kind: str | None = None,
    tool_calls: list[dict[str, Any]] = (), completion_tokens: int = 0, generation_s: float = 0.0,
) -> None:
    """Count one session step of ``agent_id`` (``tool_calls`` as :class:`ToolCallView` dicts)."""
    m = _registry()
    m["latency"].labels(agent_id).observe(latency_s)
    m["steps"].labels(agent_id, outcome).inc()
    if error_kind:
        m["errors"].labels(agent_id, error_kind).inc()
    for call in tool_calls:
        plugin = call.get("plugin") or "none"
        outcome_label = _tool_outcome(call)
        m["tool_calls"].labels(agent_id, plugin, outcome_label).inc()
        if outcome_label == "denied":
            m["violations"].labels(agent_id, plugin).inc()
    if completion_tokens and generation_s > 0:
        m["tokens"].labels(agent_id).inc(completion_tokens)
        m["gen_seconds"].labels(agent_id).inc(generation_s)
        m["tokens_per_s"].labels(agent_id).set(completion_tokens / generation_s)


def process_rss_bytes() -> int:
    """Resident memory of this process in bytes (what ``process_resident_memory_bytes`` reports)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class LatencySummary(BaseModel):
    """Step latency over the counted turns, in milliseconds (nearest-rank percentiles)."""

    p50: float | None = None
    p95: float | None = None
    mean: float | None = None
    max: float | None = None


class AgentMetrics(BaseModel):
    """What ``GET /agents/{id}/metrics`` returns."""

    agent_id: str
    sessions: int
    turns: int
    latency_ms: LatencySummary
    errors: int
    error_rate: float | None = Field(description="Failed steps / steps (engine errors and timeouts).")
    end_reasons: dict[str, int]
    tool_calls: int
    tool_success_rate: float | None
    tool_calls_per_plugin: dict[str, dict[str, int]] = Field(description="plugin -> {calls, ok, error, denied}.")
    safety_violations: int = Field(description="Tool calls refused by the gateway.")
    completion_tokens: int
    tokens_per_s: float | None = Field(description="Completion tokens / generation seconds over the turns.")
    rss_bytes: int = Field(description="Resident memory of the serving process now.")


def _percentile(sorted_values: list[float], q: float) -> float:
    index = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def agent_metrics(services: Services, tenant_id: str, agent_id: str) -> AgentMetrics:
    """The dashboard summary of an agent, from its persisted session turns (404 for other tenants)."""
    from workbench.runtime.agents import get_agent

    get_agent(services, tenant_id, agent_id)
    with services.control.session() as session:
        sessions = session.scalar(
            select(func.count()).select_from(SessionRecord).where(
                SessionRecord.agent_id == agent_id, SessionRecord.tenant_id == tenant_id
            )
        ) or 0
        rows = session.execute(
            select(SessionTurnRecord.latency_ms, SessionTurnRecord.tool_calls, SessionTurnRecord.stats)
            .join(SessionRecord, SessionRecord.id == SessionTurnRecord.session_id)
            .where(SessionRecord.agent_id == agent_id, SessionRecord.tenant_id == tenant_id)
        ).all()
    latencies = sorted(float(r.latency_ms) for r in rows)
    end_reasons: Counter[str] = Counter()
    errors = tokens = 0
    gen_s = 0.0
    per_plugin: dict[str, Counter[str]] = {}
    for row in rows:
        stats = row.stats or {}
        end_reasons[str(stats.get("end_reason", "unknown"))] += 1
        errors += bool(stats.get("error")) or stats.get("end_reason") == "timeout"
        if stats.get("completion_tokens") and stats.get("generation_s"):
            tokens += int(stats["completion_tokens"])
            gen_s += float(stats["generation_s"])
        for call in row.tool_calls or []:
            counts = per_plugin.setdefault(call.get("plugin") or "none", Counter())
            counts["calls"] += 1
            counts[_tool_outcome(call)] += 1
    calls = sum(c["calls"] for c in per_plugin.values())
    ok = sum(c["ok"] for c in per_plugin.values())
    return AgentMetrics(
        agent_id=agent_id,
        sessions=sessions,
        turns=len(rows),
        latency_ms=LatencySummary(
            p50=round(_percentile(latencies, 0.5), 3), p95=round(_percentile(latencies, 0.95), 3),
            mean=round(sum(latencies) / len(latencies), 3), max=round(latencies[-1], 3),
        ) if latencies else LatencySummary(),
        errors=errors,
        error_rate=round(errors / len(rows), 4) if rows else None,
        end_reasons=dict(end_reasons),
        tool_calls=calls,
        tool_success_rate=round(ok / calls, 4) if calls else None,
        tool_calls_per_plugin={
            p: {k: c.get(k, 0) for k in ("calls", "ok", "error", "denied")} for p, c in sorted(per_plugin.items())
        },
        safety_violations=sum(c["denied"] for c in per_plugin.values()),
        completion_tokens=tokens,
        tokens_per_s=round(tokens / gen_s, 2) if gen_s > 0 else None,
        rss_bytes=process_rss_bytes(),
    )
