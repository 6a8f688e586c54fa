"""The workbench's Dagster definitions (``dagster dev -w workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from assets.data import dataset_assets, events
from assets.loop import LoopResource, loop_assets, refresh_sensor
from assets.resources import workbench_resources
from assets.train import train_job
from workbench.compute._allocation_job import allocation_job_for_pool

lake_maintenance_job = dg.define_asset_job("lake_maintenance_job", selection=[events])
# Both are partitioned by scenario family, like the assets they select.
datasets_job = dg.define_asset_job("dataset_refresh_job", selection=dataset_assets,
                                   description="Rebuild a family's datasets from the lake.")
closed_loop_job = dg.define_asset_job("closed_loop", selection=[*dataset_assets, *loop_assets],
                                      description="The whole loop for one family, from rollouts to deployment.")

defs = dg.Definitions(
    assets=[events, *dataset_assets, *loop_assets],
    jobs=[lake_maintenance_job, datasets_job, closed_loop_job, train_job, allocation_job_for_pool("cpu")],
    schedules=[dg.ScheduleDefinition(name="lake_maintenance", job=lake_maintenance_job, cron_schedule="0 * * * *")],
    sensors=[refresh_sensor(datasets_job)],
    resources={**workbench_resources(), "loop": LoopResource()},
)
