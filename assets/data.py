"""Data Factory assets: the event lake and the datasets built from it."""

import dagster as dg

from assets.resources import WorkbenchResource
from workbench.data.datasets import DatasetKind, create_dataset
from workbench.security.tenants import create_tenant, find_tenant


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


class DatasetConfig(dg.Config):
    """Which tenant's events, filtered how, into which file format."""

    tenant: str = "default"
    name: str | None = None
    filters: dict = {}
    output_format: str = "parquet"


def _dataset_asset(kind: DatasetKind) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{kind.value}_dataset",
        group_name="data",
        deps=[events],
        description=f"An immutable {kind.value} dataset version built from the event lake, with lineage.",
    )
    def _build(context: dg.AssetExecutionContext, config: DatasetConfig, workbench: WorkbenchResource) -> dg.MaterializeResult:
        services = workbench.services()
        tenant = find_tenant(services.control, config.tenant) or create_tenant(services.control, config.tenant)[0]
        spec = {"name": config.name or f"{kind.value}-dataset", "kind": kind.value, "filters": config.filters,
                "output_format": config.output_format}
        info = create_dataset(services, tenant.id, spec, creator=f"dagster:{context.run.run_id}")
        return dg.MaterializeResult(
            metadata={
                "dataset_id": info.id, "version": info.version, "rows": info.rows, "content_hash": info.content_hash,
                "uri": dg.MetadataValue.path(info.uri), "runs": len(info.lineage["runs"]),
                "agent_versions": ", ".join(info.lineage["agent_versions"]), "events": info.lineage["events"]["count"],
            }
        )

    return _build


dataset_assets = [_dataset_asset(kind) for kind in DatasetKind]
