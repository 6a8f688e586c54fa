"""Ingest throughput: events/minute over HTTP (one event per request, and batches of 100), with
p50/p99 accept latency, next to a raw batched LanceDB append of the same events measured in the
same run. NER redaction on; the pattern-only figure is printed too.

    .venv/bin/python bench/ingest.py [--events 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import LiveServer  # noqa: E402
from workbench.data.synthetic import synthetic_events  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def post_all(url: str, key: str, bodies: list, concurrency: int) -> tuple[float, list[float], dict]:
    """POST every body with bounded concurrency; returns (seconds, latencies, status counts)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits) as c:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    started = time.perf_counter()
                    response = await c.post("/events", json=body)
                    if response.status_code in (429, 503):
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                        continue
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    break

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, statuses


def http_figures(ner: bool, events_n: int, concurrency: int) -> dict[str, dict]:
    home = Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "home"
    home.mkdir()
    server = LiveServer(home, {"WORKBENCH_PII_NER": "true" if ner else "false"}).start()
    try:
        key = server.tenant("bench")["api_key"]
        # Warm up: load the redactor and the lake before timing.
        httpx.post(f"{server.url}/events", json={"kind": "metadata", "payload": {"warm": "up John"}},
                   headers={"Authorization": f"Bearer {key}"}, timeout=120)
        out = {}
        runs = events_n // 6
        singles = synthetic_events(runs, seed=11, tasks=runs)  # distinct texts: no redaction cache hits
        seconds, lat, statuses = asyncio.run(post_all(server.url, key, singles, concurrency))
        out["1 event/request"] = {"events": len(singles), "seconds": seconds, "lat": lat, "statuses": statuses}
        batch_events = synthetic_events(runs * 4, seed=12, tasks=runs * 4)
        batches = [{"events": batch_events[i : i + 100]} for i in range(0, len(batch_events), 100)]
        seconds, lat, statuses = asyncio.run(post_all(server.url, key, batches, max(2, concurrency // 8)))
        out["batches of 100"] = {"events": len(batch_events), "seconds": seconds, "lat": lat, "statuses": statuses}
        return out
    finally:
        server.stop()


def raw_lance_figure(events_n: int) -> dict:
    """The same kind of events appended to LanceDB directly in batches of 1,000 (no validation, no redaction)."""
    import json

    import pyarrow as pa

    from workbench.store.lake import EVENT_SCHEMA, Lake

    rows = []
    now = time.time()
    for e in synthetic_events(events_n // 6, seed=13, tasks=events_n // 6):
        from datetime import UTC, datetime

        rows.append({
            "event_id": e["event_id"], "tenant_id": "t", "kind": e["kind"], "ts": datetime.fromisoformat(e["ts"]),
            "ingested_at": datetime.fromtimestamp(now, UTC), "session_id": None, "run_id": e["run_id"], "env_id": e["env_id"],
            "scenario_id": e["scenario_id"], "agent_version": e["agent_version"], "step": e["step"],
            "payload": json.dumps(e["payload"]), "reward": e.get("reward"), "success": None, "tags": e["tags"],
            "pii_counts": "{}", "quality_flags": [], "content_hash": e["event_id"],
        })
    lake = Lake(tempfile.mkdtemp(prefix="bench-lance-"))
    started = time.perf_counter()
    for i in range(0, len(rows), 1000):
        lake.append_events(pa.Table.from_pylist(rows[i : i + 1000], schema=EVENT_SCHEMA))
    return {"events": len(rows), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events for the one-per-request run (batched run uses 4x)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients for one-per-request")
    args = parser.parse_args()
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

    raw = raw_lance_figure(args.events * 4)
    raw_rate = raw["events"] / raw["seconds"] * 60
    print(f"raw LanceDB append (batches of 1,000): {raw_rate:,.0f} events/min ({raw['events']} events in {raw['seconds']:.2f}s)")
    print()
    header = f"{'mode':<28}{'events':>8}{'events/min':>14}{'p50 ms':>10}{'p99 ms':>10}{'vs raw':>10}  statuses"
    print(header)
    print("-" * len(header))
    for ner in (True, False):
        for mode, fig in http_figures(ner, args.events, args.concurrency).items():
            rate = fig["events"] / fig["seconds"] * 60
            label = f"{'NER' if ner else 'pattern-only'}, {mode}"
            print(f"{label:<28}{fig['events']:>8}{rate:>14,.0f}{statistics.median(fig['lat']) * 1000:>10.1f}"
                  f"{percentile(fig['lat'], 0.99) * 1000:>10.1f}{rate / raw_rate:>9.1%}  {fig['statuses']}")
    print()
    print("targets on a 2-core machine: >= 10,000 events/min one per request and >= 60,000 batched, NER on")
    print(f"machine: {os.cpu_count()} cores; {subprocess.run(['uname', '-m'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
