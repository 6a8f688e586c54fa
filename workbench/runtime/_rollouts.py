"""Rollouts of a registered agent: its engine, prompt and settings, events into the Data Factory."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.agents.rollouts import RolloutProgress, RolloutReport
    from workbench.services import Services

__all__ = ["rollout_agent"]

log = logging.getLogger("workbench.runtime.rollouts")


def rollout_agent(
    services: Services,
    tenant_id: str,
    agent: str,
    scenario: str | Path,
    split: str = "train",
    *,
    attempts: int = 1,
    limit: int | None = None,
    batch_size: int = 8,
    progress: RolloutProgress | None = None,
) -> tuple[RolloutReport, dict[str, int]]:
    """Run agent ``agent`` (id, ``name@vN`` or name = newest version) on a scenario family's tasks.

    Trajectories are ingested for the tenant (PII redacted) with the agent version on every event
    and tags ``rollout``, the family and the split. Returns the report and the ingest counts
    (accepted / duplicate / rejected), once every event is durable. The agent's plugins are not
    used: in a rollout, the environment provides the tools.
    """
    from workbench.agents.rollouts import load_tasks, run_rollouts
    from workbench.runtime.agents import find_agent
    from workbench.runtime.serving import engine_for_agent

    info = find_agent(services, tenant_id, agent)
    scenarios_dir = getattr(services.settings, "scenarios_dir", None)
    tasks = load_tasks(scenario, split, limit=limit, scenarios_dir=scenarios_dir)
    family = (tasks[0].family if tasks else None) or Path(str(scenario)).stem
    handle, _resolved = engine_for_agent(services, tenant_id, info)
    ingestor = services.ingestor
    futures: list[Future] = []
    counts: Counter[str] = Counter()

    def sink(events: list[dict[str, Any]]) -> None:
        rejected, future = ingestor.submit(tenant_id, events)
        counts.update(r.status.value for r in rejected)
        for r in rejected:
            log.warning("rollout event rejected: %s %s", r.field, r.reason)
        futures.append(future)

    gen = info.spec.generation
    report = run_rollouts(
        handle.engine, tasks, attempts=attempts, agent_version=info.agent_version,
        tags=["rollout", str(family), split], sink=sink, system_prompt=info.spec.system_prompt or None,
        sampling=gen.sampling(), max_steps=gen.max_steps, timeout_s=max(gen.timeout_s, 60.0) * 4,
        batch_size=batch_size, tool_examples=info.spec.tool_examples, seed=gen.seed or 0, progress=progress,
    )
    for future in futures:
        counts.update(r.status.value for r in future.result(timeout=300))
    return report, dict(counts)
