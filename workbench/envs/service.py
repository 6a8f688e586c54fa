"""Scenarios and runs as a service: the control-plane records behind POST /scenarios and /runs.

Scenario versions are stored per tenant (id derived from the content hash, so re-posting the
same spec returns the same version and editing creates a new one). A run pins the version it
ran; its live environment stays in this process while it runs, and its trace is persisted after
every step so GET /runs/{id}/trace and replay work after the run ends or the server restarts.
Events go to the Data Factory through the tenant's ingest path.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select

from workbench.envs._env import Env, RunFinished, make
from workbench.envs._library import default_scenarios_dir, find_scenario, reference_errors
from workbench.envs._quota import RunQuota
from workbench.envs._replay import replay
from workbench.envs._spec import Scenario, ScenarioInvalid, parse_scenario
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.models import RunRecord, ScenarioRecord

if TYPE_CHECKING:
    from workbench.services import Services

log = logging.getLogger(__name__)


class ScenarioInfo(BaseModel):
    """A stored scenario version."""

    id: str
    name: str
    version: str
    type: str
    split: str
    spec: dict[str, Any]
    created_at: datetime


class RunInfo(BaseModel):
    """A run's status and outcome."""

    id: str
    scenario_id: str
    seed: int
    agent_version: str | None
    status: str
    reason: str | None
    score: float | None
    steps: int
    created_at: datetime
    finished_at: datetime | None


def _scenario_info(r: ScenarioRecord) -> ScenarioInfo:
    return ScenarioInfo(id=r.id, name=r.name, version=r.version, type=r.type, split=r.split, spec=r.spec, created_at=r.created_at)


def _run_info(r: RunRecord) -> RunInfo:
    return RunInfo(id=r.id, scenario_id=r.scenario_id, seed=r.seed, agent_version=r.agent_version, status=r.status,
                   reason=r.reason, score=r.score, steps=r.steps, created_at=r.created_at, finished_at=r.finished_at)


def _store_scenario(services: Services, tenant_id: str, scenario: Scenario) -> ScenarioInfo:
    scenario_id = f"scn_{scenario.version[:32]}"
    spec = scenario.spec()
    if scenario.base_dir is not None:
        spec = spec | {"_base_dir": str(scenario.base_dir)}
    with services.control.session() as session:
        record = session.scalar(select(ScenarioRecord).where(
            ScenarioRecord.tenant_id == tenant_id, ScenarioRecord.version == scenario.version))
        if record is None:
            record = ScenarioRecord(id=new_id("scn") if session.get(ScenarioRecord, scenario_id) else scenario_id,
                                    tenant_id=tenant_id, name=scenario.name, version=scenario.version, type=scenario.type,
                                    split=scenario.split, spec=spec, created_at=datetime.now(UTC))
            session.add(record)
        return _scenario_info(record)


def create_scenario(services: Services, tenant_id: str, spec: dict[str, Any]) -> ScenarioInfo:
    """Validate and store a scenario version (422 naming the field when invalid; idempotent)."""
    scenario = parse_scenario(spec)
    errors = reference_errors(scenario)
    if errors:
        raise ScenarioInvalid(errors)
    return _store_scenario(services, tenant_id, scenario)


def _scenario_record(session, tenant_id: str, ref: str) -> ScenarioRecord | None:
    record = session.get(ScenarioRecord, ref)
    if record is not None and record.tenant_id == tenant_id:
        return record
    return session.scalar(select(ScenarioRecord).where(ScenarioRecord.tenant_id == tenant_id, ScenarioRecord.name == ref)
                          .order_by(ScenarioRecord.created_at.desc()).limit(1))


def get_scenario(services: Services, tenant_id: str, ref: str) -> ScenarioInfo:
    """A stored scenario by id, or the newest version of a name; library scenarios are imported on first use."""
    with services.control.session() as session:
        record = _scenario_record(session, tenant_id, ref)
        if record is not None:
            return _scenario_info(record)
    try:
        scenario = find_scenario(ref, services.settings.scenarios_dir or default_scenarios_dir())
    except LookupError:
        raise NotFoundError("scenario", ref) from None
    return _store_scenario(services, tenant_id, scenario)


def list_scenarios(services: Services, tenant_id: str) -> list[ScenarioInfo]:
    """The tenant's stored scenario versions, newest first."""
    with services.control.session() as session:
        rows = session.scalars(select(ScenarioRecord).where(ScenarioRecord.tenant_id == tenant_id)
                               .order_by(ScenarioRecord.created_at.desc()))
        return [_scenario_info(r) for r in rows]


def parse_stored(info: ScenarioInfo) -> Scenario:
    """The Scenario of a stored version (with its library directory, if it came from one)."""
    spec = dict(info.spec)
    base_dir = spec.pop("_base_dir", None)
    return parse_scenario(spec, base_dir=base_dir)


class _LiveRun:
    def __init__(self, tenant_id: str, env: Env, timeout_s: float) -> None:
        self.tenant_id = tenant_id
        self.env = env
        self.timeout_s = timeout_s
        self.touched = time.monotonic()


