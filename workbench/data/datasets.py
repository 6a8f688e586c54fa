"""Datasets: immutable versions built from event filters, with lineage back to their sources."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select

from workbench.data.conversion import ROW_BUILDERS, SCHEMAS, RunEvents
from workbench.data.schema import EventKind
from workbench.errors import NotFoundError, ValidationFailed
from workbench.security.tenants import new_id
from workbench.store.lake import sql_in, sql_literal
from workbench.store.models import DatasetRecord, DatasetUse

if TYPE_CHECKING:
    import pandas as pd

    from workbench.services import Services


class DatasetKind(StrEnum):
    """What rows a dataset holds."""

    SFT = "sft"
    PREFERENCE = "preference"
    RL_PROMPTS = "rl_prompts"
    TRAJECTORIES = "trajectories"


class OutputFormat(StrEnum):
    """File format of a dataset version."""

    PARQUET = "parquet"
    JSONL = "jsonl"


class DatasetFilters(BaseModel):
    """Which events feed a dataset. Event-level filters are combined with AND; ``tags`` requires
    every listed tag; ``success`` is decided per run by its latest reward event."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    time_from: datetime | None = None
    time_to: datetime | None = None
    agent_version: str | None = None
    scenario_id: str | None = None
    env_id: str | None = None
    success: bool | None = None
    kinds: list[EventKind] | None = None


class DatasetSpec(BaseModel):
    """A request to build a dataset version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    kind: DatasetKind
    filters: DatasetFilters = Field(default_factory=DatasetFilters)
    output_format: OutputFormat = OutputFormat.PARQUET

    @field_validator("filters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class DatasetInfo(BaseModel):
    """A dataset version as the API returns it."""

    id: str
    name: str
    version: int
    kind: str
    output_format: str
    filters: dict[str, Any]
    rows: int
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    content_hash: str
    uri: str
    creator: str
    created_at: datetime
    lineage: dict[str, Any]

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, record: DatasetRecord) -> DatasetInfo:
        """From the control-plane record."""
        return cls(
            id=record.id, name=record.name, version=record.version, kind=record.kind, output_format=record.output_format,
            filters=record.filters, rows=record.rows, schema=record.schema, content_hash=record.content_hash,
            uri=record.uri, creator=record.creator, created_at=record.created_at, lineage=record.lineage,
        )


def _where(tenant_id: str, filters: DatasetFilters) -> str:
    clauses = [f"tenant_id = {sql_literal(tenant_id)}"]
    for column in ("agent_version", "scenario_id", "env_id"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = {sql_literal(value)}")
    if filters.time_from is not None:
        clauses.append(f"ts >= arrow_cast({sql_literal(_utc(filters.time_from).isoformat())}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
    if filters.time_to is not None:
        clauses.append(f"ts < arrow_cast({sql_literal(_utc(filters.time_to).isoformat())}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
    if filters.tags:
        clauses.append(f"array_has_all(tags, [{', '.join(sql_literal(t) for t in filters.tags)}])")
    return " AND ".join(clauses)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _group_runs(services: Services, tenant_id: str, events: list[dict[str, Any]]) -> list[RunEvents]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        key = event["run_id"] or event["session_id"]
        if key is not None:
            groups.setdefault(key, []).append(event)
    run_ids = [k for k, evs in groups.items() if evs[0]["run_id"] is not None]
    outcome: dict[str, tuple[bool | None, float | None]] = {}
    if run_ids:
        rewards = services.lake.query_events(
            f"tenant_id = {sql_literal(tenant_id)} AND kind = 'reward' AND {sql_in('run_id', run_ids)}",
            ["run_id", "ts", "step", "reward", "success"],
        ).to_pylist()
        for row in sorted(rewards, key=lambda r: (r["ts"], r["step"] or 0)):
            outcome[row["run_id"]] = (row["success"], row["reward"])
    runs = []
    for key, evs in groups.items():
        evs.sort(key=lambda e: (e["step"] if e["step"] is not None else -1, e["ts"]))
        first = evs[0]
        success, reward = outcome.get(key, (None, None))
        meta = {c: next((e[c] for e in evs if e[c] is not None), None)
                for c in ("run_id", "session_id", "scenario_id", "env_id", "agent_version")}
        runs.append(RunEvents(key=key, events=evs, success=success, reward=reward, meta=meta | {"first_ts": first["ts"]}))
    return runs


def _serialize(rows: list[dict[str, Any]], kind: DatasetKind, fmt: OutputFormat) -> tuple[bytes, pa.Schema, str]:
    schema = SCHEMAS[kind.value]
    canonical = "\n".join(json.dumps(r, sort_keys=True, ensure_ascii=False, default=_json_default) for r in rows) + "\n"
    content_hash = hashlib.sha256(canonical.encode()).hexdigest()
    if fmt is OutputFormat.JSONL:
        return canonical.encode(), schema, content_hash
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, compression="zstd")
    return buffer.getvalue(), schema, content_hash


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _schema_json(schema: pa.Schema) -> dict[str, Any]:
    return {"fields": [{"name": f.name, "type": str(f.type)} for f in schema]}


def create_dataset(services: Services, tenant_id: str, spec: DatasetSpec | dict[str, Any], creator: str) -> DatasetInfo:
    """Build an immutable dataset version from the tenant's events; 422 if it would be empty."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.model_validate(spec)
    filters = spec.filters
    where = _where(tenant_id, filters)
    lake_version = services.lake.events_version
    events = services.lake.query_events(where).to_pylist()
    if not events:
        raise ValidationFailed("filters", "the filters select no events in this tenant; widen them or ingest events first")
    runs = _group_runs(services, tenant_id, events)
    if filters.success is not None:
        runs = [r for r in runs if r.success is filters.success]
    if filters.kinds:
        wanted = {k.value for k in filters.kinds}
        for run in runs:
            run.events = [e for e in run.events if e["kind"] in wanted]
        runs = [r for r in runs if r.events]
    runs.sort(key=lambda r: (r.meta["first_ts"], r.key))
    rows = ROW_BUILDERS[spec.kind.value](runs)
    if not rows:
        raise ValidationFailed(
            "filters",
            f"the filters select {len(events)} events in {len(runs)} runs, but they yield no {spec.kind.value} rows"
            + (" (preference rows need runs of the same prompt with different outcomes)" if spec.kind is DatasetKind.PREFERENCE else ""),
        )
    data, schema, content_hash = _serialize(rows, spec.kind, spec.output_format)
    dataset_id = new_id("ds")
    prefix = f"datasets/{tenant_id}/{dataset_id}"
    used_events = [e["event_id"] for r in runs for e in r.events]
    ids_uri = services.artifacts.write_bytes(f"{prefix}/event_ids.txt", ("\n".join(used_events) + "\n").encode())
    uri = services.artifacts.write_bytes(f"{prefix}/data.{spec.output_format.value}", data)
    lineage = {
        "events": {"count": len(used_events), "ids_uri": ids_uri, "lake_table": "events",
                   "lake_version": lake_version, "query": where},
        "runs": sorted({r.meta["run_id"] for r in runs if r.meta["run_id"]}),
        "sessions": sorted({r.meta["session_id"] for r in runs if r.meta["session_id"]}),
        "agent_versions": sorted({e["agent_version"] for r in runs for e in r.events if e["agent_version"]}),
        "scenarios": sorted({e["scenario_id"] for r in runs for e in r.events if e["scenario_id"]}),
        "envs": sorted({e["env_id"] for r in runs for e in r.events if e["env_id"]}),
        "labelers": [],
    }
    with services.control.session() as session:
        version = (session.scalar(
            select(func.max(DatasetRecord.version)).where(DatasetRecord.tenant_id == tenant_id, DatasetRecord.name == spec.name)
        ) or 0) + 1
        record = DatasetRecord(
            id=dataset_id, tenant_id=tenant_id, name=spec.name, version=version, kind=spec.kind.value,
            output_format=spec.output_format.value, filters=filters.model_dump(mode="json", exclude_none=True),
            rows=len(rows), schema=_schema_json(schema), content_hash=content_hash, uri=uri, creator=creator,
            created_at=datetime.now(UTC), lineage=lineage,
        )
        session.add(record)
    return DatasetInfo.of(record)


