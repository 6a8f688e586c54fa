"""Event ingest: validate → truncate → redact PII → dedup → quality flags → group commit.

Every path that writes events (POST /events, ``wb.events.log``, environments, sessions) goes
through :class:`EventIngestor`, so redaction and dedup cannot be bypassed. Validation happens
on the caller's thread (a rejected item never reaches the writer); the rest runs on one
writer thread per process, in batches, so NER and the lake write are amortized.

The accepted, redacted rows of a group commit leave through an :class:`EventSink`. The default,
:class:`LakeSink`, appends them to the LanceDB lake; a deployment that moves events over a topic
(Kafka, see docs/deployment.md) puts its producer here, and the lake writer consumes the topic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from workbench.data.redaction import Redactor, counts_json
from workbench.data.schema import EventIn, EventKind, ItemResult, ItemStatus, parse_event
from workbench.errors import OverloadedError, WorkbenchError
from workbench.store.group_commit import GroupCommitter
from workbench.store.lake import EVENT_SCHEMA, Lake, sql_in, sql_literal

log = logging.getLogger(__name__)

TRUNCATION_MARK = " …[truncated]"


class QualityFlag:
    """Flags stored with an event; flagged events are kept (only unknown kinds/bad fields are rejected)."""

    EMPTY_PAYLOAD = "empty_payload"
    TRUNCATED = "truncated"
    CONTENT_DUPLICATE = "content_duplicate"
    NON_MONOTONIC_STEP = "non_monotonic_step"


class EventSink(Protocol):
    """Where the accepted, redacted events of one group commit go.

    ``append`` returns once the rows are durable at the sink (the ingestor acknowledges them
    then) and raises if none of them is: a failed batch is answered "retry", never half-written.
    """

    def append(self, rows: pa.Table) -> None:
        """Store rows (schema :data:`workbench.store.lake.EVENT_SCHEMA`) durably, all or none."""
        ...


class LakeSink:
    """The default sink: one LanceDB append, hence one table version, per group commit."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def append(self, rows: pa.Table) -> None:
        """Append the rows to the lake's events table in one commit."""
        self.lake.append_events(rows)


@dataclass(frozen=True)
class _Pending:
    tenant_id: str
    event: EventIn


