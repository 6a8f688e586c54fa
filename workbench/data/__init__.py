"""Data Factory: event schema, ingest with PII redaction, dedup and quality flags, datasets, lineage."""

from workbench.data.datasets import (
    DatasetFilters,
    DatasetInfo,
    DatasetKind,
    DatasetSpec,
    OutputFormat,
    create_dataset,
    dataset_lineage,
    get_dataset,
    list_datasets,
    load_dataset_frame,
    mark_dataset_used,
)
from workbench.data.ingest import EventIngestor, EventSink, LakeSink, QualityFlag
from workbench.data.schema import EventIn, EventKind, ItemResult, ItemStatus

__all__ = [
    "DatasetFilters",
    "DatasetInfo",
    "DatasetKind",
    "DatasetSpec",
    "EventIn",
    "EventIngestor",
    "EventKind",
    "EventSink",
    "ItemResult",
    "ItemStatus",
    "LakeSink",
    "OutputFormat",
    "QualityFlag",
    "create_dataset",
    "dataset_lineage",
    "get_dataset",
    "list_datasets",
    "load_dataset_frame",
    "mark_dataset_used",
]
