"""Training-job requests over the real HTTP server that must fail before any compute: wrong dataset
kind, bad or unknown hyperparameters, unknown algorithm / dataset / resume job / pool; roles and
tenant isolation. No model is loaded or converted here (validation stops before the base model)."""

from __future__ import annotations

import uuid

import pytest

from tests.api_fixtures import ingest_dataset


pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tenant(live_server):
    return live_server.tenant(f"train-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def admin(live_server, tenant):
    with live_server.client(tenant["api_key"]) as client:
        yield client


@pytest.fixture(scope="module")
def sft_dataset(live_server, tenant):
    with live_server.client(tenant["api_key"]) as client:
        return ingest_dataset(client, "sft")


def test_wrong_dataset_kind_bad_hyperparams_and_unknowns_are_422(admin, sft_dataset):
    def rejected(body: dict, field: str, says: str) -> None:
        response = admin.post("/train/jobs", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field, response.json()
        assert says in response.json()["detail"], response.json()

    ds = sft_dataset["id"]
    rejected({"algorithm": "dpo", "dataset_ref": ds}, "dataset_ref", "dpo trains on a preference dataset")
    rejected({"algorithm": "grpo", "dataset_ref": ds}, "dataset_ref", "rl_prompts")
    rejected({"algorithm": "sft", "dataset_ref": "ds_nope"}, "dataset_ref", "no dataset 'ds_nope'")
    rejected({"algorithm": "sft"}, "dataset_ref", "required")
    rejected({"algorithm": "telepathy", "dataset_ref": ds}, "algorithm", "unknown algorithm")
    rejected({"algorithm": "sft", "dataset_ref": ds, "hyperparams": {"learning_rate": -1}},
             "hyperparams.learning_rate", "")
    rejected({"algorithm": "sft", "dataset_ref": ds, "hyperparams": {"learnin_rate": 1e-4}},
             "hyperparams.learnin_rate", "unknown hyperparameter")
    rejected({"algorithm": "sft", "dataset_ref": ds, "resume_from": "job_nope"}, "resume_from", "no train job")
    rejected({"algorithm": "sft", "dataset_ref": ds, "compute_requirements": {"pool": "Bad Pool!"}},
             "compute_requirements.pool", "not a pool name")
    rejected({"algorithm": "sft", "dataset_ref": ds, "compute_requirements": {"priority": "high"}},
             "compute_requirements.priority", "")
    rejected({"algorithm": "sft", "dataset_ref": ds, "colour": "red"}, "colour", "")
    rejected({"dataset_ref": ds, "hyperparams": {}}, "algorithm", "required")
    assert admin.get("/train/jobs").json() == [], "a rejected request left a job behind"
    lineage = admin.get(f"/lineage/dataset/{ds}").json()
    assert lineage["downstream"] == [], "a rejected request marked the dataset used"


def test_rm_train_needs_a_preference_dataset(admin, sft_dataset):
    response = admin.post("/rm/train", json={"dataset_ref": sft_dataset["id"]})
    assert response.status_code == 422 and response.json()["field"] == "dataset_ref"
    assert "rm trains on a preference dataset" in response.json()["detail"]
    assert admin.get("/rm/models").json() == []


def test_roles_and_tenant_isolation(live_server, tenant, admin, sft_dataset):
    viewer_key = live_server.key(tenant["tenant_id"], "viewer")
    with live_server.client(viewer_key) as viewer:
        assert viewer.post("/train/jobs", json={"algorithm": "sft", "dataset_ref": sft_dataset["id"]}).status_code == 403
        assert viewer.post("/rm/train", json={"dataset_ref": sft_dataset["id"]}).status_code == 403
        assert viewer.post("/train/jobs/job_x/stop").status_code == 403
        assert viewer.get("/train/jobs").status_code == 200
        assert viewer.get("/rm/models").status_code == 200
    other = live_server.tenant(f"other-{uuid.uuid4().hex[:8]}")
    with live_server.client(other["api_key"]) as stranger:
        # Another tenant's dataset is invisible: the same answer as a dataset that does not exist.
        response = stranger.post("/train/jobs", json={"algorithm": "sft", "dataset_ref": sft_dataset["id"]})
        assert response.status_code == 422 and response.json()["field"] == "dataset_ref"
        assert stranger.get("/train/jobs/job_nope").status_code == 404
        assert stranger.post("/train/jobs/job_nope/stop").status_code == 404
        assert stranger.get("/train/jobs/job_nope/metrics").status_code == 404


def test_openapi_lists_the_training_paths(live_server):
    import httpx

    paths = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]
    for path in ("/train/jobs", "/train/jobs/{job_id}", "/train/jobs/{job_id}/stop", "/train/jobs/{job_id}/metrics",
                 "/rm/train", "/rm/models"):
        assert path in paths, path
