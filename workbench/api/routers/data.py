"""Data Factory endpoints: events, datasets, lineage."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from workbench.data import datasets as ds
from workbench.data.schema import EventIn, ItemStatus
from workbench.errors import ValidationFailed, WorkbenchError
from workbench.security.roles import Permission
from workbench.security.tenants import Principal
from workbench.api.auth import require

router = APIRouter(tags=["data"])

_EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/EventIn"},
                        {"type": "object", "required": ["events"], "additionalProperties": False,
                         "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}}}},
                    ]
                }
            }
        },
    }
}


class PayloadTooLarge(WorkbenchError):
    """The request body is over the ingest limit."""

    status_code = 413


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {limit} bytes — split it into smaller batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes — split it into smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def _items(body: bytes, max_events: int) -> list[Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed("(body)", f"not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise ValidationFailed("events", "a batch is {\"events\": [...]} with no other keys")
        items = data["events"]
        if not items:
            raise ValidationFailed("events", "the batch is empty")
    elif isinstance(data, dict):
        items = [data]
    else:
        raise ValidationFailed("(body)", "send one event object or {\"events\": [...]}")
    if len(items) > max_events:
        raise ValidationFailed("events", f"{len(items)} events in one request; the limit is {max_events}")
    return items


@router.post("/events", openapi_extra=_EVENTS_BODY, summary="Ingest one event or a batch")
async def post_events(request: Request, principal: Principal = Depends(require(Permission.EVENTS_WRITE))):
    """Validate, redact PII, dedup and store events; answers per item after the accepted ones are durable.

    Status 200 when at least one item was accepted or was a duplicate, 422 when every item was rejected.
    """
    from workbench.telemetry import EVENTS_RECEIVED, PII_REDACTED

    services = request.app.state.services
    settings = services.settings
    items = _items(await _read_body(request, settings.ingest_max_bytes), settings.ingest_max_events)
    ingestor = services.ingestor if services.ingestor_ready else await run_in_threadpool(lambda: services.ingestor)
    if len(items) <= 10:  # validating a few events is cheaper than a thread hop
        rejected, future = ingestor.submit(principal.tenant_id, items)
    else:
        rejected, future = await run_in_threadpool(ingestor.submit, principal.tenant_id, items)
    results = sorted(rejected + await asyncio.wrap_future(future), key=lambda r: r.index)
    counts = {s.value: 0 for s in ItemStatus}
    for result in results:
        counts[result.status.value] += 1
        for entity, n in result.pii.items():
            PII_REDACTED.labels(entity).inc(n)
    for status, n in counts.items():
        EVENTS_RECEIVED.labels(status).inc(n)
    request.state.audit_target = f"events:{len(items)}"
    request.state.audit_detail = counts
    body = {**counts, "results": [r.model_dump(exclude_defaults=False) for r in results]}
    return JSONResponse(body, status_code=422 if counts["rejected"] == len(results) else 200)


@router.get("/events/schema", response_model=None)
async def event_schema(_: Principal = Depends(require(Permission.READ))) -> dict:
    """The JSON schema of one event."""
    return EventIn.model_json_schema()


@router.post("/datasets/create", status_code=201)
async def create_dataset(
    spec: ds.DatasetSpec, request: Request, principal: Principal = Depends(require(Permission.DATASETS_WRITE))
) -> ds.DatasetInfo:
    """Build an immutable dataset version from the tenant's events (422 if the filters select nothing)."""
    info = await run_in_threadpool(ds.create_dataset, request.app.state.services, principal.tenant_id, spec, principal.actor)
    request.state.audit_target = f"dataset:{info.id}"
    return info


@router.get("/datasets")
async def list_datasets(
    request: Request, name: str | None = None, principal: Principal = Depends(require(Permission.DATASETS_READ))
) -> list[ds.DatasetInfo]:
    """The tenant's dataset versions, newest first."""
    return await run_in_threadpool(ds.list_datasets, request.app.state.services, principal.tenant_id, name)


@router.get("/datasets/{dataset_id}")
async def get_dataset(
    dataset_id: str, request: Request, principal: Principal = Depends(require(Permission.DATASETS_READ))
) -> ds.DatasetInfo:
    """One dataset version with its lineage."""
    return await run_in_threadpool(ds.get_dataset, request.app.state.services, principal.tenant_id, dataset_id)


@router.get("/datasets/{dataset_id}/download")
async def download_dataset(
    dataset_id: str, request: Request, principal: Principal = Depends(require(Permission.DATASETS_READ))
):
    """Stream the dataset file (parquet or jsonl)."""
    services = request.app.state.services
    info = await run_in_threadpool(ds.get_dataset, services, principal.tenant_id, dataset_id)
    key = ds.dataset_file_key(info, principal.tenant_id)
    media = "application/vnd.apache.parquet" if info.output_format == "parquet" else "application/x-ndjson"
    filename = f"{info.name}-v{info.version}.{info.output_format}"
    return StreamingResponse(
        services.artifacts.iter_chunks(key), media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Hash": info.content_hash},
    )


class DatasetUseIn(BaseModel):
    """A consumer of a dataset version, e.g. ``train_job:job_123``."""

    consumer: str = Field(min_length=1, max_length=200)


@router.post("/datasets/{dataset_id}/uses", status_code=204)
async def mark_used(
    dataset_id: str, body: DatasetUseIn, request: Request, principal: Principal = Depends(require(Permission.TRAIN_WRITE))
) -> None:
    """Record that a job read this dataset (downstream lineage)."""
    await run_in_threadpool(ds.mark_dataset_used, request.app.state.services, principal.tenant_id, dataset_id, body.consumer)


@router.get("/lineage/dataset/{dataset_id}")
async def lineage(dataset_id: str, request: Request, principal: Principal = Depends(require(Permission.DATASETS_READ))) -> dict:
    """Upstream (events, runs, agent versions, scenarios, labelers) and downstream (jobs) of a dataset."""
    return await run_in_threadpool(ds.dataset_lineage, request.app.state.services, principal.tenant_id, dataset_id)
