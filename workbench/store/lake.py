"""The event lake: LanceDB (a local directory by default, ``s3://`` by URI).

Writes are batched (one table version per group commit, never one per event); scalar
indexes cover the filter columns; maintenance compacts fragments and drops old versions.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pyarrow as pa

from workbench.store.s3 import S3Options, is_s3_uri

EVENTS_TABLE = "events"

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("env_id", pa.string()),
        pa.field("scenario_id", pa.string()),
        pa.field("agent_version", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("reward", pa.float64()),
        pa.field("success", pa.bool_()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("pii_counts", pa.string(), nullable=False),
        pa.field("quality_flags", pa.list_(pa.string())),
        pa.field("content_hash", pa.string(), nullable=False),
    ]
)

# (column, index kind): BTree for high-cardinality columns, Bitmap for low-cardinality ones.
_INDEXES = (
    ("event_id", "btree"),
    ("tenant_id", "bitmap"),
    ("kind", "bitmap"),
    ("run_id", "btree"),
    ("session_id", "btree"),
    ("scenario_id", "btree"),
    ("env_id", "btree"),
    ("agent_version", "btree"),
    ("content_hash", "btree"),
    ("ts", "btree"),
    ("tags", "label_list"),
)


def sql_literal(value: Any) -> str:
    """A value as a SQL literal for LanceDB filters (strings quoted with '' escaping)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values) -> str:
    """``column IN (...)`` for a non-empty collection of values."""
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


class Lake:
    """A LanceDB database holding the events table (and, later, other lake tables)."""

    def __init__(self, uri: str, s3: S3Options | None = None) -> None:
        """Open the database at ``uri``; ``s3`` configures the endpoint and credentials of an s3:// URI."""
        import lancedb

        self.uri = uri
        options = s3.lance_storage_options() if s3 is not None and is_s3_uri(uri) else None
        self._db = lancedb.connect(uri, storage_options=options or None)
        self._lock = threading.Lock()
        self._events = None

    @property
    def events(self):
        """The events table, created on first use."""
        with self._lock:
            if self._events is None:
                try:
                    self._events = self._db.open_table(EVENTS_TABLE)
                except (FileNotFoundError, ValueError):
                    self._events = self._db.create_table(EVENTS_TABLE, schema=EVENT_SCHEMA, exist_ok=True)
            return self._events

    def append_events(self, table: pa.Table) -> int:
        """Append rows in one commit; returns the new table version."""
        events = self.events
        events.add(table)
        return events.version

    def query_events(self, where: str, columns: list[str] | None = None) -> pa.Table:
        """Every event row matching a SQL predicate (no row limit)."""
        query = self.events.search().where(where).limit(None)
        if columns:
            query = query.select(columns)
        return query.to_arrow()

    def ensure_indexes(self) -> list[str]:
        """Create missing scalar indexes on the filter columns; returns the ones created."""
        import lancedb.index as lx

        events = self.events
        if events.count_rows() == 0:
            return []
        existing = {tuple(ix.columns) for ix in events.list_indices()}
        created = []
        configs = {"btree": lx.BTree, "bitmap": lx.Bitmap, "label_list": lx.LabelList}
        for column, kind in _INDEXES:
            if (column,) not in existing:
                events.create_index(column, config=configs[kind]())
                created.append(column)
        return created

    def maintain(self, cleanup_older_than: timedelta = timedelta(hours=1)) -> dict[str, Any]:
        """Compact fragments, fold new rows into indexes, and delete versions older than the cutoff."""
        created = self.ensure_indexes()
        events = self.events
        before = events.stats()["fragment_stats"]["num_fragments"] if events.count_rows() else 0
        events.optimize(cleanup_older_than=cleanup_older_than, delete_unverified=cleanup_older_than == timedelta(0))
        after = events.stats()["fragment_stats"]["num_fragments"] if events.count_rows() else 0
        return {
            "rows": events.count_rows(),
            "version": events.version,
            "fragments_before": before,
            "fragments_after": after,
            "indexes_created": created,
        }

    @property
    def events_version(self) -> int:
        """The events table's current version (pins a reproducible query)."""
        return self.events.version
