"""Algorithm Factory in Dagster: the run that executes one training job.

``train_job`` (op ``train``, pool ``cpu``) runs a job already recorded by ``POST /train/jobs``
(``workbench.train.jobs``); the API launches the same definition in-process for each submission
(other pools get the same job with their own pool), so those runs appear here with their inputs.
Launching it from the UI needs the job id in the run config: ``ops.train.config.job_id``.
"""

from workbench.train._dagster_job import train_job_for_pool

train_job = train_job_for_pool("cpu")
