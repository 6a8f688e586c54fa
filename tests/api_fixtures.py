"""Objects shared by the API tests: a plugin spec, a seeded model registry."""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

from workbench.config import Settings
from workbench.data.synthetic import synthetic_events
from workbench.evals.reports import save_report
from workbench.services import Services
from workbench.train.registry import register_checkpoint, register_model


def toolbox_spec(name: str, version: str = "1.0.0", tmp_dir: str = "/tmp") -> dict:
    """A stdio registration of the shipped toolbox MCP server."""
    return {
        "name": name,
        "version": version,
        "transport": {"command": [sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox", "--store", f"{tmp_dir}/kv.json"]},
        "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
    }


def seed_models(home: Path, tenant_id: str) -> tuple[str, str, str]:
    """A policy with two checkpoints (v1 has a good eval report, v2 a worse one) in the server's home."""
    services = Services(Settings(home=home))
    try:
        model = register_model(services, tenant_id, f"policy-{uuid.uuid4().hex[:6]}", "policy")
        v1 = register_checkpoint(services, tenant_id, model.id, uri="/ckpt/1", lineage={"job_id": "job_a"})
        v2 = register_checkpoint(services, tenant_id, model.id, uri="/ckpt/2", lineage={"job_id": "job_b"})
        for ckpt, rate in ((v1, 0.7), (v2, 0.5)):
            save_report(services, tenant_id, subject=ckpt.id, suite="calculator", split="test", request={},
                        summary={"success_rate": rate}, results=[])
        return model.id, v1.id, v2.id
    finally:
        services.close()


def ingest_dataset(client, kind: str, runs: int = 6, tasks: int = 2) -> dict:
    """Ingest a few synthetic runs under a fresh tag through POST /events and build a ``kind`` dataset."""
    tag = f"tj-{uuid.uuid4().hex[:8]}"
    events = synthetic_events(runs, seed=random.randrange(1 << 30), tasks=tasks)
    for event in events:
        event["tags"] = [tag]
    assert client.post("/events", json={"events": events}).json()["accepted"] == len(events)
    filters = {"tags": [tag]} | ({"success": True} if kind == "sft" else {})
    response = client.post("/datasets/create", json={"name": f"{kind}-{tag}", "kind": kind, "filters": filters})
    assert response.status_code == 201, response.text
    return response.json()
