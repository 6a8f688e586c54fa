"""RFT jobs whose rewards come from the Reward/Eval Factory's verifiers (the scenario checker)."""

from __future__ import annotations

import pytest

import workbench.envs as envs
from workbench.client import EmbeddedClient
from workbench.data.datasets import create_dataset
from workbench.errors import ValidationFailed
from workbench.runtime import serving
from workbench.train import jobs

pytestmark = pytest.mark.integration


def test_rft_job_rewards_completions_with_the_scenario_checker(services, models_dir):
    tenant = EmbeddedClient(services, "rft").tenant_id
    serving.ensure_base_model(services, tenant, directory=models_dir)
    sink = lambda events: services.ingestor.ingest(tenant, events)  # noqa: E731
    for i, task in enumerate(envs.load_family("scenarios/calculator.yaml").generate("train", count=2)):
        envs.run_episode(task, "oracle", seed=i, sink=sink, tags=["rft-test"])
    prompts = create_dataset(services, tenant, {"name": "rft-prompts", "kind": "rl_prompts",
                                                "filters": {"tags": ["rft-test"]}}, creator="test")
    request = {"algorithm": "rft", "dataset_ref": prompts.id,
               "hyperparams": {"max_steps": 1, "per_device_train_batch_size": 2, "num_generations": 2,
                               "max_completion_length": 16, "num_threads": 1, "logging_steps": 1}}
    with pytest.raises(ValidationFailed) as missing:
        jobs.submit(services, tenant, request, launch=False)
    assert missing.value.field == "verifiers"

    job = jobs.submit(services, tenant, request | {"verifiers": ["checker"]}, launch=False)
    done = jobs.execute(services, job.id)
    assert done.status == "succeeded", done.result
    steps = jobs.list_metrics(services, tenant, job.id)
    assert steps and any("reward_mean" in s["metrics"] for s in steps)
    assert done.result["checkpoint_id"]


def test_rejection_sampling_rft_samples_verifies_and_fine_tunes(services, models_dir):
    tenant = EmbeddedClient(services, "rft-rs").tenant_id
    serving.ensure_base_model(services, tenant, directory=models_dir)
    sink = lambda events: services.ingestor.ingest(tenant, events)  # noqa: E731
    for i, task in enumerate(envs.load_family("scenarios/calculator.yaml").generate("train", count=2)):
        envs.run_episode(task, "oracle", seed=i, sink=sink, tags=["rft-rs"])
    prompts = create_dataset(services, tenant, {"name": "rs-prompts", "kind": "rl_prompts",
                                                "filters": {"tags": ["rft-rs"]}}, creator="test")
    job = jobs.submit(services, tenant, {
        "algorithm": "rft", "dataset_ref": prompts.id, "verifiers": [{"name": "rules", "rules": {"regex": "."}}],
        "hyperparams": {"variant": "rejection_sampling", "rounds": 1, "samples_per_prompt": 2, "max_steps": 1,
                        "per_device_train_batch_size": 2, "num_threads": 1},
    }, launch=False)
    done = jobs.execute(services, job.id)
    assert done.status == "succeeded", done.result
    assert any("rft/accept_rate" in s["metrics"] for s in jobs.list_metrics(services, tenant, job.id))
