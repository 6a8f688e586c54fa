"""The workbench's Dagster definitions (``dagster dev -w workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from assets.data import dataset_assets, events
from assets.resources import WorkbenchResource
from assets.train import train_job

lake_maintenance_job = dg.define_asset_job("lake_maintenance_job", selection=[events])

defs = dg.Definitions(
    assets=[events, *dataset_assets],
    jobs=[lake_maintenance_job, train_job],
    schedules=[dg.ScheduleDefinition(name="lake_maintenance", job=lake_maintenance_job, cron_schedule="0 * * * *")],
    resources={"workbench": WorkbenchResource()},
)