class EventIngestor:
    """Accepts events for a tenant and answers per item once the accepted ones are durable."""

    def __init__(
        self,
        lake: Lake,
        redactor: Redactor,
        *,
        max_string_chars: int = 8192,
        max_pending: int = 20000,
        commit_max_events: int = 2000,
        on_commit=None,
        sink: EventSink | None = None,
    ) -> None:
        """Ingest into ``lake`` (also read for dedup); ``sink`` replaces the lake append (default :class:`LakeSink`)."""
        self._lake = lake
        self._sink = sink if sink is not None else LakeSink(lake)
        self._redactor = redactor
        self._max_chars = max_string_chars
        self._on_commit = on_commit
        self._last_step: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._recent_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._committer: GroupCommitter[_Pending, ItemResult] = GroupCommitter(
            self._write, max_batch=commit_max_events, max_pending=max_pending, name="event-ingest"
        )

    @property
    def pending(self) -> int:
        """Events waiting for their group commit."""
        return self._committer.pending

    def submit(self, tenant_id: str, items: list[Any]) -> tuple[list[ItemResult], Future]:
        """Validate items now and queue the valid ones.

        Returns the rejected results at once and a future for the queued ones (whose results
        carry their original indexes). Raises OverloadedError when the queue is full.
        """
        rejected: list[ItemResult] = []
        queued: list[_Pending] = []
        indexes: list[int] = []
        for index, item in enumerate(items):
            parsed = parse_event(index, item)
            if isinstance(parsed, ItemResult):
                rejected.append(parsed)
            else:
                queued.append(_Pending(tenant_id, parsed))
                indexes.append(index)
        inner = self._committer.submit(queued)
        outer: Future = Future()

        def _reindex(done: Future) -> None:
            error = done.exception()
            if isinstance(error, WorkbenchError):
                outer.set_exception(error)
                return
            if error is not None:
                # A storage failure: nothing of this batch was acknowledged, so a retry is safe.
                log.error("event commit failed: %s", type(error).__name__)
                outer.set_exception(OverloadedError("the event store could not commit this batch; retry", retry_after=2))
                return
            outer.set_result([r.model_copy(update={"index": i}) for r, i in zip(done.result(), indexes)])

        inner.add_done_callback(_reindex)
        return rejected, outer

    def ingest(self, tenant_id: str, items: list[Any], timeout: float | None = 120) -> list[ItemResult]:
        """Blocking ingest: per-item results in submission order."""
        rejected, future = self.submit(tenant_id, items)
        return sorted(rejected + future.result(timeout), key=lambda r: r.index)

    def close(self) -> None:
        """Flush queued events and stop the writer."""
        self._committer.close()

    # -- the writer thread ---------------------------------------------------------------------

    def _write(self, batch: list[_Pending]) -> list[ItemResult]:
        now = datetime.now(UTC)
        truncated = [False] * len(batch)
        values: list[Any] = []
        for i, pending in enumerate(batch):
            payload, cut_p = _truncate(pending.event.payload, self._max_chars)
            tags, cut_t = _truncate(pending.event.tags, self._max_chars)
            truncated[i] = cut_p or cut_t
            values.append([payload, tags])
        redacted = self._redactor.redact_values(values)

        known_ids = self._existing_ids(batch)
        hashes = [_content_hash(p.event, r.value[0]) for p, r in zip(batch, redacted)]
        known_hashes = self._existing_hashes(batch, hashes)
        self._load_last_steps(batch)

        results: list[ItemResult] = []
        rows: list[dict[str, Any]] = []
        seen_ids: set[tuple[str, str]] = set()
        for i, (pending, red) in enumerate(zip(batch, redacted)):
            event, tenant = pending.event, pending.tenant_id
            event_id = str(event.event_id)
            id_key = (tenant, event_id)
            if id_key in known_ids or id_key in seen_ids:
                results.append(ItemResult(index=i, status=ItemStatus.DUPLICATE, event_id=event_id))
                continue
            seen_ids.add(id_key)
            payload, tags = red.value
            flags = []
            if not payload and event.kind is not EventKind.REWARD:
                flags.append(QualityFlag.EMPTY_PAYLOAD)
            if truncated[i]:
                flags.append(QualityFlag.TRUNCATED)
            group = event.run_id or event.session_id
            if group is not None:
                hash_key = (tenant, hashes[i])
                if hash_key in known_hashes:
                    flags.append(QualityFlag.CONTENT_DUPLICATE)
                known_hashes.add(hash_key)
            if event.run_id is not None and event.step is not None:
                step_key = (tenant, event.run_id)
                last = self._last_step.get(step_key, -1)
                if event.step < last:
                    flags.append(QualityFlag.NON_MONOTONIC_STEP)
                self._remember_step(step_key, max(last, event.step))
            success = payload.get("success") if event.kind is EventKind.REWARD else None
            rows.append(
                {
                    "event_id": event_id,
                    "tenant_id": tenant,
                    "kind": event.kind.value,
                    "ts": event.ts,
                    "ingested_at": now,
                    "session_id": event.session_id,
                    "run_id": event.run_id,
                    "env_id": event.env_id,
                    "scenario_id": event.scenario_id,
                    "agent_version": event.agent_version,
                    "step": event.step,
                    "payload": json.dumps(payload, ensure_ascii=False, default=str),
                    "reward": event.reward,
                    "success": success if isinstance(success, bool) else None,
                    "tags": tags,
                    "pii_counts": counts_json(red.counts),
                    "quality_flags": flags,
                    "content_hash": hashes[i],
                }
            )
            results.append(
                ItemResult(
                    index=i, status=ItemStatus.ACCEPTED, event_id=event_id, quality_flags=flags, pii=dict(red.counts)
                )
            )
        if rows:
            self._sink.append(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA))
            for row in rows:
                self._remember_id((row["tenant_id"], row["event_id"]))
            if self._on_commit is not None:
                self._on_commit(len(rows))
        return results

    def _existing_ids(self, batch: list[_Pending]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        by_tenant: dict[str, list[str]] = {}
        for pending in batch:
            key = (pending.tenant_id, str(pending.event.event_id))
            if key in self._recent_ids:
                found.add(key)
            else:
                by_tenant.setdefault(pending.tenant_id, []).append(key[1])
        for tenant, ids in by_tenant.items():
            table = self._lake.query_events(f"tenant_id = {sql_literal(tenant)} AND {sql_in('event_id', ids)}", ["event_id"])
            found.update((tenant, eid) for eid in table.column("event_id").to_pylist())
        return found

    def _existing_hashes(self, batch: list[_Pending], hashes: list[str]) -> set[tuple[str, str]]:
        by_tenant: dict[str, list[str]] = {}
        for pending, digest in zip(batch, hashes):
            if pending.event.run_id or pending.event.session_id:
                by_tenant.setdefault(pending.tenant_id, []).append(digest)
        found: set[tuple[str, str]] = set()
        for tenant, digests in by_tenant.items():
            table = self._lake.query_events(
                f"tenant_id = {sql_literal(tenant)} AND {sql_in('content_hash', set(digests))}", ["content_hash"]
            )
            found.update((tenant, d) for d in table.column("content_hash").to_pylist())
        return found

    def _load_last_steps(self, batch: list[_Pending]) -> None:
        missing: dict[str, set[str]] = {}
        for pending in batch:
            run_id = pending.event.run_id
            if run_id is not None and pending.event.step is not None and (pending.tenant_id, run_id) not in self._last_step:
                missing.setdefault(pending.tenant_id, set()).add(run_id)
        for tenant, runs in missing.items():
            table = self._lake.query_events(
                f"tenant_id = {sql_literal(tenant)} AND {sql_in('run_id', runs)} AND step IS NOT NULL", ["run_id", "step"]
            )
            for run_id, step in zip(table.column("run_id").to_pylist(), table.column("step").to_pylist()):
                key = (tenant, run_id)
                self._last_step[key] = max(self._last_step.get(key, -1), step)

    def _remember_step(self, key: tuple[str, str], step: int) -> None:
        self._last_step[key] = step
        self._last_step.move_to_end(key)
        while len(self._last_step) > 50_000:
            self._last_step.popitem(last=False)

    def _remember_id(self, key: tuple[str, str]) -> None:
        self._recent_ids[key] = None
        while len(self._recent_ids) > 200_000:
            self._recent_ids.popitem(last=False)


def _truncate(value: Any, max_chars: int) -> tuple[Any, bool]:
    """Cut strings longer than max_chars at a word boundary (so no half-token survives redaction)."""
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value, False
        head = value[:max_chars]
        cut = head.rfind(" ")
        return (head[:cut] if cut > max_chars // 2 else head) + TRUNCATION_MARK, True
    if isinstance(value, dict):
        out, any_cut = {}, False
        for key, item in value.items():
            out[key], cut = _truncate(item, max_chars)
            any_cut |= cut
        return out, any_cut
    if isinstance(value, list):
        pairs = [_truncate(item, max_chars) for item in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def _content_hash(event: EventIn, redacted_payload: dict[str, Any]) -> str:
    """Same run (or session), step, kind and normalized payload → same hash."""
    normalized = json.dumps(
        [event.run_id or event.session_id, event.step, event.kind.value, redacted_payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(normalized.encode()).hexdigest()
