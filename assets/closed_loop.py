"""Run the closed loop by materializing its assets in the home's Dagster instance (``make demo``).

The run is recorded like any other, so the Dagster UI (``make up``) shows its materializations,
asset checks and the training runs it launched. A blocking check that fails (the eval floor)
stops what depends on it: the summary says which stages were skipped.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from workbench.config import Settings

# Stage order of the summary table.
STAGES = ("baseline_eval", "rollout_events", "trajectories_dataset", "sft_dataset", "preference_dataset",
          "rl_prompts_dataset", "label_tasks", "reward_model", "policy_checkpoint", "eval_report",
          "promotion_candidate", "deployment")


def run_closed_loop(settings: Settings, family: str = "calculator", *, quick: bool = False, tenant: str = "demo",
                    overrides: dict[str, Any] | None = None, console: Console | None = None) -> dict[str, Any]:
    """Materialize every loop asset for ``family``; prints progress and the summary, returns
    ``{"run_id", "success", "outputs": {asset: output}, "seconds": {asset: s}, "checks": {check: passed}}``."""
    import dagster as dg

    from assets.data import dataset_assets
    from assets.loop import LoopResource, loop_assets
    from assets.resources import WorkbenchResource
    from workbench import loop as stages
    from workbench.compute import ensure_dagster_home, open_instance

    console = console or Console()
    ensure_dagster_home(settings)
    resources = {
        "workbench": WorkbenchResource(home=str(settings.home), database_url=settings.database_url,
                                       lake_uri=settings.lake_uri, artifacts_uri=settings.artifacts_uri),
        "loop": LoopResource(tenant=tenant, quick=quick, overrides=overrides or {}),
    }
    console.rule(f"[bold]The closed loop ({family}), as Dagster assets")
    with open_instance(settings) as instance:
        result = dg.materialize([*dataset_assets, *loop_assets], instance=instance, resources=resources,
                                partition_key=family, raise_on_error=False, tags={"workbench/entry": "demo"},
                                # progress bars and the summary are the console output; the event log is in the UI
                                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        run_id = result.run_id
        seconds = _step_seconds(instance, run_id)
    outputs: dict[str, Any] = {}
    for key in STAGES:
        try:
            outputs[key] = result.output_for_node(key)
        except Exception:  # noqa: BLE001 - a skipped or failed step has no output
            console.print(f"[yellow]·[/] {key}: not materialized (skipped or failed)")
    checks = {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}
    hint = (f"Dagster UI: `make up`, then http://127.0.0.1:3000/runs/{run_id} (this run) and "
            f"http://127.0.0.1:3000/assets (partition {family!r} of each asset, its metadata and checks).")
    stages.print_summary(console, outputs, {k: seconds[k] for k in STAGES if k in seconds}, hint)
    failed = [name for name, passed in checks.items() if not passed]
    if failed:
        console.print(f"[yellow]checks that failed:[/] {', '.join(failed)}")
    return {"run_id": run_id, "success": result.success, "outputs": outputs, "seconds": seconds, "checks": checks}


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds from start to success of each step of a run, from its event log."""
    from dagster import DagsterEventType

    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for record in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        key = record.step_key
        if record.dagster_event.event_type == DagsterEventType.STEP_START:
            started[key] = record.timestamp
        elif key in started:
            spent[key] = round(record.timestamp - started[key], 1)
    return spent
