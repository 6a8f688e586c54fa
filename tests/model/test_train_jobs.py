"""Training jobs end to end over a real HTTP server on the real base model: an SFT job runs as a
Dagster run to success (metrics rows, a registered checkpoint with lineage, the run in the
instance); a pool of one slot makes a second job wait; stop leaves a resumable checkpoint and a
new job with ``resume_from`` continues the global step; a reward model is trained and listed; a
job whose server was killed is reported interrupted with its checkpoint on the next start.

Every run is tiny (max_steps ≤ 4, batch 2, 64 tokens, one torch thread). The converted base model
comes from $WORKBENCH_TEST_MODELS (see tests/train_fixtures.py) and is symlinked into the server's
home, so the server never converts it again.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.api_fixtures import ingest_dataset
from conftest import LiveServer
from train_fixtures import train_base_model  # noqa: F401


pytestmark = pytest.mark.integration

TINY = {"num_threads": 1, "per_device_train_batch_size": 2, "max_length": 64, "save_strategy": "no"}
ENV = {"WORKBENCH_PII_NER": "false", "WANDB_SILENT": "true"}


def make_home(root: Path, model_dir: Path) -> Path:
    home = root / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / model_dir.name).symlink_to(model_dir.resolve())
    return home


@pytest.fixture(scope="module")
def server(tmp_path_factory, train_base_model):  # noqa: F811
    server = LiveServer(make_home(tmp_path_factory.mktemp("trainjobs"), train_base_model), ENV).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenant(server):
    return server.tenant(f"tj-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(server, tenant):
    with server.client(tenant["api_key"]) as c:
        yield c


@pytest.fixture(scope="module")
def sft_dataset(server, tenant):
    with server.client(tenant["api_key"]) as c:
        return ingest_dataset(c, "sft")


def submit(client, body: dict) -> dict:
    response = client.post("/train/jobs", json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["job_id"] == job["id"] and job["dagster_run_id"]
    return job


def wait(client, job_id: str, until, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/train/jobs/{job_id}").json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"timed out; job is {job['status']}: {job}"
        assert job["status"] != "failed" or until(job), job["result"]
        time.sleep(0.5)


def done(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "stopped")


def dagster_run(home: Path, run_id: str):
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(home / "dagster"))
    try:
        return instance.get_run_by_id(run_id)
    finally:
        instance.dispose()


def test_sft_job_runs_as_a_dagster_run_and_registers_a_checkpoint(server, client, sft_dataset):
    started = time.perf_counter()
    job = submit(client, {"algorithm": "sft", "dataset_ref": sft_dataset["id"], "model_name": "sft-smoke",
                          "hyperparams": {**TINY, "max_steps": 2}})
    job = wait(client, job["id"], done)
    elapsed = time.perf_counter() - started
    assert job["status"] == "succeeded", job["result"]
    assert job["progress"]["step"] == job["progress"]["max_steps"] == 2
    for name in ("loss", "learning_rate", "cpu_seconds", "cost"):
        assert name in job["latest_metrics"], name
    metrics = client.get(f"/train/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics][:2] == [1, 2] and "loss" in metrics[0]["metrics"]

    result = job["result"]
    assert result["global_step"] == 2 and result["cost"] > 0 and result["timing"]["total"] > 0
    assert Path(job["wandb_dir"]).is_dir() and list(Path(job["wandb_dir"]).glob("*.wandb"))
    [registered] = [c for c in job["checkpoints"] if c["kind"] == "registered"]
    checkpoints = client.get(f"/models/{result['model_id']}/checkpoints").json()
    assert [c["id"] for c in checkpoints] == [registered["checkpoint_id"]]
    checkpoint = checkpoints[0]
    assert checkpoint["format"] == "lora" and Path(checkpoint["uri"]).is_dir() and checkpoint["base_uri"]
    lineage = checkpoint["lineage"]
    assert lineage["job_id"] == job["id"] and lineage["dataset_id"] == sft_dataset["id"]
    assert lineage["dataset_version"] == sft_dataset["version"] and lineage["hyperparams"]["max_steps"] == 2
    assert lineage["base_model_name"] == "smollm2-135m-instruct" and lineage["base_checkpoint"]
    assert lineage["code_version"].startswith(("git:", "agent-factory-workbench=="))
    model = client.get(f"/models/{result['model_id']}").json()
    assert model["kind"] == "policy" and model["name"] == "sft-smoke"

    downstream = client.get(f"/lineage/dataset/{sft_dataset['id']}").json()["downstream"]
    assert f"train_job:{job['id']}" in [d["consumer"] for d in downstream]
    run = dagster_run(server.home, job["dagster_run_id"])
    assert run is not None and run.status.value == "SUCCESS" and run.job_name == "train_job"
    assert run.tags["workbench/job_id"] == job["id"] and run.tags["workbench/pool"] == "cpu"
    assert run.tags["dagster/priority"] == "0"
    assert run.run_config["ops"]["train"]["config"]["dataset_ref"] == sft_dataset["id"]
    print(f"\nSFT job, 2 steps, submit → succeeded: {elapsed:.1f} s (train {result['timing']['train']:.1f} s)")

    other = server.tenant(f"other-{uuid.uuid4().hex[:8]}")
    with server.client(other["api_key"]) as stranger:
        assert stranger.get(f"/train/jobs/{job['id']}").status_code == 404
        assert stranger.post(f"/train/jobs/{job['id']}/stop").status_code == 404
        assert job["id"] not in [j["id"] for j in stranger.get("/train/jobs").json()]
    assert client.post(f"/train/jobs/{job['id']}/stop").status_code == 409


def test_pool_of_one_queues_the_second_job_and_stop_resume_continues(server, client, sft_dataset):
    from workbench.compute import pool_limits
    from workbench.config import Settings

    first = submit(client, {"algorithm": "sft", "dataset_ref": sft_dataset["id"], "hyperparams": {**TINY, "max_steps": 6}})
    second = submit(client, {"algorithm": "sft", "dataset_ref": sft_dataset["id"],
                             "hyperparams": {**TINY, "max_steps": 1}, "compute_requirements": {"pool": "cpu"}})
    first = wait(client, first["id"], lambda j: j["status"] == "running" and j["progress"]["step"] >= 1)
    # The pool has one slot: while the first trains, the second waits for it.
    pools = pool_limits(Settings(home=server.home))
    assert pools["cpu"]["limit"] == 1 and pools["cpu"]["running_run_ids"] == [first["dagster_run_id"]]
    assert pools["cpu"]["waiting_run_ids"] == [second["dagster_run_id"]]
    assert client.get(f"/train/jobs/{second['id']}").json()["status"] == "queued"

    stopping = client.post(f"/train/jobs/{first['id']}/stop")
    assert stopping.status_code == 200 and stopping.json()["status"] in ("stopping", "stopped")
    first = wait(client, first["id"], done)
    assert first["status"] == "stopped" and first["result"]["resumable"], first["result"]
    stopped_at = first["result"]["global_step"]
    assert 1 <= stopped_at < 6
    assert Path(first["result"]["checkpoint_dir"], "trainer_state.json").is_file()
    assert [c["kind"] for c in first["checkpoints"]] == ["resumable"]

    second = wait(client, second["id"], done)
    assert second["status"] == "succeeded", second["result"]
    assert second["progress"]["started_at"] >= first["finished_at"].replace("Z", "+00:00")[:19]

    resumed = submit(client, {"resume_from": first["id"]})
    assert resumed["algorithm"] == "sft" and resumed["request"]["dataset_ref"] == sft_dataset["id"]
    resumed = wait(client, resumed["id"], done)
    assert resumed["status"] == "succeeded", resumed["result"]
    assert resumed["result"]["global_step"] == 6 and resumed["progress"]["step"] == 6
    steps = [m["step"] for m in client.get(f"/train/jobs/{resumed['id']}/metrics").json()]
    assert steps and min(steps) == stopped_at + 1, f"the resumed job re-did steps: {steps}"
    lineage = client.get(f"/models/{resumed['result']['model_id']}/checkpoints").json()[0]["lineage"]
    assert lineage["resumed_from_job"] == first["id"]


def test_reward_model_job_registers_a_reward_model(client):
    preference = ingest_dataset(client, "preference", runs=10, tasks=2)
    assert preference["rows"] > 0
    response = client.post("/rm/train", json={"dataset_ref": preference["id"], "hyperparams": {**TINY, "max_length": 512, "max_steps": 1}})
    assert response.status_code == 201, response.text
    job = wait(client, response.json()["id"], done)
    assert job["status"] == "succeeded" and job["algorithm"] == "rm", job["result"]
    [model] = [m for m in client.get("/rm/models").json() if m["id"] == job["result"]["model_id"]]
    assert model["kind"] == "reward" and model["name"] == "smollm2-135m-instruct-rm"
    assert model["checkpoints"][0]["id"] == job["result"]["checkpoint_id"]
    assert model["checkpoints"][0]["lineage"]["dataset_id"] == preference["id"]


def test_a_job_of_a_killed_server_is_reported_interrupted_with_its_checkpoint(tmp_path, train_base_model):  # noqa: F811
    from workbench.compute import pool_limits
    from workbench.config import Settings

    home = make_home(tmp_path, train_base_model)
    server = LiveServer(home, ENV).start()
    try:
        tenant = server.tenant("killed")
        with server.client(tenant["api_key"]) as c:
            dataset = ingest_dataset(c, "sft")
            job = submit(c, {"algorithm": "sft", "dataset_ref": dataset["id"],
                             "hyperparams": {**TINY, "max_steps": 50, "save_strategy": "steps", "save_steps": 1}})
            wait(c, job["id"], lambda j: j["progress"]["step"] >= 2)
        server.kill()
        server.proc = None
        server = LiveServer(home, ENV).start()
        with server.client(tenant["api_key"]) as c:
            job = c.get(f"/train/jobs/{job['id']}").json()
        assert job["status"] == "failed" and job["result"]["interrupted"], job
        assert job["result"]["resumable"] and Path(job["result"]["checkpoint_dir"], "trainer_state.json").is_file()
        assert job["result"]["global_step"] >= 1
        run = dagster_run(home, job["dagster_run_id"])
        assert run.status.value == "FAILURE"
        assert pool_limits(Settings(home=home))["cpu"]["running"] == 0, "the dead run still holds the pool slot"
    finally:
        server.stop()
