"""``workbench scenarios …`` and ``workbench runs …``: the scenario library and recorded runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from workbench._cli_support import open_services, resolve_tenant

scenarios_app = typer.Typer(help="The scenario library: list, show, validate and run scenarios.", no_args_is_help=True)
runs_app = typer.Typer(help="Environment runs: list and replay.", no_args_is_help=True)

LibraryOpt = Annotated[Path | None, typer.Option("--library", help="Scenario directory (default: ./scenarios).")]


@scenarios_app.command("list")
def scenarios_list(library: LibraryOpt = None) -> None:
    """Every scenario and family in the library; invalid files are listed with their first error."""
    from workbench.envs import load_library

    entries = load_library(library)
    for entry in entries:
        if entry.errors:
            typer.echo(f"{entry.name:<24} INVALID  {entry.path}: {entry.errors[0]['field']}: {entry.errors[0]['reason']}")
        elif entry.kind == "family":
            counts = ", ".join(f"{k} {v}" for k, v in (entry.counts or {}).items())
            typer.echo(f"{entry.name:<24} family   {entry.type:<8} {counts:<20} {entry.description}")
        else:
            typer.echo(f"{entry.name:<24} scenario {entry.type:<8} {entry.version[:12]:<20} {entry.description}")
    if any(e.errors for e in entries):
        raise typer.Exit(1)


@scenarios_app.command("show")
def scenarios_show(name: Annotated[str, typer.Argument(help="A name, a file, or a family task like calculator-test-0003.")],
                   library: LibraryOpt = None) -> None:
    """A scenario's spec and version (content hash), or a family's summary."""
    from workbench.envs import ScenarioInvalid, show

    try:
        typer.echo(json.dumps(show(name, library), indent=2, sort_keys=True))
    except (LookupError, ScenarioInvalid) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@scenarios_app.command("validate")
def scenarios_validate(paths: list[Path]) -> None:
    """Field-by-field errors of scenario or family files; exit code 1 if any."""
    from workbench.envs import validate_file

    failed = 0
    for path in paths:
        errors = validate_file(path)
        failed += bool(errors)
        for error in errors:
            typer.echo(f"{path}: {error['field']}: {error['reason']}")
        if not errors:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(1)


@scenarios_app.command("run")
def scenarios_run(
    target: Annotated[str, typer.Argument(help="A YAML file (scenario or family) or a scenario name.")],
    split: Annotated[str, typer.Option(help="train | test (families).")] = "test",
    count: Annotated[int | None, typer.Option(help="Run only the first N tasks.")] = None,
    seed: int = 0,
    policy: Annotated[str, typer.Option(help="oracle | random")] = "oracle",
    replay: Annotated[bool, typer.Option("--replay", help="Replay every run and compare observations.")] = False,
    library: LibraryOpt = None,
) -> None:
    """Run a scenario, or a family's split, with a scripted policy (no model); exit 1 if the oracle fails."""
    from workbench.envs import FamilySpec, ScenarioInvalid, find_scenario, load_file, run_episode
    from workbench.envs import replay as replay_trace

    try:
        path = Path(target)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            loaded = load_file(path)
            tasks = loaded.generate(split, seed=seed, count=count) if isinstance(loaded, FamilySpec) else [loaded]
        else:
            tasks = [find_scenario(target, library)]
    except (LookupError, ScenarioInvalid) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    wins = identical = 0
    started = time.perf_counter()
    for i, task in enumerate(tasks):
        trace = run_episode(task, policy, seed=seed + i)
        wins += bool(trace["success"])
        line = f"{task.name:<28} {trace['status']:<8} steps={len(trace['steps']) - 1:<3} {trace['reason']}"
        if replay:
            same = replay_trace(trace)
            identical += same["identical"]
            line += "  replay=" + ("identical" if same["identical"] else f"diverged@{same['first_divergence']['step']}")
        if len(tasks) <= 10:
            typer.echo(line)
    summary = f"{policy}: {wins}/{len(tasks)} succeeded ({100 * wins / max(1, len(tasks)):.0f} %) in {time.perf_counter() - started:.1f} s"
    typer.echo(summary + (f"; replay identical {identical}/{len(tasks)}" if replay else ""))
    if policy == "oracle" and (wins < len(tasks) or (replay and identical < len(tasks))):
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(tenant: Annotated[str, typer.Option(help="Tenant name or id.")] = "default", limit: int = 20) -> None:
    """The tenant's recent runs."""
    from workbench.envs.service import list_runs

    with open_services() as services:
        for run in list_runs(services, resolve_tenant(services, tenant), limit):
            typer.echo(f"{run.id}  {run.status:<8} steps={run.steps:<3} {run.scenario_id}  {run.reason or ''}")


@runs_app.command("replay")
def runs_replay(run_id: str, tenant: Annotated[str, typer.Option(help="Tenant name or id.")] = "default") -> None:
    """Re-execute a recorded run and compare every observation; exit 1 if it diverges."""
    with open_services() as services:
        result = services.runs.replay(resolve_tenant(services, tenant), run_id)
    typer.echo(json.dumps(result, indent=2, default=str))
    if not result["identical"]:
        raise typer.Exit(1)
