"""Quality checks of a built dataset version: PII-free, schema-valid, and how many rows repeat.

Datasets are built from events that were redacted at ingest, so ``pii_free`` re-scans what the
file actually holds (every distinct string) with the same redactor: it catches anything that
reached the file another way, and a redactor configuration that changed since ingest. It fails on
what the pattern recognizers find (emails, phone numbers, cards, keys, addresses...). What NER
finds in already-redacted text is reported but does not fail the check: NER reads the text again
in a new context (a string cut at ingest, a placeholder next to a word) and then tags fragments
such as "Att" of a cut "Attribute" as a PERSON, which would block every dataset of such runs.
The Dagster dataset assets report these as asset checks; they are plain functions here.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.data.datasets import DatasetInfo
    from workbench.services import Services

# A dataset where more than this share of rows repeats another row is flagged (not blocked).
MAX_DUPLICATE_RATE = 0.5


@dataclass
class CheckOutcome:
    """One check of one dataset version."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _rows(services: Services, tenant_id: str, info: DatasetInfo) -> tuple[list[dict[str, Any]], Any]:
    import pyarrow.parquet as pq

    from workbench.data.datasets import OutputFormat, dataset_file_key

    data = services.artifacts.read_bytes(dataset_file_key(info, tenant_id))
    if info.output_format == OutputFormat.PARQUET:
        table = pq.read_table(io.BytesIO(data))
        return table.to_pylist(), table.schema
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()], None


def _identifier(key: str) -> bool:
    # Ids (uuids, content hashes) are not redacted at ingest, and a uuid's digit groups read as a phone number.
    return key == "id" or key.endswith(("_id", "_ids")) or key == "agent_version"


def _strings(value: Any, sink: set[str]) -> None:
    if isinstance(value, str):
        sink.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _identifier(key):
                _strings(item, sink)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, sink)


def check_dataset(services: Services, tenant_id: str, info: DatasetInfo) -> list[CheckOutcome]:
    """``pii_free``, ``schema_valid`` and ``dedup_rate`` of one dataset version."""
    from workbench.data.conversion import SCHEMAS
    from workbench.data.redaction import NER_ENTITIES

    rows, schema = _rows(services, tenant_id, info)
    strings: set[str] = set()
    for row in rows:
        _strings(row, strings)
    found: Counter[str] = Counter()
    for _, counts in services.redactor.redact_texts(sorted(strings)):
        found.update(counts)
    patterns = {entity: n for entity, n in found.items() if entity not in NER_ENTITIES}
    expected = SCHEMAS[info.kind]
    if schema is not None:
        mismatched = [f.name for f in expected if f.name not in schema.names or schema.field(f.name).type != f.type]
    else:  # jsonl keeps no types: every declared column must be present in every row
        mismatched = sorted({f.name for f in expected for row in rows if f.name not in row})
    keys = Counter(json.dumps(row, sort_keys=True, default=str) for row in rows)
    duplicates = sum(n - 1 for n in keys.values())
    rate = duplicates / len(rows) if rows else 0.0
    return [
        CheckOutcome("pii_free", not patterns, "no pattern-recognised PII in any string of the file",
                     {"strings_scanned": len(strings), "entities_found": patterns,
                      "ner_suspects": {k: v for k, v in found.items() if k in NER_ENTITIES}}),
        CheckOutcome("schema_valid", not mismatched and len(rows) == info.rows,
                     f"columns and types match the {info.kind} schema and the row count matches the record",
                     {"rows": len(rows), "rows_recorded": info.rows, "mismatched_columns": mismatched}),
        CheckOutcome("dedup_rate", rate <= MAX_DUPLICATE_RATE,
                     f"at most {MAX_DUPLICATE_RATE:.0%} of rows repeat another row",
                     {"duplicate_rows": duplicates, "duplicate_rate": round(rate, 4)}),
    ]
