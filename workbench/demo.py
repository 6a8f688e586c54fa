"""The first leg of the main job (``make demo``): the Data Factory walk-through.

Ingests synthetic agent trajectories that carry personal data (plus a few malformed events and
retries), then builds SFT, preference and trajectory datasets from them and prints what happened.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from workbench.client import EmbeddedClient
from workbench.data.synthetic import synthetic_events
from workbench.services import Services


def run_demo(services: Services, *, runs: int = 60, console: Console | None = None) -> dict[str, Any]:
    """Run the main job on ``services``; returns a summary (also printed)."""
    console = console or Console()
    timings: dict[str, float] = {}
    client = EmbeddedClient(services, tenant="demo")

    started = time.perf_counter()
    console.rule("[bold]1. Ingest agent events (PII redacted before storage)")
    with console.status("loading the PII redactor (presidio + spaCy)…"):
        services.redactor  # noqa: B018 - load it up front so ingest timing is honest
    timings["load redactor"] = time.perf_counter() - started

    started = time.perf_counter()
    events = synthetic_events(runs, seed=int(time.time()))
    malformed = [
        {"kind": "telepathy", "payload": {}},
        {"kind": "reward", "payload": {"success": True}},
        {"kind": "message", "payload": {"role": "user", "content": "hi"}, "colour": "blue"},
    ]
    batch = events + malformed + events[:6]  # the last six are client retries
    results = client.events.log(batch)
    timings["ingest"] = time.perf_counter() - started
    status = Counter(r.status.value for r in results)
    pii: Counter[str] = Counter()
    for r in results:
        pii.update(r.pii)
    table = Table("status", "events")
    for name in ("accepted", "duplicate", "rejected"):
        table.add_row(name, str(status.get(name, 0)))
    console.print(table)
    for r in results:
        if r.status.value == "rejected":
            console.print(f"  rejected #{r.index}: [yellow]{r.field}[/] — {r.reason}")
    pii_table = Table("PII entity", "spans redacted")
    for entity, n in pii.most_common():
        pii_table.add_row(entity, str(n))
    console.print(pii_table)
    stored = services.lake.query_events(f"event_id = '{events[0]['event_id']}'").to_pylist()[0]
    console.print("original :", json.dumps(events[0]["payload"]["observation"]))
    console.print("stored   :", json.loads(stored["payload"])["observation"])

    started = time.perf_counter()
    console.rule("[bold]2. Build datasets (immutable versions with lineage)")
    built = [
        client.datasets.create("demo-sft", "sft", {"tags": ["demo"], "success": True}),
        client.datasets.create("demo-preference", "preference", {"tags": ["demo"]}, output_format="jsonl"),
        client.datasets.create("demo-trajectories", "trajectories", {"tags": ["demo"]}),
    ]
    timings["datasets"] = time.perf_counter() - started
    ds_table = Table("dataset", "version", "kind", "rows", "format", "runs", "uri")
    for d in built:
        i = d.info
        ds_table.add_row(i.id, f"{i.name} v{i.version}", i.kind, str(i.rows), i.output_format,
                         str(len(i.lineage["runs"])), i.uri)
    console.print(ds_table)
    console.print("first SFT row:", json.dumps(built[0].to_pandas().iloc[0]["messages"].tolist()[:2], default=str)[:400])

    summary = {
        "events": dict(status), "pii": dict(pii), "datasets": [d.info.model_dump(mode="json", by_alias=True) for d in built],
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    times = Table("stage", "seconds")
    for stage, seconds in summary["seconds"].items():
        times.add_row(stage, f"{seconds:.2f}")
    console.rule("[bold]Summary")
    console.print(times)
    console.print(f"Workbench home: {services.settings.home.resolve()}")
    return summary
