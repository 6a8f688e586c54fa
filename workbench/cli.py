"""The ``workbench`` command: serve the API, manage tenants and keys, data, maintenance, the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_envs import runs_app, scenarios_app
from workbench.cli_runtime import agents_app, models_app, rollout
from workbench._cli_support import fail_cleanly, print_json, resolve_tenant

app = typer.Typer(help="Agent Factory Workbench.", no_args_is_help=True, pretty_exceptions_enable=False)
tenants_app = typer.Typer(help="Tenants (each with its own data, keys and audit log).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
events_app = typer.Typer(help="Events in the Data Factory.", no_args_is_help=True)
datasets_app = typer.Typer(help="Dataset versions.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.add_typer(datasets_app, name="datasets")
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(agents_app, name="agents")
app.command("rollout")(rollout)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant name or id.")]


def _services():
    from workbench.services import Services

    return Services()


def _audit(services, tenant_id: str | None, action: str, target: str | None) -> None:
    from workbench.security.audit import record_audit

    record_audit(services.control, actor="cli", tenant_id=tenant_id, action=action, target=target, outcome="ok")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8321,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the REST API (FastAPI + uvicorn) with JSON logs."""
    import uvicorn

    from workbench.api.app import create_app
    from workbench.telemetry import configure_json_logging

    configure_json_logging(log_level.upper())
    services = _services()
    try:
        uvicorn.run(create_app(services), host=host, port=port, log_config=None, access_log=False, log_level=log_level)
    finally:
        from workbench.runtime import serving

        serving.close()
        services.close()


@tenants_app.command("create")
@fail_cleanly
def tenants_create(name: str) -> None:
    """Create a tenant; prints {"tenant_id", "api_key"} (an admin key, shown once)."""
    from workbench.security.tenants import create_tenant

    services = _services()
    tenant, key = create_tenant(services.control, name)
    _audit(services, tenant.id, "tenants create", f"tenant:{tenant.id}")
    print_json({"tenant_id": tenant.id, "name": tenant.name, "api_key": key})


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""
    from workbench.security.tenants import list_tenants

    print_json([{"tenant_id": t.id, "name": t.name, "created_at": t.created_at} for t in list_tenants(_services().control)])


@keys_app.command("create")
@fail_cleanly
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id (or name).")],
    role: Annotated[str, typer.Option(help="admin | researcher | operator | labeler | viewer")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Issue an API key; prints {"api_key"} (shown once)."""
    from workbench.security.tenants import create_key

    services = _services()
    tenant_id = resolve_tenant(services, tenant)
    record, key = create_key(services.control, tenant_id, role, name)
    _audit(services, tenant_id, "keys create", f"key:{record.id}")
    print_json({"api_key": key, "key_id": record.id, "tenant_id": tenant_id, "role": record.role})


@events_app.command("load")
@fail_cleanly
def events_load(path: Path, tenant: TenantOpt = "default") -> None:
    """Ingest events from a JSON-lines file; prints counts per status."""
    from collections import Counter

    from workbench.client import EmbeddedClient

    client = EmbeddedClient(_services(), tenant)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    results = client.events.log(lines)
    client.close()
    print_json(dict(Counter(r.status.value for r in results)))


@datasets_app.command("create")
@fail_cleanly
def datasets_create(
    name: str,
    kind: Annotated[str, typer.Option(help="sft | preference | rl_prompts | trajectories")],
    filters: Annotated[str, typer.Option(help="JSON object of filters.")] = "{}",
    output_format: Annotated[str, typer.Option("--format", help="parquet | jsonl")] = "parquet",
    tenant: TenantOpt = "default",
) -> None:
    """Build a dataset version from events."""
    from workbench.client import EmbeddedClient

    client = EmbeddedClient(_services(), tenant)
    dataset = client.datasets.create(name, kind, json.loads(filters), output_format)
    print_json(dataset.info.model_dump(mode="json", by_alias=True))


@datasets_app.command("list")
def datasets_list(tenant: TenantOpt = "default") -> None:
    """List dataset versions."""
    from workbench.client import EmbeddedClient

    client = EmbeddedClient(_services(), tenant)
    print_json([{"id": d.id, "name": d.name, "version": d.version, "kind": d.kind, "rows": d.rows}
                 for d in client.datasets.list()])


@datasets_app.command("show")
@fail_cleanly
def datasets_show(dataset_id: str, tenant: TenantOpt = "default") -> None:
    """Show a dataset version with its lineage."""
    from workbench.client import EmbeddedClient

    client = EmbeddedClient(_services(), tenant)
    print_json(client.datasets.lineage(dataset_id) | {"info": client.datasets.get(dataset_id).info.model_dump(mode="json", by_alias=True)})


@app.command()
def maintenance(
    cleanup_hours: Annotated[float, typer.Option(help="Drop lake versions older than this many hours.")] = 1.0,
) -> None:
    """Compact the event lake, refresh indexes, drop old versions, purge expired audit records."""
    from datetime import timedelta

    print_json(_services().maintain(timedelta(hours=cleanup_hours)))


@app.command()
def demo(
    runs: Annotated[int, typer.Option(help="Synthetic runs for the Data Factory walk-through.")] = 60,
    quick: Annotated[bool, typer.Option("--quick", help="CI-sized loop: a few minutes.")] = False,
    family: Annotated[str, typer.Option(help="Scenario family the loop learns.")] = "calculator",
) -> None:
    """The main job: the Data Factory walk-through, then the closed loop as Dagster assets on WORKBENCH_HOME."""
    from assets.closed_loop import run_closed_loop
    from workbench.demo import run_demo
    from workbench.runtime import serving

    services = _services()
    try:
        run_demo(services, runs=runs)
    finally:
        services.close()
    try:
        outcome = run_closed_loop(services.settings, family, quick=quick)
    finally:
        serving.close()
    if not outcome["success"]:
        raise typer.Exit(1)


@app.command("db-upgrade")
def db_upgrade() -> None:
    """Apply control-plane migrations (also done automatically on open)."""
    _services()
    typer.echo("control plane is at the newest schema")


def main() -> None:
    """Entry point."""
    app(sys.argv[1:])
