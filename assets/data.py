"""Data Factory assets: the event lake, and the family's datasets built from it with their quality checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.loop import LoopResource, families
from assets.resources import WorkbenchResource
from workbench import loop as stages
from workbench.data.datasets import get_dataset
from workbench.data.quality import check_dataset


@dg.asset(group_name="data", description="Agent events in the LanceDB lake; materializing compacts it and refreshes indexes.")
def events(workbench: WorkbenchResource) -> dg.MaterializeResult:
    """Maintenance of the event table, reporting its size."""
    report = workbench.services().maintain()
    return dg.MaterializeResult(
        metadata={
            "rows": report["rows"],
            "lake_version": report["version"],
            "fragments": report["fragments_after"],
            "audit_records_purged": report["audit_records_purged"],
        }
    )


def _dataset_asset(kind: str) -> dg.AssetsDefinition:
    name = f"{kind}_dataset"
    upstream = "rollout_events" if kind == "trajectories" else "trajectories_dataset"
    checks = [
        dg.AssetCheckSpec("pii_free", asset=name, blocking=True, description="No PII recognised in the file."),
        dg.AssetCheckSpec("schema_valid", asset=name, blocking=True, description=f"Columns and types of the {kind} schema."),
        dg.AssetCheckSpec("dedup_rate", asset=name, description="Few rows repeat another row."),
    ]

    @dg.asset(
        name=name, partitions_def=families, group_name="data", kinds={"parquet"}, check_specs=checks,
        ins={"rollouts": dg.AssetIn("rollout_events")},
        deps=[] if kind == "trajectories" else [upstream],
        description=f"A new immutable {kind} dataset version from every event of the family's environment, with lineage.",
    )
    def _build(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
               rollouts: dict) -> Iterator[Any]:
        ctx = loop.context(workbench, context.partition_key)
        info = stages.build_dataset(ctx, kind, rollouts)
        yield dg.Output(info, metadata={
            "dataset_id": info["id"], "version": info["version"], "rows": info["rows"], "content_hash": info["content_hash"],
            "uri": dg.MetadataValue.path(info["uri"]), "runs": len(info["lineage"]["runs"]),
            "agent_versions": ", ".join(info["lineage"]["agent_versions"]), "events": info["lineage"]["events"]["count"],
        })
        for outcome in check_dataset(ctx.services, ctx.tenant_id, get_dataset(ctx.services, ctx.tenant_id, info["id"])):
            yield dg.AssetCheckResult(check_name=outcome.name, passed=outcome.passed, description=outcome.description,
                                      metadata=outcome.metadata,
                                      severity=dg.AssetCheckSeverity.ERROR if outcome.name != "dedup_rate" else dg.AssetCheckSeverity.WARN)

    return _build


dataset_assets = [_dataset_asset(kind) for kind in stages.DATASET_KINDS]
