"""The Data Factory over a real HTTP server: ingest, PII, dedup, datasets, lineage."""

from __future__ import annotations

import io
import json
import uuid

import pandas as pd
import pytest

from workbench.data.synthetic import synthetic_events

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(live_server):
    tenant = live_server.tenant(f"data-{uuid.uuid4().hex[:8]}")
    with live_server.client(tenant["api_key"]) as client:
        yield client


def test_per_item_statuses_in_one_batch(admin):
    good = {"event_id": str(uuid.uuid4()), "kind": "message", "run_id": "r-batch", "step": 0,
            "payload": {"role": "user", "content": "hello"}}
    body = {"events": [good, {"kind": "bogus"}, {"kind": "message", "step": "x"}, good]}
    response = admin.post("/events", json=body)
    assert response.status_code == 200
    data = response.json()
    statuses = [r["status"] for r in data["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "duplicate"]
    assert data["results"][1]["field"] == "kind" and data["results"][2]["field"] == "step"
    assert (data["accepted"], data["duplicate"], data["rejected"]) == (1, 1, 2)
    again = admin.post("/events", json=good).json()
    assert again["results"][0]["status"] == "duplicate"


def test_all_rejected_is_422_and_single_event_body(admin):
    response = admin.post("/events", json={"kind": "telepathy"})
    assert response.status_code == 422
    assert response.json()["results"][0]["field"] == "kind"


def test_body_limits(admin):
    too_many = {"events": [{"kind": "metadata", "payload": {"i": i}} for i in range(5001)]}
    response = admin.post("/events", json=too_many)
    assert response.status_code == 422 and response.json()["field"] == "events"
    huge = {"kind": "metadata", "payload": {"blob": "x" * (6 * 1024 * 1024)}}
    assert admin.post("/events", json=huge).status_code == 413
    assert admin.post("/events", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_pii_redacted_before_storage_nested_and_tags(admin, live_server):
    run = f"pii-{uuid.uuid4().hex[:6]}"
    event = {
        "kind": "tool_result", "run_id": run, "step": 1, "tags": ["owner:carol.white@example.com"],
        "payload": {"name": "crm", "content": {"customer": {"name": "Carol White", "phone": "+1 212-555-0188",
                                                            "notes": ["lives at 12 Orchard Lane, Denver"]}}},
    }
    result = admin.post("/events", json=event).json()["results"][0]
    assert result["status"] == "accepted"
    assert result["pii"]["EMAIL_ADDRESS"] == 1 and result["pii"]["PHONE_NUMBER"] == 1
    assert result["pii"]["STREET_ADDRESS"] == 1 and result["pii"]["PERSON"] >= 1
    ds = admin.post("/datasets/create", json={"name": f"pii-{run}", "kind": "trajectories",
                                              "filters": {"tags": ["owner:<EMAIL_ADDRESS>"]}, "output_format": "jsonl"})
    assert ds.status_code == 201, ds.text
    text = admin.get(f"/datasets/{ds.json()['id']}/download").text
    for leak in ("carol.white@example.com", "Carol White", "212-555-0188", "12 Orchard Lane"):
        assert leak not in text
    assert "<PERSON>" in text and "<PHONE_NUMBER>" in text
    lake_files = b"".join(p.read_bytes() for p in (live_server.home / "lake").rglob("*") if p.is_file())
    log_text = (live_server.home.parent / f"server-{live_server.port}.log").read_bytes()
    for leak in (b"carol.white@example.com", b"Carol White", b"212-555-0188"):
        assert leak not in lake_files and leak not in log_text


def test_quality_flags(admin):
    run = f"q-{uuid.uuid4().hex[:6]}"
    events = [
        {"kind": "agent_action", "run_id": run, "step": 3, "payload": {"answer": 1}},
        {"kind": "agent_action", "run_id": run, "step": 3, "payload": {"answer": 1}},
        {"kind": "metadata", "run_id": run, "step": 1, "payload": {}},
        {"kind": "message", "run_id": run, "step": 4, "payload": {"content": "word " * 5000}},
    ]
    results = admin.post("/events", json={"events": events}).json()["results"]
    assert results[0]["quality_flags"] == []
    assert "content_duplicate" in results[1]["quality_flags"]
    assert set(results[2]["quality_flags"]) == {"empty_payload", "non_monotonic_step"}
    assert results[3]["quality_flags"] == ["truncated"]


def test_datasets_parquet_jsonl_lineage_and_empty_filter(admin):
    tag = f"t{uuid.uuid4().hex[:6]}"
    events = synthetic_events(12, seed=7)
    for e in events:
        e["tags"] = [tag]
    assert admin.post("/events", json={"events": events}).json()["accepted"] == len(events)

    empty = admin.post("/datasets/create", json={"name": "nothing", "kind": "sft", "filters": {"tags": ["no-such-tag"]}})
    assert empty.status_code == 422 and empty.json()["field"] == "filters" and "no events" in empty.json()["detail"]
    bad = admin.post("/datasets/create", json={"name": "x", "kind": "sft", "filters": {"colour": "red"}})
    assert bad.status_code == 422 and bad.json()["field"] == "filters.colour"

    sft = admin.post("/datasets/create", json={"name": "sft", "kind": "sft", "filters": {"tags": [tag], "success": True}}).json()
    successes = sum(1 for e in events if e["kind"] == "reward" and e["payload"]["success"])
    assert sft["rows"] == successes and sft["version"] >= 1 and len(sft["content_hash"]) == 64
    frame = pd.read_parquet(io.BytesIO(admin.get(f"/datasets/{sft['id']}/download").content))
    messages = list(frame.iloc[0]["messages"])
    assert [m["role"] for m in messages][:2] == ["user", "assistant"]
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"])["expression"]

    traj = admin.post("/datasets/create", json={"name": "traj", "kind": "trajectories", "filters": {"tags": [tag]},
                                                "output_format": "jsonl"}).json()
    lines = admin.get(f"/datasets/{traj['id']}/download").text.strip().splitlines()
    assert len(lines) == 12 and traj["rows"] == 12
    assert [s["step"] for s in json.loads(lines[0])["steps"]] == sorted(s["step"] for s in json.loads(lines[0])["steps"])

    again = admin.post("/datasets/create", json={"name": "traj", "kind": "trajectories", "filters": {"tags": [tag]},
                                                 "output_format": "jsonl"}).json()
    assert again["version"] == traj["version"] + 1 and again["content_hash"] == traj["content_hash"]

    lineage = admin.get(f"/lineage/dataset/{sft['id']}").json()
    assert len(lineage["upstream"]["runs"]) == successes
    assert lineage["upstream"]["agent_versions"] == ["demo-agent@1"]
    assert lineage["upstream"]["events"]["count"] == successes * 6
    assert lineage["downstream"] == []
    assert admin.post(f"/datasets/{sft['id']}/uses", json={"consumer": "train_job:job_1"}).status_code == 204
    assert admin.get(f"/lineage/dataset/{sft['id']}").json()["downstream"][0]["consumer"] == "train_job:job_1"
    listed = admin.get("/datasets", params={"name": "traj"}).json()
    assert [d["version"] for d in listed] == [again["version"], traj["version"]]


def test_health_metrics_openapi(live_server):
    import httpx

    assert httpx.get(f"{live_server.url}/healthz").json()["status"] == "ok"
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert "workbench_http_requests_total" in metrics
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    for path in ("/events", "/datasets/create", "/datasets/{dataset_id}", "/datasets/{dataset_id}/download",
                 "/lineage/dataset/{dataset_id}", "/audit"):
        assert path in spec["paths"]