class RunManager:
    """Live environments of this process, the per-tenant concurrency quota, and run records."""

    def __init__(self, services: Services, runs_per_tenant: int) -> None:
        self._services = services
        self.quota = RunQuota(default=runs_per_tenant)
        self._live: dict[str, _LiveRun] = {}
        self._lock = threading.Lock()

    def _sink(self, tenant_id: str):
        ingestor = self._services.ingestor

        def sink(events: list[dict[str, Any]]) -> None:
            # Submit without waiting: the step answers at once, the group commit follows. A full
            # queue raises here, and the environment keeps the events and retries next step.
            _, future = ingestor.submit(tenant_id, events)
            future.add_done_callback(lambda f: f.exception() and log.error("run events not stored: %s", f.exception()))

        return sink

    def start(self, tenant_id: str, scenario_ref: str, seed: int = 0, agent_version: str | None = None) -> dict[str, Any]:
        """Start a run of a scenario version; returns the run id and the first observation."""
        info = get_scenario(self._services, tenant_id, scenario_ref)
        scenario = parse_stored(info)
        self._reap_idle()
        run_id = new_id("run")
        self.quota.acquire(tenant_id, run_id)
        try:
            env = make(scenario, seed=seed, sink=self._sink(tenant_id), run_id=run_id, agent_version=agent_version,
                       scenario_id=info.id)
            observation, env_info = env.reset()
        except BaseException:
            self.quota.release(tenant_id, run_id)
            raise
        now = datetime.now(UTC)
        with self._services.control.session() as session:
            session.add(RunRecord(id=run_id, tenant_id=tenant_id, scenario_id=info.id, seed=seed, agent_version=agent_version,
                                  status=env.status, reason=None, score=None, steps=0, trace=env.trace(), created_at=now,
                                  finished_at=None))
        with self._lock:
            self._live[run_id] = _LiveRun(tenant_id, env, scenario.limits.run_timeout_s)
        return {"run_id": run_id, "scenario_id": info.id, "observation": observation, "info": env_info,
                "tools": env.tool_schemas(), "instructions": env.instructions}

    def step(self, tenant_id: str, run_id: str, action: Any) -> dict[str, Any]:
        """Apply one action; returns observation, reward, done and info."""
        with self._lock:
            live = self._live.get(run_id)
        if live is None or live.tenant_id != tenant_id:
            record = self.get(tenant_id, run_id)
            if record.status == "running":
                raise ConflictError(f"run {run_id} lost its environment (the server restarted); start a new run")
            raise RunFinished(f"run {run_id} has ended ({record.status}); start a new run")
        live.touched = time.monotonic()
        observation, reward, terminated, truncated, info = live.env.step(action)
        done = terminated or truncated
        self._persist(live.env, finished=done)
        if done:
            self._finish(run_id)
        return {"observation": observation, "reward": reward, "done": done, "terminated": terminated,
                "truncated": truncated, "info": info}

    def _persist(self, env: Env, *, finished: bool) -> None:
        result = env.result
        with self._services.control.session() as session:
            record = session.get(RunRecord, env.run_id)
            record.status, record.reason, record.score, record.steps = result.status, result.reason or None, result.score, result.steps
            record.trace = env.trace()
            if finished:
                record.finished_at = datetime.now(UTC)

    def _finish(self, run_id: str) -> None:
        with self._lock:
            live = self._live.pop(run_id, None)
        if live is not None:
            self.quota.release(live.tenant_id, run_id)
            live.env.close()

    def _reap_idle(self) -> None:
        """End runs idle past their run timeout, so abandoned runs don't hold quota forever."""
        now = time.monotonic()
        with self._lock:
            idle = [rid for rid, live in self._live.items() if now - live.touched > live.timeout_s]
        for run_id in idle:
            live = self._live.get(run_id)
            if live is None:
                continue
            with self._services.control.session() as session:
                record = session.get(RunRecord, run_id)
                record.status, record.reason, record.finished_at = "timeout", "idle past run_timeout_s", datetime.now(UTC)
            self._finish(run_id)

    def get(self, tenant_id: str, run_id: str) -> RunInfo:
        """A run of this tenant."""
        with self._services.control.session() as session:
            record = session.get(RunRecord, run_id)
            if record is None or record.tenant_id != tenant_id:
                raise NotFoundError("run", run_id)
            return _run_info(record)

    def trace(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        """Ordered steps with timings (live if the run is still going)."""
        with self._lock:
            live = self._live.get(run_id)
        if live is not None and live.tenant_id == tenant_id:
            return live.env.trace()
        with self._services.control.session() as session:
            record = session.get(RunRecord, run_id)
            if record is None or record.tenant_id != tenant_id:
                raise NotFoundError("run", run_id)
            return record.trace

    def replay(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        """Re-execute the recorded actions and compare every observation."""
        trace = self.trace(tenant_id, run_id)
        if not trace.get("steps"):
            raise ValidationFailed("run", "the run has no steps to replay yet")
        return replay(trace)

    def close(self) -> None:
        """Close every live environment."""
        with self._lock:
            runs = list(self._live)
        for run_id in runs:
            self._finish(run_id)


def list_runs(services: Services, tenant_id: str, limit: int = 100) -> list[RunInfo]:
    """The tenant's runs, newest first."""
    with services.control.session() as session:
        rows = session.scalars(select(RunRecord).where(RunRecord.tenant_id == tenant_id)
                               .order_by(RunRecord.created_at.desc()).limit(limit))
        return [_run_info(r) for r in rows]

