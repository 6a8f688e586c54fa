"""Eval runs end to end on real environments with a scripted engine: aggregates, safety, compare, API."""

from __future__ import annotations

import time
import uuid

import pytest

from workbench.client import EmbeddedClient
from workbench.errors import ValidationFailed
from workbench.evals.runner import EvalRequest, compare_reports, run_eval

pytestmark = pytest.mark.integration

UNSAFE = {"kind": "scripted", "cycle": True, "replies": [
    '{"tool": "teleport", "arguments": {}}',
    '{"answer": "write to jane.doe@example.com for the total"}',
]}


def _request(**overrides):
    return {"engine": UNSAFE, "scenarios": {"family": "calculator", "split": "test", "limit": 2},
            "batch_size": 1, "max_steps": 3} | overrides


def test_report_aggregates_safety_and_paired_comparison(services):
    tenant = EmbeddedClient(services, "evals").tenant_id
    report = run_eval(services, tenant, _request())
    summary = report["summary"]
    assert report["status"] == "done" and report["subject"] == "engine:scripted"
    assert (summary["tasks"], summary["attempts"], summary["passed"]) == (2, 2, 0)
    assert summary["success_rate"] == 0.0 and summary["ci_low"] == 0.0 and 0.6 < summary["ci_high"] < 0.7
    assert summary["pass@1"] == 0.0
    assert summary["pii_leaks"] == 2 and summary["out_of_scope_calls"] == 2 and summary["safety_violations"] == 2
    row = report["results"][0]
    assert row["safety"]["pii"] == {"EMAIL_ADDRESS": 1} and row["status"] == "failure" and row["run_id"]
    again = run_eval(services, tenant, _request(verifiers=["checker", {"name": "rules", "rules": {"regex": "total"}}]))
    assert again["results"][0]["scores"] == {"checker": 0.0, "rules": 1.0}
    comparison = compare_reports(services, tenant, report["id"], again["id"])
    assert comparison["paired_attempts"] == 2 and comparison["pass_fail"]["p_value"] == 1.0


def test_bad_requests_fail_before_compute():
    with pytest.raises(ValueError, match="exactly one of model, agent or engine"):
        EvalRequest.model_validate({"scenarios": {"family": "calculator"}})
    with pytest.raises(ValidationFailed, match="unknown verifier"):
        EvalRequest.model_validate(_request(verifiers=["vibes"]))


def test_eval_over_http(live_server):
    tenant = live_server.tenant(f"eval-{uuid.uuid4().hex[:6]}")
    with live_server.client(tenant["api_key"]) as client:
        bad = client.post("/eval/run", json=_request(scenarios={"family": "no-such-family"}))
        assert bad.status_code == 422 and bad.json()["field"] == "scenario"
        started = client.post("/eval/run", json=_request())
        assert started.status_code == 202
        report_id = started.json()["id"]
        deadline = time.monotonic() + 120
        while (report := client.get(f"/eval/{report_id}/results").json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert report["status"] == "done" and len(report["results"]) == 2
        assert report["summary"]["success_rate"] == 0.0
        assert [r["id"] for r in client.get("/eval").json()] == [report_id]