def _record(services: Services, tenant_id: str, dataset_id: str) -> DatasetRecord:
    with services.control.session() as session:
        record = session.get(DatasetRecord, dataset_id)
    if record is None or record.tenant_id != tenant_id:
        raise NotFoundError("dataset", dataset_id)
    return record


def get_dataset(services: Services, tenant_id: str, dataset_id: str) -> DatasetInfo:
    """One dataset version of this tenant."""
    return DatasetInfo.of(_record(services, tenant_id, dataset_id))


def list_datasets(services: Services, tenant_id: str, name: str | None = None) -> list[DatasetInfo]:
    """The tenant's dataset versions, newest first."""
    query = select(DatasetRecord).where(DatasetRecord.tenant_id == tenant_id)
    if name is not None:
        query = query.where(DatasetRecord.name == name)
    with services.control.session() as session:
        records = list(session.scalars(query.order_by(DatasetRecord.created_at.desc())))
    return [DatasetInfo.of(r) for r in records]


def dataset_file_key(info: DatasetInfo, tenant_id: str) -> str:
    """Artifact key of a dataset's data file."""
    return f"datasets/{tenant_id}/{info.id}/data.{info.output_format}"


def load_dataset_frame(services: Services, tenant_id: str, dataset_id: str) -> pd.DataFrame:
    """The dataset's rows as a pandas DataFrame."""
    import pandas as pd
    import pyarrow.parquet as pq

    info = get_dataset(services, tenant_id, dataset_id)
    data = services.artifacts.read_bytes(dataset_file_key(info, tenant_id))
    if info.output_format == OutputFormat.PARQUET:
        return pq.read_table(io.BytesIO(data)).to_pandas()
    return pd.read_json(io.BytesIO(data), lines=True)


def mark_dataset_used(services: Services, tenant_id: str, dataset_id: str, consumer: str) -> None:
    """Record that a consumer (e.g. ``train_job:job_123``) read this dataset; idempotent."""
    _record(services, tenant_id, dataset_id)
    with services.control.session() as session:
        exists = session.scalar(
            select(DatasetUse).where(DatasetUse.dataset_id == dataset_id, DatasetUse.consumer == consumer)
        )
        if exists is None:
            session.add(DatasetUse(dataset_id=dataset_id, tenant_id=tenant_id, consumer=consumer, used_at=datetime.now(UTC)))


def dataset_lineage(services: Services, tenant_id: str, dataset_id: str) -> dict[str, Any]:
    """Upstream sources and downstream consumers of a dataset version."""
    record = _record(services, tenant_id, dataset_id)
    with services.control.session() as session:
        uses = list(session.scalars(select(DatasetUse).where(DatasetUse.dataset_id == dataset_id).order_by(DatasetUse.used_at)))
    return {
        "dataset": {"id": record.id, "name": record.name, "version": record.version, "content_hash": record.content_hash},
        "upstream": record.lineage,
        "downstream": [{"consumer": u.consumer, "used_at": u.used_at.isoformat()} for u in uses],
    }
