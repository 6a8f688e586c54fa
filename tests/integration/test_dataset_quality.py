"""Dataset checks (the Dagster asset checks of every dataset asset) on real dataset files."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq

import workbench.envs as envs
from workbench.agents.rollouts import load_tasks
from workbench.client import EmbeddedClient
from workbench.data.datasets import create_dataset, dataset_file_key
from workbench.data.quality import check_dataset


def _dataset(services, kind: str, output_format: str = "parquet"):
    tenant_id = EmbeddedClient(services, "quality").tenant_id
    for i, scenario in enumerate(load_tasks("calculator", "train", limit=3)):
        envs.run_episode(scenario, "oracle", seed=i, sink=lambda evs: services.ingestor.ingest(tenant_id, evs))
    info = create_dataset(services, tenant_id, {"name": f"q-{kind}", "kind": kind, "output_format": output_format},
                          creator="test")
    return tenant_id, info


def _outcomes(services, tenant_id, info) -> dict:
    return {o.name: o for o in check_dataset(services, tenant_id, info)}


def test_a_dataset_built_from_redacted_events_passes(services):
    tenant_id, info = _dataset(services, "sft")
    outcomes = _outcomes(services, tenant_id, info)
    assert all(o.passed for o in outcomes.values()), outcomes
    assert outcomes["pii_free"].metadata["strings_scanned"] > 0


def test_pii_in_the_file_fails_pii_free(services):
    tenant_id, info = _dataset(services, "sft")
    key = dataset_file_key(info, tenant_id)
    table = pq.read_table(io.BytesIO(services.artifacts.read_bytes(key)))
    rows = table.to_pylist()
    rows[0]["messages"][0]["content"] = "Mail me at jane.doe@example.com or call 212-555-0187."
    out = io.BytesIO()
    pq.write_table(table.from_pylist(rows, schema=table.schema), out)
    services.artifacts.write_bytes(key, out.getvalue())  # as if a writer had bypassed redaction
    outcome = _outcomes(services, tenant_id, info)["pii_free"]
    assert not outcome.passed
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER"} <= set(outcome.metadata["entities_found"])


def test_missing_columns_and_repeated_rows_are_flagged(services):
    tenant_id, info = _dataset(services, "rl_prompts", output_format="jsonl")
    key = dataset_file_key(info, tenant_id)
    rows = [json.loads(line) for line in services.artifacts.read_bytes(key).decode().splitlines()]
    broken = [{k: v for k, v in rows[0].items() if k != "tools"}] + [rows[1]] * (len(rows) * 2)
    services.artifacts.write_bytes(key, "".join(json.dumps(r) + "\n" for r in broken).encode())
    outcomes = _outcomes(services, tenant_id, info)
    assert not outcomes["schema_valid"].passed
    assert outcomes["schema_valid"].metadata["mismatched_columns"] == ["tools"]
    assert not outcomes["dedup_rate"].passed and outcomes["dedup_rate"].metadata["duplicate_rate"] > 0.5
