"""The stores and long-lived components of one workbench home, opened lazily and shared.

The REST API, the CLI, the embedded Python client and Dagster assets all hold one
``Services`` and call library functions with it.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from workbench.config import Settings
from workbench.security.audit import AuditLog
from workbench.security.tenants import KeyCache
from workbench.store.artifacts import ArtifactStore
from workbench.store.control import ControlPlane
from workbench.store.s3 import S3Options


class Services:
    """Control plane, lake, artifacts, redactor and ingestor for one ``Settings``."""

    def __init__(self, settings: Settings | None = None, *, redactor=None) -> None:
        """Open the stores of ``settings``; pass ``redactor`` to share an already-loaded one."""
        self.settings = settings or Settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.control = ControlPlane(self.settings.resolved_database_url)
        self.control.upgrade()
        self.artifacts = ArtifactStore(self.settings.resolved_artifacts_uri, S3Options.from_settings(self.settings))
        self._lock = threading.Lock()
        self.keys = KeyCache(self.control)
        self.audit_log = AuditLog(self.control)
        self._lake = None
        self._redactor = redactor
        self._ingestor = None
        self._runs = None

    @property
    def lake(self):
        """The LanceDB event lake (opened on first use)."""
        with self._lock:
            if self._lake is None:
                from workbench.store.lake import Lake

                self._lake = Lake(self.settings.resolved_lake_uri, S3Options.from_settings(self.settings))
            return self._lake

    @property
    def redactor(self):
        """The PII redactor (loads presidio and spaCy on first use, a few seconds)."""
        with self._lock:
            if self._redactor is None:
                from workbench.data.redaction import DEFAULT_ENTITIES, Redactor, RedactorConfig

                s = self.settings
                self._redactor = Redactor(
                    RedactorConfig(
                        entities=tuple(s.pii_entities or DEFAULT_ENTITIES), ner=s.pii_ner,
                        spacy_model=s.pii_spacy_model, score_threshold=s.pii_score_threshold,
                    )
                )
            return self._redactor

    @property
    def ingestor(self):
        """The event ingestor with its writer thread."""
        redactor, lake = self.redactor, self.lake
        with self._lock:
            if self._ingestor is None:
                from workbench.data.ingest import EventIngestor

                s = self.settings
                self._ingestor = EventIngestor(
                    lake, redactor, max_string_chars=s.ingest_max_string_chars, max_pending=s.ingest_queue_events,
                    commit_max_events=s.ingest_commit_max_events, on_commit=_count_committed,
                )
                from workbench.telemetry import INGEST_PENDING

                INGEST_PENDING.set_function(lambda: self.ingest_pending)
            return self._ingestor

    @property
    def runs(self):
        """Live environment runs of this process (see workbench.envs.service.RunManager)."""
        with self._lock:
            if self._runs is None:
                from workbench.envs.service import RunManager

                self._runs = RunManager(self, self.settings.runs_per_tenant)
            return self._runs

    @property
    def ingestor_ready(self) -> bool:
        """Whether the ingestor (and its redactor) are loaded already."""
        return self._ingestor is not None

    @property
    def ingest_pending(self) -> int:
        """Events waiting for a group commit (0 before the ingestor starts)."""
        return self._ingestor.pending if self._ingestor is not None else 0

    def maintain(self, cleanup_older_than: timedelta = timedelta(hours=1)) -> dict[str, Any]:
        """Compact the lake, refresh indexes, drop old versions, and purge expired audit records."""
        from workbench.security.audit import purge_audit

        report = self.lake.maintain(cleanup_older_than)
        report["audit_records_purged"] = purge_audit(self.control, self.settings.audit_retention_days)
        return report

    def close(self) -> None:
        """End live runs, flush pending events and release connections."""
        if self._runs is not None:
            self._runs.close()
        if self._ingestor is not None:
            self._ingestor.close()
            self._ingestor = None
        self.audit_log.close()
        self.control.dispose()


def _count_committed(count: int) -> None:
    from workbench.telemetry import EVENTS_COMMITTED

    EVENTS_COMMITTED.inc(count)
