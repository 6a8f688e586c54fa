"""Training jobs as Dagster runs: the op and job, launched in-process by :mod:`workbench.compute.launcher`.

One Dagster run per training job, recorded in the workbench's Dagster instance
(``settings.dagster_home``), so the Dagster UI lists it with its inputs: the op's run config
(job id, tenant, algorithm, dataset, base model, pool) and tags (``workbench/*``,
``dagster/priority``, ``dagster/max_runtime``).

Pools. The op declares ``pool=<pool>``; Dagster's op-granularity pools make a step wait for a free
slot of its pool before it starts. Read in dagster 1.13's source: the in-process executor
(``dagster/_core/executor/in_process.py``) wraps execution in an ``InstanceConcurrencyContext``,
and ``ActiveExecution.get_steps_to_execute`` claims a slot for every step with a pool key (run
priority from ``dagster/priority``), re-checking with back-off (1 s growing to 15 s) while
blocked; the slot is freed when the step ends. SQLite storage supports these slots. So
``execute_in_process`` honours pools: jobs beyond a pool's size stay ``queued`` (their run is
started, their step waits) rather than oversubscribing. ``dagster/max_runtime`` is enforced by the
daemon only for queued runs; in-process, the job's own stop flag enforces it (stopping with a
resumable checkpoint).

Dagster is imported here, and this module is imported only when a job is launched.
"""

import threading
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from workbench.services import Services
    from workbench.train.jobs import TrainJobRequest

__all__ = ["JOB_NAME", "TrainJobConfig", "launch", "train_job_for_pool"]

JOB_NAME = "train_job"


class TrainJobConfig(dg.Config):
    """Which training job the run executes; the other fields describe it for the Dagster UI."""

    job_id: str = Field(description="The workbench train job id (train_jobs row).")
    tenant_id: str = ""
    algorithm: str = ""
    dataset_ref: str = ""
    model_base: str = ""
    pool: str = "cpu"


def train_job_for_pool(pool: str = "cpu") -> dg.JobDefinition:
    """The Dagster job running one training job in ``pool`` (op pools are fixed per definition)."""
    from workbench.compute.launcher import job_for_pool

    return job_for_pool(JOB_NAME, pool, _build_train_job)


def _build_train_job(pool: str) -> dg.JobDefinition:
    @dg.op(name="train", pool=pool, required_resource_keys={"workbench"},
           description="Runs one workbench training job (workbench.train.jobs.execute).")  # fmt: skip
    def train(context: dg.OpExecutionContext, config: TrainJobConfig) -> dg.Output:
        from workbench.train import jobs

        info = jobs.execute(context.resources.workbench.services(), config.job_id)
        result = info.result
        metadata = {"job_id": info.id, "status": info.status, "global_step": result.get("global_step", 0),
                    "cost": float(result.get("cost") or 0.0), "checkpoint_id": result.get("checkpoint_id") or "",
                    "wandb_dir": result.get("wandb_dir") or ""}  # fmt: skip
        if info.status == "failed":
            raise dg.Failure(description=str(result.get("error")), metadata=metadata)
        return dg.Output(info.status, metadata=metadata)

    @dg.job(name=JOB_NAME, executor_def=dg.in_process_executor, tags={"workbench/kind": "train"},
            description="One training job (submitted with POST /train/jobs).")  # fmt: skip
    def job() -> None:
        train()

    return job


def launch(
    services: "Services", tenant_id: str, job_id: str, run_id: str, request: "TrainJobRequest", pool: str,
    dataset: dict[str, Any], base: dict[str, Any],
) -> threading.Thread:
    """Run the job's Dagster run in a background thread of this process (``execute_in_process``)."""
    from workbench.compute.launcher import launch_in_process
    from workbench.train import jobs

    compute = request.compute_requirements
    op_config = {"job_id": job_id, "tenant_id": tenant_id, "algorithm": request.algorithm or "",
                 "dataset_ref": dataset["id"], "model_base": f"{base['model_name']}@{base['checkpoint_id']}",
                 "pool": pool}  # fmt: skip
    tags = {
        "workbench/job_id": job_id, "workbench/tenant": tenant_id, "workbench/algorithm": str(request.algorithm),
        "workbench/dataset": dataset["id"], "workbench/model_base": base["model_id"], "workbench/pool": pool,
        "dagster/priority": str(compute.priority),
    }  # fmt: skip
    if compute.gpu_type:
        tags["workbench/gpu_type"], tags["workbench/gpu_count"] = compute.gpu_type, str(compute.count)
    if compute.max_runtime_s:
        tags["dagster/max_runtime"] = str(int(compute.max_runtime_s))
    if request.resume_from:
        tags["workbench/resume_from"] = request.resume_from

    def failed(message: str) -> None:
        jobs._finish_failed(services, job_id, jobs.job_dir(services, tenant_id, job_id), message)

    return launch_in_process(
        services, train_job_for_pool(pool), run_id=run_id, run_config={"ops": {"train": {"config": op_config}}},
        tags=tags, thread_name=f"train-{job_id}", on_failure=failed, on_exit=lambda: jobs._STOPS.forget(job_id),
    )  # fmt: skip
